"""The stages of `musigen train-demos`, each a process a user could run by hand.

A stage is finished when `state.json` says so; until then rerunning it is safe: the corpus is
written to a temporary folder and renamed, pre-encoding resumes shard by shard, and training
resumes from `<stage>/checkpoints/last.ckpt` with the seconds its ledger has already spent.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from musigen.atomic import write_text
from musigen.errors import ConfigError, MusigenError
from musigen.training.demos import configs
from musigen.training.demos.schedule import State, allotment_s
from musigen.training.demos.sizes import DemoSize
from musigen.training.stage_budget import Ledger

#: stages whose time is not budgeted by share (it is measured and taken off the training time)
DATA_STAGES: tuple[str, ...] = ("corpus", "encode_lm", "encode_edit")


class StageFailed(MusigenError):
    """A stage's process ended with an error; its log says why."""


@dataclass
class Context:
    size: DemoSize
    out: Path
    device: str
    budget_s: float
    state: State
    workers: int = 1
    #: training stages take turns in slices of this many seconds (None: each runs to its end)
    slice_s: float | None = None
    log: list[str] = field(default_factory=list)

    @property
    def state_path(self) -> Path:
        return self.out / "state.json"

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def say(self, text: str) -> None:
        line = f"[train-demos] {text}"
        print(line, flush=True)
        self.log.append(line)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """A stage process ends when train-demos does (even after kill -9 of train-demos)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_process(ctx: Context, stage: str, argv: Sequence[str]) -> None:
    """Run one stage process, its output appended to `<out>/logs/<stage>.log`."""
    log_path = ctx.path("logs", f"{stage}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"), PYTHONUNBUFFERED="1")
    if ctx.device == "cpu":
        env.setdefault("OMP_NUM_THREADS", "1")
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(map(str, argv))}\n")
        log.flush()
        proc = subprocess.run([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT, env=env,
                              preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    if proc.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-1:] or [""]
        raise StageFailed(f"stage {stage} failed (exit {proc.returncode}): {tail[0][:300]} "
                          f"(full log: {log_path})")


def musigen_cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "musigen.cli", *map(str, args)]


def training_cli(*args: object) -> list[str]:
    """`musigen train ARGS...`: a recipe's fit or validate, as a user would run it."""
    return musigen_cli("train", *args)


# -- data ------------------------------------------------------------------------------


def synth_corpus(ctx: Context, stage: str, out: Path, n: int, seed: int, duration: float) -> None:
    """Render `n` pieces into `out`, in `ctx.workers` processes, atomically (temp + rename)."""
    if (out / "manifest.jsonl").is_file():
        return
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    workers = max(1, min(ctx.workers, n))
    bounds = [round(i * n / workers) for i in range(workers + 1)]
    if workers == 1:
        run_process(ctx, stage, musigen_cli("data", "synth", "--n", n, "--duration", duration, "--out", tmp,
                                            "--seed", seed, "--no-progress"))
        tmp.rename(out)
        return
    from concurrent.futures import ThreadPoolExecutor

    parts = [musigen_cli("data", "synth", "--n", bounds[w + 1] - bounds[w], "--duration", duration,
                         "--out", tmp / f"part{w}", "--seed", seed + bounds[w], "--no-progress")
             for w in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda argv: run_process(ctx, stage, argv), parts))
    lines = []
    for w in range(workers):
        for line in (tmp / f"part{w}" / "manifest.jsonl").read_text().splitlines():
            if line.strip():
                lines.append(json.dumps(_prefixed(json.loads(line), f"part{w}")))
    write_text(tmp / "manifest.jsonl", "\n".join(lines) + "\n")
    tmp.rename(out)


def _prefixed(entry: dict, prefix: str) -> dict:
    """A part manifest's entry with its relative file paths moved under `prefix/`."""
    def move(value: object) -> object:
        if isinstance(value, str) and value and not os.path.isabs(value):
            return f"{prefix}/{value}"
        return value

    for key in ("path", "midi"):
        if key in entry:
            entry[key] = move(entry[key])
    if isinstance(entry.get("stems"), dict):
        entry["stems"] = {name: move(path) for name, path in entry["stems"].items()}
    return entry


def corpus(ctx: Context) -> None:
    s = ctx.size
    synth_corpus(ctx, "corpus", ctx.path("corpus", "train"), s.corpus_n, s.corpus_seed, s.corpus_s)
    synth_corpus(ctx, "corpus", ctx.path("corpus", "val"), s.val_n, s.val_seed, s.corpus_s)


def encode_lm(ctx: Context) -> None:
    """Codes of the LM's codebooks and CLAP thoughts (the RVQ is fitted here on the train set)."""
    s = ctx.size
    train, val = ctx.path("data", "musicot", "train"), ctx.path("data", "musicot", "val")
    common = ["--codec", ctx.path("models", "codec"), "--embedder", ctx.path("models", "clap"),
              "--num-codebooks", s.lm_codebooks, "--window-s", s.thought_window_s]
    if not (train / "index.json").is_file():
        run_process(ctx, "encode_lm", [*musigen_cli("encode", "musicot"), "--manifest",
                                       ctx.path("corpus", "train", "manifest.jsonl"), "--out", train,
                                       "--levels", s.thought_levels, "--codebook-size",
                                       s.thought_codebook_size, *common])
    if not (val / "index.json").is_file():
        run_process(ctx, "encode_lm", [*musigen_cli("encode", "musicot"), "--manifest",
                                       ctx.path("corpus", "val", "manifest.jsonl"), "--out", val,
                                       "--tokenizer", train / "thoughts", *common])


# -- training --------------------------------------------------------------------------


def _data_spent(ctx: Context) -> float:
    return ctx.state.data_wall_s(DATA_STAGES)


def resume_checkpoint(folder: Path) -> Path | None:
    """`last.ckpt`, or the newest intact step checkpoint when it is damaged; None to start."""
    from musigen.training.checkpoint_io import check_checkpoint_file

    candidates = [folder / "last.ckpt"] + sorted(folder.glob("step-*.ckpt"), reverse=True)
    for path in candidates:
        try:
            check_checkpoint_file(path)
        except MusigenError:
            continue
        return path
    return None


def train(ctx: Context, stage: str, cfg: dict, checkpoint_every: int,
          milestone: tuple[float, Path] | None = None) -> Ledger:
    """Fit `cfg` for the stage's allotment, resuming from its last checkpoint."""
    stage_dir = ctx.path(stage)
    budget = allotment_s(ctx.size, stage, ctx.budget_s, _data_spent(ctx))
    ledger_path = stage_dir / "ledger.json"
    ledger = Ledger.read(ledger_path)
    if budget <= 0:
        raise ConfigError(f"stage {stage} has no share of the budget in size {ctx.size.name}")
    if ledger.done:
        return ledger
    stop_at = None if ctx.slice_s is None else min(budget, ledger.spent_s + ctx.slice_s)
    full = configs.budgeted(cfg, stage_dir, ctx.device, budget, checkpoint_every, milestone, stop_at,
                            ledger_every_s=ctx.size.ledger_every_s)
    path = configs.write_config(full, ctx.path("configs", f"{stage}.yaml"))
    argv = training_cli("fit", "--config", path)
    last = resume_checkpoint(stage_dir / "checkpoints")
    if last is not None:
        argv += ["--ckpt_path", last]
    ctx.say(f"{stage}: {ledger.spent_s / 60:.1f} of {budget / 60:.1f} min spent, step {ledger.steps}"
            + (f" (resuming from {last.name})" if last is not None else ""))
    run_process(ctx, stage, argv)
    ledger = Ledger.read(ledger_path)
    target = budget if stop_at is None else stop_at
    if not ledger.done and ledger.spent_s < target:
        raise StageFailed(f"stage {stage} ended before its time was spent "
                          f"({ledger.spent_s / 60:.1f} of {target / 60:.1f} min); rerun to resume")
    return ledger


def _reuse_or_train(ctx: Context, stage: str, reuse: str | None, recipe: str,
                    export_kind: str) -> None:
    dest = ctx.path("models", stage)
    if (dest / "config.json").is_file():
        return
    if ctx.size.share(stage) == 0:
        if not reuse:
            raise ConfigError(f"size {ctx.size.name} gives the {stage} no share and names nothing to reuse")
        from musigen.checkpoints import default_checkpoint

        # a shipped checkpoint's name ("codec_demo"), found like every default checkpoint
        reuse = str(default_checkpoint(reuse))
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(reuse, tmp)
        tmp.rename(dest)
        ctx.say(f"{stage}: reused {reuse} (no share of the budget in size {ctx.size.name})")
        return
    cfg = configs.load_recipes([recipe])
    manifests = {"train_manifest": str(ctx.path("corpus", "train", "manifest.jsonl")),
                 "val_manifest": str(ctx.path("corpus", "val", "manifest.jsonl"))}
    configs.set_init_args(cfg, "data", **manifests)
    if stage == "clap":
        configs.set_init_args(cfg, "data", text_cache=str(ctx.path(stage, "text_cache.safetensors")))
    train(ctx, stage, cfg, checkpoint_every=ctx.size.checkpoint_every)
    last = ctx.path(stage, "checkpoints", "last.ckpt")
    run_process(ctx, stage, musigen_cli("export", export_kind, last, dest))


def codec(ctx: Context) -> None:
    _reuse_or_train(ctx, "codec", ctx.size.codec_reuse, ctx.size.codec_recipe, "codec")


def clap(ctx: Context) -> None:
    _reuse_or_train(ctx, "clap", ctx.size.clap_reuse, ctx.size.clap_recipe, "clap")


def _lm_config(ctx: Context, no_cot: bool, export: Path) -> dict:
    cfg = configs.load_recipes([ctx.size.lm_recipe])
    train_dir, val_dir = ctx.path("data", "musicot", "train"), ctx.path("data", "musicot", "val")
    configs.set_init_args(cfg, "model", data_dir=str(train_dir), export_dir=str(export), no_cot=no_cot)
    configs.set_init_args(cfg, "data", train_dir=str(train_dir), val_dir=str(val_dir))
    if ctx.device == "cuda":
        configs.set_init_args(cfg, "data", num_workers=4)
    return cfg


def lm(ctx: Context) -> bool:
    """The MusiCoT LM; a snapshot after the no-CoT twin's seconds is exported for the ablation."""
    twin = allotment_s(ctx.size, "lm_nocot", ctx.budget_s, _data_spent(ctx))
    milestone = (twin, ctx.path("export", "musicot_at_twin_budget")) if twin > 0 else None
    return train(ctx, "lm", _lm_config(ctx, False, ctx.path("export", "musicot")),
                 checkpoint_every=ctx.size.checkpoint_every,
                 milestone=milestone).done


def lm_nocot(ctx: Context) -> bool:
    return train(ctx, "lm_nocot", _lm_config(ctx, True, ctx.path("export", "musicot_nocot")),
                 checkpoint_every=ctx.size.checkpoint_every).done


def _latent_channels(codec_dir: Path) -> int:
    raw = json.loads((codec_dir / "config.json").read_text())
    if "hidden_size" not in raw:
        raise ConfigError(f"{codec_dir}/config.json has no hidden_size (the latent width)")
    return int(raw["hidden_size"])


def unet(ctx: Context) -> bool:
    """The InstructME U-Net; its triplets are built from the corpus generator with this codec."""
    s = ctx.size
    codec_dir = ctx.path("models", "codec")
    cfg = configs.load_recipes(list(s.unet_recipes))
    model_args = cfg["model"]["init_args"]
    model_args.setdefault("unet", {})["latent_channels"] = _latent_channels(codec_dir)
    model_args["init_from"] = None
    configs.set_init_args(cfg, "model", export_dir=str(ctx.path("export", "instructme")))
    data = cfg["data"]["init_args"]
    for key, n, seed in (("build_train", s.edit_n, 0), ("build_val", s.edit_val_n, 5000000)):
        build = dict(data.get(key) or {})
        build.update(n=n, seed=seed, codec=str(codec_dir))
        build.setdefault("triplets", {})["duration"] = s.edit_duration_s
        data[key] = build
    data["train_dir"] = str(ctx.path("data", "instructme", "train"))
    data["val_dir"] = str(ctx.path("data", "instructme", "val"))
    if ctx.device == "cuda":
        data["num_workers"] = 4
    return train(ctx, "unet", cfg, checkpoint_every=ctx.size.checkpoint_every).done


