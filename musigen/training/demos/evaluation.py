"""The last stage of train-demos: held-out evaluation and a table beside the shipped checkpoints.

It runs the ordinary `musigen eval make-sets / generate / edit` commands on the run's exports
and, when the repository's shipped checkpoints are there, on those too, with the same sets
and seeds, then writes `<out>/report.md` from each report's metrics.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from musigen.atomic import write_text
from musigen.training.demos.stages import Context, musigen_cli, run_process

SHIPPED = {"musicot": Path("checkpoints/musicot_demo"), "instructme": Path("checkpoints/instructme_demo")}

#: (label, keys under a system's entry in metrics.json) shown in the table when present
GEN_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("judge FAD", ("metrics", "fad_judge")),
    ("CLAP FAD", ("metrics", "fad_clap")),
    ("CLAP score", ("metrics", "clap")),
    ("instrument F1", ("metrics", "instrument_f1")),
    ("genre acc", ("metrics", "genre_acc")),
    ("KL", ("metrics", "kl_judge")),
)
EDIT_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SI-SDR all", ("tasks", "all", "si_sdr")),
    ("remove", ("tasks", "remove", "si_sdr")),
    ("extract", ("tasks", "extract", "si_sdr")),
    ("instr. acc (per instruction)", ("tasks", "all", "instruction_accuracy_per_instruction")),
    ("instr. acc (all instruments)", ("tasks", "all", "instruction_accuracy")),
    ("chords kept", ("tasks", "all", "chord_kept_majmin")),
)
#: baselines of the first report shown as floors and ceilings beside the systems
FLOORS = {"generate": ("random-clip", "reference"), "edit": ("identity", "identity-codec", "target-codec")}


def _systems(ctx: Context) -> dict[str, list[tuple[str, Path]]]:
    gen = [("this run: MusiCoT", ctx.path("export", "musicot")),
           ("this run: no-CoT twin", ctx.path("export", "musicot_nocot")),
           ("this run: MusiCoT at the twin's budget", ctx.path("export", "musicot_at_twin_budget")),
           ("shipped: musicot_demo", SHIPPED["musicot"])]
    edit = [("this run: InstructME", ctx.path("export", "instructme")),
            ("shipped: instructme_demo", SHIPPED["instructme"])]
    keep = (lambda label: True) if ctx.size.compare_shipped else (lambda label: label.startswith("this"))
    return {"generate": [(n, p) for n, p in gen if keep(n) and (p / "pipeline.json").is_file()],
            "edit": [(n, p) for n, p in edit if keep(n) and (p / "pipeline.json").is_file()]}


def evaluate(ctx: Context) -> None:
    s = ctx.size
    sets = ctx.path("eval", "sets")
    if not (sets / "sets.json").is_file() and not any(sets.glob("*/items.jsonl")):
        run_process(ctx, "eval", musigen_cli("eval", "make-sets", "--out", sets, "--n-gen", s.eval_gen,
                                             "--n-edit", s.eval_edit, "--duration", s.eval_duration_s,
                                             "--fluidsynth", "no", "--no-progress"))
    rows: dict[str, list[tuple[str, dict[str, Any]]]] = {"generate": [], "edit": []}
    floors: dict[str, list[tuple[str, dict[str, Any]]]] = {"generate": [], "edit": []}
    clap = ctx.path("models", "clap")
    for kind, systems in _systems(ctx).items():
        for i, (label, model) in enumerate(systems):
            report = ctx.path("eval", kind, model.name if label.startswith("this") else f"shipped_{model.name}")
            metrics = report / "metrics.json"
            if not metrics.is_file():
                argv = musigen_cli("eval", kind, "--model", model, "--set", sets, "--out", report,
                                   "--clap", clap, "--listen", 0)
                if i > 0:
                    argv.append("--no-baselines")
                run_process(ctx, "eval", argv)
            report_json = json.loads(metrics.read_text())
            systems_json = report_json.get("systems", {})
            order = report_json.get("system_order") or list(systems_json)
            rows[kind].append((label, systems_json.get(order[0], {}) if order else {}))
            if i == 0:
                floors[kind] = [(f"baseline: {name}", systems_json[name]) for name in FLOORS[kind]
                                if name in systems_json]
    write_text(ctx.path("report.md"), render_report(ctx, {k: rows[k] + floors[k] for k in rows}))
    ctx.say(f"eval: wrote {ctx.path('report.md')}")


def _lookup(entry: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    """The number at `keys` in a system's entry (a metric may be a number or {"value": ...})."""
    cur: Any = entry
    for key in keys:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    if isinstance(cur, dict):
        cur = cur.get("value")
    return float(cur) if isinstance(cur, (int, float)) else None


def _table(rows: list[tuple[str, dict[str, Any]]], columns: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    head = "| system | " + " | ".join(c for c, _ in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    for label, metrics in rows:
        cells = [_lookup(metrics, keys) for _, keys in columns]
        lines.append(f"| {label} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |")
    return "\n".join(lines)


def render_report(ctx: Context, rows: dict[str, list[tuple[str, dict[str, Any]]]]) -> str:
    state = ctx.state
    spent = "\n".join(f"| {name} | {rec.wall_s / 60:.1f} |" for name, rec in state.stages.items()
                      if name != "eval")
    return (f"# train-demos report ({ctx.size.name}, {ctx.device})\n\n"
            f"Held-out sets: `{ctx.path('eval', 'sets')}`; every report's metrics.json is under "
            f"`{ctx.path('eval')}`.\n\n## Generation\n\n{_table(rows['generate'], GEN_COLUMNS)}\n\n"
            f"## Editing\n\n{_table(rows['edit'], EDIT_COLUMNS)}\n\n"
            f"## Wall time per stage (min)\n\n| stage | min |\n|---|---|\n{spent}\n")
