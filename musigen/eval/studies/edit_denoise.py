"""Does the InstructME U-Net know more about the target than the source already says?

Audio metrics of sampled edits mix three things: what the U-Net has learned, the sampler
and guidance, and the codec.  This diagnostic isolates the first.  On pre-encoded triplets
(the training format, e.g. the validation split) it noises the *target* latent to chosen
timesteps, asks the U-Net for its clean estimate once, and reports the per-task mean
squared error to the target in normalised latent units, beside two floors that need no
model: copying the source ("identity") and predicting zeros (the latent mean).

Read it per task: at a high timestep the input says almost nothing, so an estimate worse
than the source floor on add/remove/replace means the U-Net has not even learned to keep
what the instruction leaves alone; the "no source" row (source and chords dropped, as
CFG's unconditional pass) shows how much the source pathway contributes, and the "no
instruction" row (text dropped, source kept: CFG's source-only pass) how much the
instruction does: where it equals the full row, the U-Net ignores what it is told.

    musigen eval edit-denoise --model checkpoints/instructme_demo \\
        --data data/instructme_demo/val --out runs/denoise.json
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musigen.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from musigen.instructme.diffusion import EditConditions, EditDiffusion

DEFAULT_TIMESTEPS = (300, 600, 800, 990)


def per_task_mse(estimate: torch.Tensor, target: torch.Tensor, tasks: Sequence[str]) -> dict[str, float]:
    """Mean squared error per item ([B, D, T] -> [B]), averaged per task, plus "all"."""
    errors = ((estimate.float() - target.float()) ** 2).mean(dim=(1, 2)).tolist()
    out = {task: sum(e for e, k in zip(errors, tasks) if k == task) / tasks.count(task)
           for task in sorted(set(tasks))}
    out["all"] = sum(errors) / len(errors)
    return out


def check_timesteps(timesteps: Sequence[int], steps: int) -> None:
    """ConfigError unless every timestep is in 0..steps-1 (and there is at least one)."""
    if not timesteps or any(not 0 <= int(t) < steps for t in timesteps):
        raise ConfigError(f"timesteps must be integers in 0..{steps - 1}, got {list(timesteps)}")


def denoise_report(unet: torch.nn.Module, diffusion: EditDiffusion, cond: EditConditions,
                   target: torch.Tensor, tasks: Sequence[str],
                   timesteps: Sequence[int] = DEFAULT_TIMESTEPS, seed: int = 0) -> dict[str, Any]:
    """Floors and, per timestep, the clean-estimate error: full, without the source, without the text."""
    import torch

    if len(tasks) != target.shape[0]:
        raise ConfigError(f"{len(tasks)} task labels for {target.shape[0]} items")
    check_timesteps(timesteps, diffusion.config.num_train_timesteps)
    b = target.shape[0]
    yes = torch.ones(b, dtype=torch.bool)
    dropped = cond.dropped(drop_text=~yes, drop_source=yes,
                           drop_chords=yes if diffusion.config.drop_chords_with_source else ~yes)
    no_text = cond.dropped(drop_text=yes, drop_source=~yes, drop_chords=~yes)
    generator = torch.Generator().manual_seed(seed)
    clean = diffusion.to_diffused(target, cond.source)
    rows = []
    for step in timesteps:
        t = torch.full((b,), int(step), dtype=torch.long)
        noise = torch.randn(clean.shape, generator=generator)
        noisy = diffusion.train_scheduler.add_noise(clean, noise, t)
        row: dict[str, Any] = {"timestep": int(step)}
        with torch.no_grad():
            for name, c in (("full", cond), ("no_source", dropped), ("no_text", no_text)):
                out = unet(noisy, t, c.source, c.text_states, c.text_mask, c.chords)
                row[name] = per_task_mse(diffusion.clean_estimate(out, noisy, t, cond.source), target, tasks)
        rows.append(row)
    return {"floors": {"identity": per_task_mse(cond.source, target, tasks),
                       "zeros": per_task_mse(torch.zeros_like(target), target, tasks)},
            "rows": rows, "counts": {k: list(tasks).count(k) for k in sorted(set(tasks))}}


def format_report(report: dict[str, Any]) -> str:
    """A Markdown table: one line per floor and per (timestep, conditioning)."""
    tasks = list(report["floors"]["identity"])
    lines = ["| estimate | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]

    def line(label: str, values: dict[str, float]) -> str:
        return f"| {label} | " + " | ".join(f"{values[k]:.3f}" for k in tasks) + " |"

    lines.append(line("copy the source (identity)", report["floors"]["identity"]))
    lines.append(line("zeros (latent mean)", report["floors"]["zeros"]))
    for row in report["rows"]:
        lines.append(line(f"t={row['timestep']}, U-Net", row["full"]))
        lines.append(line(f"t={row['timestep']}, U-Net without source", row["no_source"]))
        if "no_text" in row:
            lines.append(line(f"t={row['timestep']}, U-Net without instruction", row["no_text"]))
    return "\n".join(lines)


def run_from_args(args: argparse.Namespace) -> int:
    import torch

    from musigen import hub
    from musigen.atomic import write_json
    from musigen.encode.edit_shards import EditShards, collate_edits
    from musigen.instructme.diffusion import EditConditions, EditDiffusion
    from musigen.instructme.latent_stats import LatentStats
    from musigen.instructme.pipeline import PIPELINE_NAME, InstructMEPipelineConfig
    from musigen.instructme.unet import InstructMEUNet

    if args.items < 1 or args.frames < 1 or args.threads < 1:
        raise ConfigError("--items, --frames and --threads must be >= 1")
    try:
        timesteps = [int(x) for x in args.timesteps.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--timesteps must be comma-separated integers, got {args.timesteps!r}") from None
    torch.set_num_threads(args.threads)
    config = hub.load_config(args.model, InstructMEPipelineConfig, PIPELINE_NAME)
    check_timesteps(timesteps, config.diffusion.num_train_timesteps)  # before the slow loads
    unet_dir = hub.inside(args.model, config.unet, "unet")
    unet = InstructMEUNet.from_pretrained(unet_dir).float().eval()
    stats = LatentStats.load(hub.inside(args.model, config.latent_stats, "latent_stats"))
    shards = EditShards(args.data, crop_frames=args.frames, stats=stats, random_crop=False)
    n = min(args.items, len(shards))
    batch = collate_edits([shards[i] for i in range(n)])
    tasks = [str(item["task"]) for item in shards.index["items"][:n]]
    cond = EditConditions(batch["source"], batch["text_states"], batch["text_mask"], batch["chords"])
    report = denoise_report(unet, EditDiffusion(config.diffusion), cond, batch["target"], tasks,
                            timesteps, args.seed)
    report.update(model=str(args.model), data=str(args.data), frames=args.frames,
                  timesteps=timesteps, seed=args.seed)
    print(format_report(report))
    if args.out:
        write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The diagnostic's options, of `musigen eval edit-denoise`."""
    p.add_argument("--model", type=Path, required=True, help="InstructME pipeline folder")
    p.add_argument("--data", type=Path, required=True, help="pre-encoded triplet folder (e.g. the val split)")
    p.add_argument("--items", type=int, default=64, help="first N items")
    p.add_argument("--frames", type=int, default=256, help="latent frames per item (from the start)")
    p.add_argument("--timesteps", default=",".join(map(str, DEFAULT_TIMESTEPS)),
                   help="comma-separated training timesteps to measure at")
    p.add_argument("--seed", type=int, default=0, help="seed of the added noise")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=None, help="JSON report")
