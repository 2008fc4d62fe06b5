"""Loss against compute for a train-demos run: what each stage's hours bought.

Reads every `<out>/<stage>/logs/version_*/metrics.csv` (Lightning's CSVLogger; resumed runs
add versions), pairs each validation loss with the wall hours the stage had spent at that step
(`budget/spent_h`, logged by StageBudget; for steps logged before it existed, the hours are
interpolated from the ledger), and writes a table and a plot.

    musigen train-demos --out runs/demos --budget 36h --curves
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from musigen.atomic import atomic_path, write_text
from musigen.training.stage_budget import Ledger

STAGES = ("codec", "clap", "lm", "lm_nocot", "unet")


@dataclass
class Point:
    step: int
    hours: float | None
    val_loss: float | None
    train_loss: float | None


def read_points(stage_dir: Path) -> list[Point]:
    """Validation and training losses by step, merged over every logger version."""
    rows: dict[int, dict[str, float]] = {}
    for csv_path in sorted(stage_dir.glob("logs/version_*/metrics.csv")):
        with open(csv_path, newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    step = int(float(row.get("step") or -1))
                except ValueError:
                    continue
                slot = rows.setdefault(step, {})
                for key, value in row.items():
                    if value not in (None, "") and key != "step":
                        try:
                            slot[key] = float(value)
                        except ValueError:
                            pass
    ledger = Ledger.read(stage_dir / "ledger.json")
    rate = ledger.spent_s / 3600.0 / ledger.steps if ledger.steps else None
    points = []
    for step in sorted(rows):
        slot = rows[step]
        hours = slot.get("budget/spent_h")
        if hours is None and rate is not None:
            hours = step * rate
        val = slot.get("val/loss")
        train = slot.get("train/loss") or slot.get("train/loss_step")
        if val is not None or train is not None:
            points.append(Point(step, hours, val, train))
    return points


def write_curves(out: Path) -> tuple[Path, Path | None]:
    """`<out>/curves.md` (validation losses by hours) and `<out>/curves.png` when matplotlib is there."""
    lines = ["# Loss against compute", "",
             "Validation loss of each training stage against the wall hours it had spent "
             "(one process, one thread on a CPU).", ""]
    series: dict[str, list[Point]] = {}
    for stage in STAGES:
        points = [p for p in read_points(out / stage) if p.val_loss is not None]
        if not points:
            continue
        series[stage] = points
        lines += [f"## {stage}", "", "| step | hours | val loss |", "|---|---|---|"]
        lines += [f"| {p.step} | {'-' if p.hours is None else f'{p.hours:.2f}'} | {p.val_loss:.4f} |"
                  for p in points]
        lines.append("")
    md = write_text(out / "curves.md", "\n".join(lines))
    if not series:
        return md, None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return md, None
    fig, ax = plt.subplots(figsize=(6, 4))
    for stage, points in series.items():
        xs = [p.hours if p.hours is not None else float("nan") for p in points]
        ax.plot(xs, [p.val_loss for p in points], marker="o", label=stage)
    ax.set_xlabel("core-hours spent (wall, one thread)")
    ax.set_ylabel("validation loss")
    ax.set_xscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    png = out / "curves.png"
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return md, png
