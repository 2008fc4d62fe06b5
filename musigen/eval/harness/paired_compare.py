"""Paired comparison of edit systems item by item, from their saved evaluation reports.

Two systems scored on the same held-out triplets differ by less than the spread between
triplets, so their mean SI-SDRs alone say little at 48 items. Here each item's metric under a
system is compared with the same item under a reference system: per task, the mean difference,
its standard error over items, and how many items went up. `--exclude-task remix` leaves out the
task whose target is a different rendering (its SI-SDR swings by tens of dB and says little).

    musigen eval compare runs/eval/full/metrics.json runs/eval/no_chords/metrics.json \\
        [--metric si_sdr] [--exclude-task remix] [--json out.json]

A report path may end in ``#SYSTEM`` to pick one system of a report that holds several
(e.g. its baselines); otherwise the report's first system is used. The output of
`musigen eval sweep-edit` (dev items) works too, SI-SDR only, with ``#SETTING-LABEL``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from musigen.errors import ConfigError, DataError

#: Item metrics that are numbers (booleans count as 0/1: a difference in success rate).
METRICS: tuple[str, ...] = ("si_sdr", "log_mel", "chord_kept_majmin", "chord_majmin", "success",
                            "per_instruction_success", "target_ok", "others_ok")


def load_items(spec: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """`path[#system]` of an edit report -> (system name, {item id: item})."""
    path, _, system = spec.partition("#")
    try:
        report = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"report not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read the report {path}: {exc}") from None
    if isinstance(report, dict) and isinstance(report.get("rows"), list) and "items" in report:
        return _sweep_items(report, path, system)
    if not isinstance(report, dict) or report.get("kind") != "edit" or "systems" not in report:
        raise DataError(f"{path} is neither the metrics.json of `musigen eval edit` nor a "
                        "`musigen eval sweep-edit` output")
    order = report.get("system_order") or list(report["systems"])
    name = system or order[0]
    if name not in report["systems"]:
        raise ConfigError(f"{path} has no system {name!r}; it has {', '.join(order)}")
    return name, {item["id"]: item for item in report["systems"][name]["items"]}


def _sweep_items(report: dict[str, Any], path: str,
                 label: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """A sweep's setting (its label, or the first) -> SI-SDR per item; the task is the id's stem."""
    labels = [row["label"] for row in report["rows"]]
    if not labels:
        raise DataError(f"{path} holds no scored settings")
    name = label or labels[0]
    if name not in labels:
        raise ConfigError(f"{path} has no setting {name!r}; it has {', '.join(labels)}")
    row = report["rows"][labels.index(name)]
    model = Path(str(report.get("model") or "sweep")).name
    items = {key: {"id": key, "task": re.sub(r"\d+$", "", key), "si_sdr": value}
             for key, value in row.get("per_item", {}).items()}
    return (f"{model}#{name}" if label or len(labels) > 1 else model), items


def _stats(diffs: list[float]) -> dict[str, float | int]:
    n = len(diffs)
    mean = sum(diffs) / n
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "se": se, "higher": sum(d > 0 for d in diffs),
            "lower": sum(d < 0 for d in diffs)}


def compare(reference: dict[str, dict[str, Any]], other: dict[str, dict[str, Any]],
            metric: str = "si_sdr", exclude_tasks: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Per task (and "all"), statistics of `other - reference` over the items both scored."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    by_task: dict[str, list[float]] = {}
    for key, ref_item in reference.items():
        item = other.get(key)
        if item is None or ref_item.get("task") in exclude_tasks:
            continue
        a, b = item.get(metric), ref_item.get(metric)
        if a is None or b is None or not math.isfinite(float(a) - float(b)):
            continue  # e.g. chords of a silent output
        for task in (ref_item.get("task", "?"), "all"):
            by_task.setdefault(task, []).append(float(a) - float(b))
    if "all" not in by_task:
        raise DataError("the two reports share no scored items; were they made on the same set?")
    order = sorted(k for k in by_task if k != "all") + ["all"]
    return {task: _stats(by_task[task]) for task in order}


def format_table(names: list[str], results: list[dict[str, dict[str, Any]]], metric: str) -> str:
    """A Markdown table: one row per task, one column per compared system."""
    tasks = list(dict.fromkeys(t for r in results for t in r))
    head = "| task | " + " | ".join(f"{n} - {names[0]}" for n in names[1:]) + " |"
    lines = [f"{metric}: paired difference against {names[0]}, mean ± standard error (items up / down)",
             head, "|---" * (len(names)) + "|"]
    for task in tasks:
        cells = []
        for r in results:
            s = r.get(task)
            cells.append("" if s is None else
                         f"{s['mean']:+.3f} ± {s['se']:.3f} ({s['higher']}/{s['lower']} of {s['n']})")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", help="metrics.json of `musigen eval edit` or a sweep-edit output "
                                     "(optionally #SYSTEM or #SETTING)")
    p.add_argument("others", nargs="+", help="reports to compare with it, item by item")
    p.add_argument("--metric", default="si_sdr", choices=METRICS, help="per-item metric to compare")
    p.add_argument("--exclude-task", action="append", default=[],
                   help="leave a task out (repeatable), e.g. remix")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")


def run_from_args(args: argparse.Namespace) -> int:
    ref_name, ref_items = load_items(args.reference)
    names, results = [ref_name], []
    for spec in args.others:
        name, items = load_items(spec)
        names.append(name if name not in names else spec)
        results.append(compare(ref_items, items, args.metric, args.exclude_task))
    print(format_table(names, results, args.metric))
    if args.json is not None:
        from musigen.atomic import write_json

        write_json(args.json, {"metric": args.metric, "reference": args.reference,
                               "exclude_tasks": args.exclude_task,
                               "others": {s: r for s, r in zip(args.others, results, strict=True)}})
        print(f"wrote {args.json}")
    return 0
