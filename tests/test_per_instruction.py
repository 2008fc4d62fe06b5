"""Per-instruction accuracy: each task's rule, with synthetic judge verdicts (pass and fail)."""

from __future__ import annotations

import pytest

from musigen.errors import MusigenError
from musigen.eval import check_per_instruction as exported
from musigen.eval.metrics.instruction_accuracy import Op, check_instruction
from musigen.eval.metrics.per_instruction import (
    PerInstructionCheck,
    check_per_instruction,
    summarise_per_instruction,
)
from musigen.vocab import INSTRUMENTS

SOURCE = {"drums", "bass", "piano", "guitar"}


def _state(present: set[str]) -> dict[str, bool | None]:
    return {k: k in present for k in INSTRUMENTS}


def _judged(present: set[str]) -> dict[str, bool]:
    return {k: k in present for k in INSTRUMENTS}


def _check(ops: list[Op], judged: set[str], genre: str | None = None,
           source: set[str] = SOURCE) -> PerInstructionCheck:
    return check_per_instruction(_state(source), _judged(judged), ops, genre)


def _other(present: set[str]) -> str:
    """An instrument neither in `present` nor in the source: a stray one for the judge to hear."""
    return next(k for k in INSTRUMENTS if k not in present and k not in SOURCE)


def test_remove_needs_the_instrument_gone_and_tolerates_one_flip() -> None:
    op = [Op("remove", instrument="piano")]
    exact = SOURCE - {"piano"}
    assert _check(op, exact).success
    stray = _other(exact)
    one = _check(op, exact | {stray})  # the judge hears one instrument that is not there
    assert one.success and one.other_flips == 1 and one.flipped == [stray]
    assert _check(op, exact - {"bass"}).success  # ... or misses one that is
    two = _check(op, (exact - {"bass"}) | {stray})
    assert not two.success and two.named_ok and two.other_flips == 2
    kept = _check(op, SOURCE)
    assert not kept.success and not kept.named_ok and kept.wrong_named == ["piano"]


def test_add_needs_the_instrument_present() -> None:
    lead = _other(set())
    op = [Op("add", instrument=lead)]
    assert _check(op, SOURCE | {lead}).success
    assert _check(op, (SOURCE | {lead}) - {"drums"}).success  # one flip
    missing = _check(op, SOURCE)
    assert not missing.success and missing.wrong_named == [lead] and missing.other_flips == 0
    assert not _check(op, (SOURCE | {lead}) - {"drums", "guitar"}).success  # two flips


def test_extract_needs_the_instrument_and_nearly_nothing_else() -> None:
    op = [Op("extract", instrument="bass")]
    assert _check(op, {"bass"}).success
    near = _check(op, {"bass", "drums"})  # one source instrument survived: "the only one" up to one flip
    assert near.success and near.flipped == ["drums"]
    assert not _check(op, {"bass", "drums", "piano"}).success  # two survived
    gone = _check(op, {"drums"})
    assert not gone.success and gone.wrong_named == ["bass"]
    # the others are judged against "absent", not against the source: keeping the mix fails
    assert not _check(op, SOURCE).success


def test_replace_needs_the_old_gone_and_the_new_present() -> None:
    new = _other(set())
    op = [Op("replace", instrument="piano", new_instrument=new)]
    swapped = (SOURCE - {"piano"}) | {new}
    assert _check(op, swapped).success
    assert _check(op, swapped - {"guitar"}).success  # one flip
    both = _check(op, swapped | {"piano"})
    assert not both.success and both.wrong_named == ["piano"]
    neither = _check(op, SOURCE - {"piano"})
    assert not neither.success and neither.wrong_named == [new]
    assert not _check(op, swapped - {"guitar", "drums"}).success  # two flips


def test_genre_remix_needs_the_genre_and_leaves_the_palette_free() -> None:
    op = [Op("remix_genre", genre="funk")]
    anything = {k for k in INSTRUMENTS if k not in SOURCE}  # a whole new palette: not scored
    ok = _check(op, anything, genre="funk")
    assert ok.success and ok.genre_ok and ok.other_flips == 0
    wrong = _check(op, SOURCE, genre="rock")
    assert not wrong.success and wrong.genre_ok is False and wrong.named_ok
    with pytest.raises(MusigenError, match="judged genre"):
        _check(op, SOURCE)


def test_palette_remix_and_multi_round_chains() -> None:
    palette = [Op("remix_instruments", instruments=("drums", "bass"))]
    assert _check(palette, {"drums", "bass"}).success
    assert _check(palette, {"drums", "bass", "piano"}).success  # one stray
    assert not _check(palette, {"drums"}).success  # a palette instrument is missing
    lead = _other(set())
    chain = [Op("remove", instrument="bass"), Op("add", instrument=lead)]
    final = (SOURCE - {"bass"}) | {lead}
    assert _check(chain, final).success
    assert not _check(chain, final | {"bass"}).success  # the first instruction was undone
    # extract then add: the added instrument is named, the rest are expected absent
    chain2 = [Op("extract", instrument="piano"), Op("add", instrument="drums")]
    assert _check(chain2, {"piano", "drums"}).success
    assert not _check(chain2, {"piano", "drums", "bass", "guitar"}).success


def test_unknown_source_states_are_not_scored_and_bad_input_fails() -> None:
    source: dict[str, bool | None] = {k: None for k in INSTRUMENTS}
    source["piano"] = True
    everything = set(INSTRUMENTS) - {"piano"}
    assert check_per_instruction(source, _judged(everything), [Op("remove", instrument="piano")]).success
    with pytest.raises(MusigenError, match="at least one"):
        check_per_instruction(source, _judged(set()), [])
    with pytest.raises(MusigenError, match="no verdict"):
        check_per_instruction(source, {"piano": True}, [Op("add", instrument="bass")])
    assert exported is check_per_instruction  # re-exported from musigen.eval


def test_stricter_than_one_flip_and_the_summary() -> None:
    op = [Op("remove", instrument="piano")]
    judged = (SOURCE - {"piano"}) | {_other(SOURCE)}
    assert not check_per_instruction(_state(SOURCE), _judged(judged), op, max_flips=0).success
    checks = [_check(op, SOURCE - {"piano"}), _check(op, judged), _check(op, SOURCE)]
    summary = summarise_per_instruction(checks)
    assert summary["instruction_accuracy_per_instruction"] == pytest.approx(2 / 3)
    assert summary["named_ok"] == pytest.approx(2 / 3)
    assert summary["other_flips"] == pytest.approx(1 / 3)
    assert summarise_per_instruction([])["instruction_accuracy_per_instruction"] is None


def test_one_judge_slip_fails_the_old_metric_but_not_the_new_one() -> None:
    """Why the new metric exists: an exact edit with one misheard bystander."""
    op = [Op("remove", instrument="piano")]
    target = SOURCE - {"piano"}
    slip = target | {_other(SOURCE)}
    presence = {k: 0.9 if k in slip else 0.1 for k in INSTRUMENTS}
    assert not check_instruction(_state(SOURCE), _state(target), presence, op).success
    assert _check(op, slip).success
