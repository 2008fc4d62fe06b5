"""Builds the standard held-out evaluation sets from the procedural corpus.

Seeds start at 10,000,000; training corpora use small seeds, so no evaluation piece is
ever seen in training.  Every triplet is exact: add / remove / extract are sums of the
stems of one render; replace and remix re-orchestrate the same composition (same chords,
same length, same sections).  See docs/evaluation.md for what each set holds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musigen.atomic import write_json, write_text
from musigen.errors import ConfigError, DataError, MusigenError
from musigen.eval.harness.set_items import ITEMS_NAME, SET_NAME, EditItem, GenItem, item_to_json
from musigen.eval.metrics.instruction_accuracy import Op
from musigen.vocab import GENRES, INSTRUMENTS

log = logging.getLogger(__name__)

GEN_SEED = 10_000_000
REF_SEED = 10_050_000
POOL_SEED = 10_100_000
EDIT_SEED = 10_200_000
#: Where the `dev` split's items start: a tuning split (guidance scales, steps) whose pieces
#: are disjoint from the held-out `test` items a report is computed on.
DEV_FIRST = {"gen": 40_000, "edit": 900}
SPLITS: tuple[str, ...] = ("test", "dev")
EDIT_TASKS: tuple[str, ...] = ("add", "remove", "extract", "replace", "remix", "two_round")
#: an instrument "sounds" in a clip when its stem is active this long; shorter is ambiguous
MIN_ACTIVE_S = 1.0
MAX_ATTEMPTS = 50
HEADROOM = 0.95


def instruction_text(op: Op) -> str:
    """InstructME's templates ("add drums", "replace piano with organ", "remix to funk genre")."""
    if op.task in ("add", "remove", "extract"):
        return f"{op.task} {op.instrument}"
    if op.task == "replace":
        return f"replace {op.instrument} with {op.new_instrument}"
    if op.task == "remix_genre":
        return f"remix to {op.genre} genre"
    return "remix with " + ", ".join(op.instruments)


def truth_from_activity(activity: dict[str, list[tuple[float, float]]], present: set[str],
                        duration: float) -> dict[str, bool | None]:
    """True if a stem of `present` sounds >= MIN_ACTIVE_S, False if absent/silent, else None."""
    out: dict[str, bool | None] = {}
    for inst in INSTRUMENTS:
        spans = activity.get(inst, []) if inst in present else []
        total = sum(max(0.0, min(e, duration) - max(s, 0.0)) for s, e in spans)
        out[inst] = True if total >= MIN_ACTIVE_S else (False if total == 0 else None)
    return out


def target_caption(genre: str, truth: dict[str, bool | None]) -> str:
    names = [k for k, v in truth.items() if v]
    return f"{genre} music with {', '.join(names)}" if names else f"{genre} music"


@dataclass
class _Render:
    """What the builder needs from a corpus render (kept small and testable)."""

    stems: dict[str, np.ndarray]
    activity: dict[str, list[tuple[float, float]]]
    chords: list[tuple[float, float, str]]
    genre: str
    caption: str
    tempo: float
    key: str
    mood: str
    mix: np.ndarray


class _Synth:
    """The corpus' in-memory API, bound to a renderer and a sample rate."""

    def __init__(self, renderer: str, sample_rate: int, duration: float) -> None:
        from musigen.data.synth.composition import compose
        from musigen.data.synth.orchestration import orchestrate
        from musigen.data.synth.render import render

        self._compose, self._orchestrate, self._render = compose, orchestrate, render
        self.renderer, self.sample_rate, self.duration = renderer, sample_rate, duration

    def composition(self, seed: int, genre: str) -> Any:
        return self._compose(seed, self.duration, genre=genre)

    def render(self, comp: Any, genre: str, seed: int, instruments: list[str] | None = None) -> _Render:
        orch = self._orchestrate(comp, genre, instruments=instruments, seed=seed)
        p = self._render(comp, orch, sample_rate=self.sample_rate, renderer=self.renderer)
        act = {k: [(float(s), float(e)) for s, e in v] for k, v in p.stem_activity.items()}
        return _Render(dict(p.stems), act, [(float(s), float(e), str(c)) for s, e, c in p.chords],
                       p.genre, p.caption, float(p.tempo), str(p.key), str(p.mood), p.mix)


def _sum(stems: dict[str, np.ndarray], names: list[str] | set[str]) -> np.ndarray:
    keys = [k for k in stems if k in names]
    return np.sum([stems[k] for k in keys], axis=0).astype(np.float32)


class _Writer:
    """Writes a set's audio (16-bit FLAC) and rows; one shared gain per item keeps headroom."""

    def __init__(self, root: Path, sample_rate: int) -> None:
        self.root, self.sample_rate = root, sample_rate
        (root / "audio").mkdir(parents=True, exist_ok=True)

    def write(self, rel: str, wav: np.ndarray) -> str:
        from musigen.audio import save_audio

        save_audio(self.root / rel, np.asarray(wav, np.float32)[None, :], self.sample_rate, subtype="PCM_16")
        return rel


def _gain(*clips: np.ndarray) -> float:
    peak = max(float(np.max(np.abs(c))) if c.size else 0.0 for c in clips)
    return min(1.0, HEADROOM / peak) if peak > 0 else 1.0


# ------------------------------------------------------------------------------ generation


def build_gen_set(out: Path, n: int, synth: _Synth, progress: bool = False, first: int = 0) -> Path:
    """Prompts (captions + metadata) with their held-out audio, a style reference and a pool."""
    from tqdm import tqdm

    w = _Writer(out, synth.sample_rate)
    rows, pool = [], []
    for i in tqdm(range(first, first + n), desc=f"gen set ({synth.renderer})", disable=not progress):
        genre = GENRES[i % len(GENRES)]
        seed, ref_seed = GEN_SEED + i, REF_SEED + i
        r = synth.render(synth.composition(seed, genre), genre, seed)
        ref = synth.render(synth.composition(ref_seed, genre), genre, ref_seed)
        item_id = f"gen{i:04d}"
        present = {k for k, v in truth_from_activity(r.activity, set(r.stems), synth.duration).items() if v}
        rows.append(GenItem(
            id=item_id, prompt=r.caption, target=w.write(f"audio/{item_id}_target.flac", r.mix),
            ref=w.write(f"audio/{item_id}_ref.flac", ref.mix), genre=r.genre,
            instruments=[k for k in INSTRUMENTS if k in present], tempo=r.tempo, key=r.key, mood=r.mood,
            chords=r.chords, duration=synth.duration, seed=seed, ref_seed=ref_seed,
        ))
        pseed = POOL_SEED + i
        pg = GENRES[(i * 3 + 1) % len(GENRES)]
        pool.append(w.write(f"pool/pool{i:04d}.flac", synth.render(synth.composition(pseed, pg), pg, pseed).mix))
    info = {"kind": "gen", "renderer": synth.renderer, "sample_rate": synth.sample_rate,
            "duration": synth.duration, "n": n, "seeds": {"target": GEN_SEED, "ref": REF_SEED, "pool": POOL_SEED},
            "first_item": first, "pool": pool}
    return _finish(out, info, rows)


# ----------------------------------------------------------------------------------- edits


def _triplet(task: str, seed: int, genre: str, synth: _Synth, rng: np.random.Generator
             ) -> tuple[list[Op], dict[str, np.ndarray], list[np.ndarray], np.ndarray, _Render, _Render,
                        set[str], set[str]] | None:
    """(ops, source stems, intermediates, target, source render, target render, src set, tgt set)."""
    comp = synth.composition(seed, genre)
    r = synth.render(comp, genre, seed)
    truth = truth_from_activity(r.activity, set(r.stems), synth.duration)
    on = sorted(k for k, v in truth.items() if v)
    if task in ("add", "remove", "extract"):
        if len(on) < 2:
            return None
        x = on[int(rng.integers(len(on)))]
        full = set(r.stems)
        src = full - {x} if task == "add" else full
        tgt = full if task == "add" else (full - {x} if task == "remove" else {x})
        return [Op(task, instrument=x)], {k: r.stems[k] for k in src}, [], _sum(r.stems, tgt), r, r, src, tgt
    if task == "two_round":
        if len(on) < 3:
            return None
        x, y = (str(v) for v in rng.choice(on, size=2, replace=False))
        full = set(r.stems)
        src = full - {y}
        if rng.random() < 0.5:
            ops, mid = [Op("remove", instrument=x), Op("add", instrument=y)], full - {x, y}
        else:
            ops, mid = [Op("add", instrument=y), Op("remove", instrument=x)], full
        tgt = full - {x}
        return ops, {k: r.stems[k] for k in src}, [_sum(r.stems, mid)], _sum(r.stems, tgt), r, r, src, tgt
    if task == "replace":
        cands = [k for k in on if k not in ("drums", "bass")]
        news = [k for k in INSTRUMENTS if k not in r.stems and k not in ("drums", "bass")]
        if not cands or not news:
            return None
        a, b = cands[int(rng.integers(len(cands)))], news[int(rng.integers(len(news)))]
        t = synth.render(comp, genre, seed, instruments=[k for k in r.stems if k != a] + [b])
        if not truth_from_activity(t.activity, set(t.stems), synth.duration)[b]:
            return None
        return ([Op("replace", instrument=a, new_instrument=b)], dict(r.stems), [], t.mix, r, t,
                set(r.stems), set(t.stems))
    if task == "remix":
        g2 = [g for g in GENRES if g != genre][int(rng.integers(len(GENRES) - 1))]
        t = synth.render(comp, g2, seed)
        return [Op("remix_genre", genre=g2)], dict(r.stems), [], t.mix, r, t, set(r.stems), set(t.stems)
    raise ConfigError(f"unknown edit task {task!r}")


def build_edit_set(out: Path, n_per_task: int, synth: _Synth, progress: bool = False,
                   tasks: tuple[str, ...] = EDIT_TASKS, first: int = 0) -> Path:
    """`n_per_task` exact triplets for every edit task (genres cycle for balance)."""
    from tqdm import tqdm

    w = _Writer(out, synth.sample_rate)
    rows: list[EditItem] = []
    bar = tqdm(total=n_per_task * len(tasks), desc=f"edit set ({synth.renderer})", disable=not progress)
    for k, task in enumerate(tasks):
        for i in range(first, first + n_per_task):
            genre = GENRES[i % len(GENRES)]
            for attempt in range(MAX_ATTEMPTS):
                seed = EDIT_SEED + 100_000 * k + 100 * i + attempt
                made = _triplet(task, seed, genre, synth, np.random.default_rng(seed))
                if made is not None:
                    break
            else:
                raise DataError(f"could not build a {task} triplet for item {i} in {MAX_ATTEMPTS} attempts")
            ops, stems, mids, target, rs, rt, src, tgt = made
            source = _sum(stems, set(stems))
            g = _gain(source, target, *mids, *stems.values())
            item_id = f"{task}{i:04d}"
            s_truth = truth_from_activity(rs.activity, src, synth.duration)
            t_truth = truth_from_activity(rt.activity, tgt, synth.duration)
            rows.append(EditItem(
                id=item_id, task=task, instructions=[instruction_text(op) for op in ops],
                ops=[op.as_dict() for op in ops],
                source=w.write(f"audio/{item_id}_source.flac", source * g),
                target=w.write(f"audio/{item_id}_target.flac", target * g),
                stems={s: w.write(f"stems/{item_id}/{s}.flac", v * g) for s, v in stems.items()},
                source_truth=s_truth, target_truth=t_truth, genre=rs.genre, target_genre=rt.genre,
                target_caption=target_caption(rt.genre, t_truth), chords=rs.chords,
                duration=synth.duration, seed=seed,
                intermediate=[w.write(f"audio/{item_id}_round{j + 1}.flac", m * g) for j, m in enumerate(mids)],
            ))
            bar.update()
    bar.close()
    info = {"kind": "edit", "renderer": synth.renderer, "sample_rate": synth.sample_rate,
            "duration": synth.duration, "n_per_task": n_per_task, "tasks": list(tasks),
            "seeds": {"edit": EDIT_SEED}, "first_item": first, "min_active_s": MIN_ACTIVE_S,
            "templates": ["add {x}", "remove {x}", "extract {x}", "replace {a} with {b}", "remix to {genre} genre"]}
    return _finish(out, info, rows)


def _finish(out: Path, info: dict[str, Any], rows: list[GenItem] | list[EditItem]) -> Path:
    import json

    write_text(out / ITEMS_NAME, "".join(json.dumps(item_to_json(r), sort_keys=True) + "\n" for r in rows))
    write_json(out / SET_NAME, info)
    return out


def fluidsynth_available() -> tuple[bool, str]:
    try:
        from musigen.data.synth.fluidsynth import require_fluidsynth

        require_fluidsynth()
        return True, "fluidsynth available"
    except (ImportError, MusigenError) as exc:
        return False, str(exc)


def make_sets(out: str | os.PathLike[str], n_gen: int = 40, n_edit: int = 20, duration: float = 10.0,
              sample_rate: int = 16000, fluidsynth: str = "auto", progress: bool = False,
              on_note: Callable[[str], None] | None = None, split: str = "test") -> dict[str, Path]:
    """Build gen/ and edit/ (and gen-fluidsynth/, edit-fluidsynth/ when that backend loads).

    `fluidsynth` is "auto" (build the variant if available), "yes" (require it) or "no".
    `split` "test" gives the held-out items reports use; "dev" gives other pieces, to tune
    settings on without touching the test items.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    first = DEV_FIRST if split == "dev" else {"gen": 0, "edit": 0}
    # Item i's seeds must stay inside its block: test items below the dev ones, dev items
    # below the next block (edit tasks are 1000 items apart, references 50,000 seeds on).
    limit = {"gen": DEV_FIRST["gen"], "edit": DEV_FIRST["edit"]} if split == "test" else {"gen": 50_000, "edit": 1000}
    if first["gen"] + n_gen > limit["gen"] or first["edit"] + n_edit > limit["edit"]:
        raise ConfigError(f"the {split} split holds at most {limit['gen'] - first['gen']} prompts and "
                          f"{limit['edit'] - first['edit']} triplets per task")
    if n_gen < 1 or n_edit < 1:
        raise ConfigError(f"--n-gen and --n-edit must be positive, got {n_gen} and {n_edit}")
    if not 1.0 <= duration <= 60.0:
        raise ConfigError(f"--duration must be between 1 and 60 seconds, got {duration}")
    if fluidsynth not in ("auto", "yes", "no"):
        raise ConfigError(f"fluidsynth must be auto, yes or no, got {fluidsynth!r}")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise DataError(f"output path {root} exists and is not a directory")
    renderers = ["builtin"]
    if fluidsynth != "no":
        ok, why = fluidsynth_available()
        if ok:
            renderers.append("fluidsynth")
        elif fluidsynth == "yes":
            raise MusigenError(why)
        elif on_note:
            on_note(f"skipping the FluidSynth variant: {why}")
    built: dict[str, Path] = {}
    for renderer in renderers:
        synth = _Synth(renderer, sample_rate, float(duration))
        suffix = "" if renderer == "builtin" else f"-{renderer}"
        built[f"gen{suffix}"] = build_gen_set(root / f"gen{suffix}", n_gen, synth, progress, first=first["gen"])
        built[f"edit{suffix}"] = build_edit_set(root / f"edit{suffix}", n_edit, synth, progress,
                                                first=first["edit"])
    write_json(root / "sets.json", {name: str(p.relative_to(root)) for name, p in built.items()})
    return built
