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
    #: the LMs: the audio part of the loss alone (nats per audio token)
    val_audio: float | None = None
    train_audio: float | None = None


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
            points.append(Point(step, hours, val, train, slot.get("val/audio_loss"), slot.get("train/audio_loss")))
    return points


def binned_train(points: list[Point], bins: int = 12) -> list[tuple[int, float | None, float, float | None]]:
    """Training loss (and audio loss) averaged over about `bins` equal step ranges:
    (last step, hours, mean loss, mean audio loss or None)."""
    train = [p for p in points if p.train_loss is not None]
    if not train:
        return []
    size = max(1, len(train) // bins)
    out = []
    for i in range(0, len(train), size):
        chunk = train[i:i + size]
        audio = [p.train_audio for p in chunk if p.train_audio is not None]
        out.append((chunk[-1].step, chunk[-1].hours, sum(p.train_loss or 0.0 for p in chunk) / len(chunk),
                    sum(audio) / len(audio) if audio else None))
    return out


def write_curves(out: Path) -> tuple[Path, Path | None]:
    """`<out>/curves.md` (validation losses by hours) and `<out>/curves.png` when matplotlib is there."""
    lines = ["# Loss against compute", "",
             "Losses of each training stage against the wall hours it had spent (one process, one "
             "thread on a CPU). For the LMs the loss is audio + plan cross-entropy; the audio loss "
             "is nats per audio token (uniform over 1,024 codes: 6.93).", ""]
    series: dict[str, list[Point]] = {}
    for stage in STAGES:
        every = read_points(out / stage)
        points = [p for p in every if p.val_loss is not None]
        train = binned_train(every)
        if not points and not train:
            continue
        series[stage] = points  # validation points; the plot adds the binned training losses
        lines += [f"## {stage}", "", "| step | hours | val loss | val audio loss | train loss (bin mean) | "
                  "train audio loss (bin mean) |", "|---|---|---|---|---|---|"]
        rows: dict[int, list] = {p.step: [p.hours, p.val_loss, p.val_audio, None, None] for p in points}
        for step, hours, loss, audio in train:
            row = rows.setdefault(step, [hours, None, None, None, None])
            row[0] = row[0] if row[0] is not None else hours
            row[3], row[4] = loss, audio
        for step in sorted(rows):
            hours, *values = rows[step]
            cells = " | ".join("-" if v is None else f"{v:.4f}" for v in values)
            lines.append(f"| {step} | {'-' if hours is None else f'{hours:.2f}'} | {cells} |")
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
    for i, stage in enumerate(series):
        color = f"C{i}"
        train = binned_train(read_points(out / stage))
        if train:
            ax.plot([t[1] for t in train], [t[2] for t in train], color=color, label=f"{stage} train")
            audio = [(t[1], t[3]) for t in train if t[3] is not None]
            if audio:
                ax.plot(*zip(*audio), color=color, linestyle=":", label=f"{stage} train, audio part")
        points = series[stage]
        if points:
            ax.plot([p.hours for p in points], [p.val_loss for p in points], "o", color=color,
                    label=f"{stage} validation")
    ax.set_xlabel("hours spent (wall, one thread)")
    ax.set_ylabel("loss (nats)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    png = out / "curves.png"
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return md, png
