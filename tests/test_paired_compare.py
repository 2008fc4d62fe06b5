"""`musigen eval compare`: paired per-item differences between edit reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from musigen.cli import main
from musigen.errors import ConfigError, DataError
from musigen.eval.harness.paired_compare import compare, load_items


def report(path: Path, systems: dict[str, dict[str, float]], tasks: dict[str, str]) -> str:
    """A metrics.json shaped like `musigen eval edit`'s, with si_sdr and success per item."""
    path.write_text(json.dumps({
        "kind": "edit", "system_order": list(systems),
        "systems": {name: {"tasks": {}, "items": [
            {"id": k, "task": tasks[k], "si_sdr": v, "success": v > 0} for k, v in values.items()]}
            for name, values in systems.items()}}))
    return str(path)


TASKS = {"remove0": "remove", "remove1": "remove", "remove2": "remove", "remix0": "remix"}


def test_differences_are_paired_per_item_and_per_task(tmp_path: Path) -> None:
    ref = report(tmp_path / "a.json", {"full": {"remove0": 1.0, "remove1": 2.0, "remove2": 3.0,
                                                "remix0": -20.0}}, TASKS)
    other = report(tmp_path / "b.json", {"ablation": {"remove0": 2.0, "remove1": 2.5, "remove2": 2.0,
                                                      "remix0": -10.0, "extra": 5.0}},
                   {**TASKS, "extra": "add"})
    _, a = load_items(ref)
    _, b = load_items(other)
    stats = compare(a, b)
    diffs = [1.0, 0.5, -1.0]
    mean = sum(diffs) / 3
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2 / 3)
    assert stats["remove"]["mean"] == pytest.approx(mean) and stats["remove"]["se"] == pytest.approx(se)
    assert (stats["remove"]["higher"], stats["remove"]["lower"], stats["remove"]["n"]) == (2, 1, 3)
    assert stats["all"]["n"] == 4 and stats["all"]["mean"] == pytest.approx((sum(diffs) + 10.0) / 4)
    assert "add" not in stats  # an item only one report scored is not compared
    without = compare(a, b, exclude_tasks=["remix"])
    assert "remix" not in without and without["all"]["mean"] == pytest.approx(mean)
    assert compare(a, b, "success")["all"]["mean"] == pytest.approx(0.0)  # 3 of 4 succeed in both


def test_a_system_is_picked_with_a_hash_and_bad_reports_fail_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    two = report(tmp_path / "two.json", {"model": {"remove0": 1.0}, "identity": {"remove0": 3.0}}, TASKS)
    assert load_items(two)[0] == "model" and load_items(two + "#identity")[1]["remove0"]["si_sdr"] == 3.0
    with pytest.raises(ConfigError, match="no system 'nope'"):
        load_items(two + "#nope")
    (tmp_path / "gen.json").write_text(json.dumps({"kind": "generate", "systems": {}}))
    with pytest.raises(DataError, match="neither the metrics.json"):
        load_items(str(tmp_path / "gen.json"))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match="cannot read"):
        load_items(str(tmp_path / "broken.json"))
    other = report(tmp_path / "other.json", {"x": {"remix9": 1.0}}, {"remix9": "remix"})
    with pytest.raises(DataError, match="share no scored items"):
        compare(load_items(two)[1], load_items(other)[1])
    with pytest.raises(ConfigError, match="unknown metric"):
        compare(load_items(two)[1], load_items(two)[1], "loudness")

    out = tmp_path / "cmp.json"
    assert main(["eval", "compare", two, two + "#identity", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| remove | +2.000" in printed and json.loads(out.read_text())["metric"] == "si_sdr"
    assert main(["eval", "compare", two, str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("musigen: error:") and "\n" not in err


def test_sweep_outputs_compare_by_si_sdr_with_the_task_from_the_item_id(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"model": "runs/inv/long", "items": ["remove0900", "two_round0901"],
                                 "rows": [{"label": "25:1.5:1", "per_item": {"remove0900": 1.0,
                                                                             "two_round0901": -2.0}},
                                          {"label": "25:3:1", "per_item": {"remove0900": 2.0,
                                                                           "two_round0901": -4.0}}]}))
    name, items = load_items(str(sweep))
    assert name == "long#25:1.5:1" and items["two_round0901"]["task"] == "two_round"
    stats = compare(items, load_items(f"{sweep}#25:3:1")[1])
    assert stats["remove"]["mean"] == 1.0 and stats["two_round"]["mean"] == -2.0
    with pytest.raises(ConfigError, match="no setting"):
        load_items(f"{sweep}#25:9:9")
