"""Run the train-demos chain: stages in order, each skipped once `state.json` says it is done.

One run at a time per `--out` (a lock file with the owner's pid); a lock left by a killed run
is taken over. Each stage's wall time is added to its record even when it fails or is
interrupted, so the schedule stays honest across resumes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from musigen.atomic import write_text
from musigen.errors import ConfigError
from musigen.training.demos import evaluation, stages
from musigen.training.demos.schedule import State, plan_lines
from musigen.training.demos.sizes import DemoSize

#: (name, function) in the order they run, before and after the round of the big models
BEFORE: tuple[tuple[str, Callable[[stages.Context], None]], ...] = (
    ("corpus", stages.corpus),
    ("codec", stages.codec),
    ("clap", stages.clap),
    ("encode_lm", stages.encode_lm),
)
#: the big models take turns (slices) when the size says so; each returns True when finished
ROUND: tuple[tuple[str, Callable[[stages.Context], bool]], ...] = (
    ("lm", stages.lm),
    ("lm_nocot", stages.lm_nocot),
    ("unet", stages.unet),
)
AFTER: tuple[tuple[str, Callable[[stages.Context], None]], ...] = (("eval", evaluation.evaluate),)
STAGE_NAMES: tuple[str, ...] = tuple(name for name, _ in (*BEFORE, *ROUND, *AFTER))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def take_lock(out: Path) -> Path:
    """Refuse a second live run on the same folder; take over a dead one's lock."""
    lock = out / "train-demos.lock"
    if lock.is_file():
        try:
            pid = int(lock.read_text().strip() or 0)
        except ValueError:
            pid = 0
        if pid and pid != os.getpid() and _pid_alive(pid):
            raise ConfigError(f"another train-demos (pid {pid}) is running on {out}; wait for it or stop it")
    write_text(lock, str(os.getpid()))
    return lock


def run(size: DemoSize, out: Path, device: str, budget_s: float, workers: int,
        stop_after: str | None = None) -> State:
    """Run (or resume) every stage up to `stop_after`; returns the final state."""
    if stop_after is not None and stop_after not in STAGE_NAMES:
        raise ConfigError(f"unknown stage {stop_after!r}; stages: {', '.join(STAGE_NAMES)}")
    out.mkdir(parents=True, exist_ok=True)
    lock = take_lock(out)
    state = State.load(out / "state.json", size.name, device)
    ctx = stages.Context(size=size, out=out, device=device, budget_s=budget_s, state=state, workers=workers,
                         slice_s=size.slice_s)
    for line in plan_lines(size, budget_s, state.data_wall_s(stages.DATA_STAGES)):
        ctx.say(line)
    try:
        for name, fn in BEFORE:
            if _step(ctx, name, lambda f=fn: f(ctx) or True) and name == stop_after:
                return state
        pending = [(name, fn) for name, fn in ROUND if not state.record(name).done]
        while pending:
            # the stage furthest behind its share goes next
            pending.sort(key=lambda item: _progress(ctx, item[0]))
            name, fn = pending[0]
            _step(ctx, name, lambda f=fn: f(ctx))
            pending = [(n, f) for n, f in pending if not state.record(n).done]
            if name == stop_after and state.record(name).done:
                return state
        for name, fn in AFTER:
            _step(ctx, name, lambda f=fn: f(ctx) or True)
    finally:
        lock.unlink(missing_ok=True)
    return state


def _progress(ctx: stages.Context, stage: str) -> float:
    """Fraction of its allotment a training stage has spent (from its ledger)."""
    from musigen.training.demos.schedule import allotment_s
    from musigen.training.stage_budget import Ledger

    allot = allotment_s(ctx.size, stage, ctx.budget_s, ctx.state.data_wall_s(stages.DATA_STAGES))
    return Ledger.read(ctx.path(stage, "ledger.json")).spent_s / max(allot, 1e-9)


def _step(ctx: stages.Context, name: str, fn: Callable[[], bool]) -> bool:
    """Run one stage (or one slice of it), adding its wall time to the state; True when done."""
    record = ctx.state.record(name)
    if record.done:
        return True
    ctx.say(f"{name}: start")
    t0 = time.monotonic()
    try:
        record.done = bool(fn())
    finally:
        record.wall_s += time.monotonic() - t0
        ctx.state.save(ctx.state_path)
    ctx.say(f"{name}: {'done' if record.done else 'slice ended'} after {record.wall_s / 60:.1f} min in all")
    return record.done
