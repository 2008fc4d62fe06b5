"""Per-instruction accuracy: each task's rule against the judged source, synthetic judge outputs."""

from __future__ import annotations

import pytest

from musigen.errors import MusigenError
from musigen.eval import check_per_instruction as exported
from musigen.eval.metrics.instruction_accuracy import Op, check_instruction
from musigen.eval.metrics.per_instruction import (
    DEFAULT_MARGIN,
    PerInstructionCheck,
    check_per_instruction,
    summarise_per_instruction,
)
from musigen.eval.metrics.per_instruction_margins import fit_margins, margins_for
from musigen.vocab import INSTRUMENTS

SOURCE = {"drums", "bass", "piano", "guitar"}
HI, LO = 0.9, 0.1  # clear judge verdicts (threshold 0.5, margin DEFAULT_MARGIN = 0.3)


def _truth(present: set[str]) -> dict[str, bool | None]:
    return {k: k in present for k in INSTRUMENTS}


def _p(present: set[str], **override: float) -> dict[str, float]:
    """A judge's clip presence: HI for `present`, LO otherwise, then any overrides."""
    return {**{k: HI if k in present else LO for k in INSTRUMENTS}, **override}


def _check(ops: list[Op], out: dict[str, float], genre: str | None = None,
           src: dict[str, float] | None = None, truth: set[str] = SOURCE,
           **kw: object) -> PerInstructionCheck:
    return check_per_instruction(_truth(truth), src or _p(SOURCE), out, ops, 0.5, genre,
                                 **kw)  # type: ignore[arg-type]


def _other(present: set[str]) -> str:
    """An instrument neither in `present` nor in the source: a stray one for the judge to hear."""
    return next(k for k in INSTRUMENTS if k not in present and k not in SOURCE)


def test_remove_passes_by_crossing_or_by_margin_and_fails_when_nothing_moves() -> None:
    op = [Op("remove", instrument="piano")]
    exact = SOURCE - {"piano"}
    assert _check(op, _p(exact)).success  # judged gone: crossed its threshold
    # the judge still hears some piano in the exact target (0.55 > 0.5) but it fell by > margin
    assert _check(op, _p(exact, piano=0.55)).success
    small = _check(op, _p(exact, piano=0.75))  # fell by 0.15 < margin, still judged present
    assert not small.success and small.wrong_named == ["piano"]
    identity = _check(op, _p(SOURCE))
    assert not identity.success and identity.wrong_named == ["piano"]
    # the judge misses the piano in the source: only a real drop counts (no crossing possible)
    deaf = _p(SOURCE, piano=0.45)
    assert not _check(op, deaf, src=deaf).success  # the do-nothing edit still fails
    assert _check(op, _p(exact, piano=0.1), src=deaf).success
    assert not _check(op, _p(exact, piano=0.3), src=deaf).success  # 0.15 drop: inside the noise


def test_others_are_compared_with_the_judged_source_and_one_flip_is_tolerated() -> None:
    op = [Op("remove", instrument="piano")]
    exact = SOURCE - {"piano"}
    # the judge never hears the guitar of this piece: a judge slip on the source, not on the edit
    deaf = _p(SOURCE, guitar=0.2)
    assert _check(op, _p(exact, guitar=0.2), src=deaf).success
    stray = _other(exact)
    one = _check(op, _p(exact | {stray}))
    assert one.success and one.other_flips == 1 and one.flipped == [stray]
    two = _check(op, _p((exact - {"bass"}) | {stray}))
    assert not two.success and two.named_ok and two.other_flips == 2
    assert two.flipped == sorted(["bass", stray])
    # a changed verdict that moved less than the margin is noise, not a flip
    jitter = _check(op, _p(exact, bass=0.45), src=_p(SOURCE, bass=0.6))
    assert jitter.success and jitter.other_flips == 0
    assert not _check(op, _p(exact), max_flips=0, src=_p(SOURCE, **{stray: 0.9})).success


def test_add_needs_the_instrument_to_come_up() -> None:
    lead = _other(set())
    op = [Op("add", instrument=lead)]
    assert _check(op, _p(SOURCE | {lead})).success
    assert _check(op, _p(SOURCE, **{lead: 0.45})).success  # up 0.35 > margin, under threshold
    assert not _check(op, _p(SOURCE, **{lead: 0.3})).success  # up by 0.2: noise
    missing = _check(op, _p(SOURCE))
    assert not missing.success and missing.wrong_named == [lead] and missing.other_flips == 0
    # the judge already hears the lead in the source: the identity edit fails, a real rise passes
    heard = _p(SOURCE, **{lead: 0.6})
    assert not _check(op, heard, src=heard).success
    assert _check(op, _p(SOURCE | {lead}, **{lead: 0.95}), src=_p(SOURCE, **{lead: 0.55})).success
    assert not _check(op, _p((SOURCE | {lead}) - {"drums", "guitar"})).success  # two flips


def test_extract_needs_the_instrument_kept_and_the_rest_gone() -> None:
    op = [Op("extract", instrument="bass")]
    assert _check(op, _p({"bass"})).success
    near = _check(op, _p({"bass", "drums"}))  # one source instrument survived: one flip allowed
    assert near.success and near.flipped == ["drums"]
    assert not _check(op, _p({"bass", "drums", "piano"})).success
    # the rest fell by more than the margin though the judge still half-hears them: gone
    assert _check(op, _p({"bass"}, drums=0.55, piano=0.55, guitar=0.55)).success
    gone = _check(op, _p({"drums"}))
    assert not gone.success and gone.wrong_named == ["bass"]
    assert _check(op, _p({"bass"}, bass=0.7)).success  # kept: still judged present
    identity = _check(op, _p(SOURCE))
    assert not identity.success and identity.named_ok and identity.other_flips == 3


def test_replace_needs_the_old_gone_and_the_new_present() -> None:
    new = _other(set())
    op = [Op("replace", instrument="piano", new_instrument=new)]
    swapped = (SOURCE - {"piano"}) | {new}
    assert _check(op, _p(swapped)).success
    assert _check(op, _p(swapped - {"guitar"})).success  # one flip
    both = _check(op, _p(swapped | {"piano"}))
    assert not both.success and both.wrong_named == ["piano"]
    neither = _check(op, _p(SOURCE - {"piano"}))
    assert not neither.success and neither.wrong_named == [new]
    # the judge hears the new instrument playing the old part as the old one: not followed
    confused = _check(op, _p(swapped | {"piano"}, piano=0.85))
    assert not confused.success and confused.wrong_named == ["piano"]
    assert not _check(op, _p(SOURCE)).success


def test_genre_remix_needs_the_genre_and_leaves_the_palette_free() -> None:
    op = [Op("remix_genre", genre="funk")]
    anything = {k for k in INSTRUMENTS if k not in SOURCE}
    ok = _check(op, _p(anything), genre="funk")
    assert ok.success and ok.genre_ok and ok.other_flips == 0
    wrong = _check(op, _p(SOURCE), genre="rock")
    assert not wrong.success and wrong.genre_ok is False and wrong.named_ok
    with pytest.raises(MusigenError, match="judged genre"):
        _check(op, _p(SOURCE))


def test_palette_remix_and_multi_round_chains() -> None:
    palette = [Op("remix_instruments", instruments=("drums", "bass"))]
    assert _check(palette, _p({"drums", "bass"})).success
    assert _check(palette, _p({"drums", "bass", "piano"})).success  # one stray
    assert not _check(palette, _p({"drums"})).success  # a palette instrument went
    lead = _other(set())
    chain = [Op("remove", instrument="bass"), Op("add", instrument=lead)]
    final = (SOURCE - {"bass"}) | {lead}
    assert _check(chain, _p(final)).success
    assert not _check(chain, _p(final | {"bass"})).success  # the first instruction was undone
    chain2 = [Op("extract", instrument="piano"), Op("add", instrument="drums")]
    # drums: present in the source, extract removes it, add brings it back: kept, as in the truth
    assert _check(chain2, _p({"piano", "drums"})).success
    assert not _check(chain2, _p({"piano", "drums", "bass", "guitar"})).success


def test_unknown_states_margins_and_bad_input() -> None:
    truth: dict[str, bool | None] = {k: None for k in INSTRUMENTS}
    truth["piano"] = True
    op = [Op("remove", instrument="piano")]
    assert check_per_instruction(truth, _p(SOURCE), _p(SOURCE - {"piano"}), op).success
    unknown = {**_truth(SOURCE), "piano": None}  # the named one's truth unknown: not scored
    assert check_per_instruction(unknown, _p(SOURCE), _p(SOURCE), op).named_ok
    # a per-instrument margin: a 0.2 drop counts for an instrument whose judge noise is small
    drop = _p(SOURCE - {"piano"}, piano=0.7)
    assert not _check(op, drop).success
    assert _check(op, drop, margins={"piano": 0.15}).success
    with pytest.raises(MusigenError, match="at least one"):
        _check([], _p(SOURCE))
    with pytest.raises(MusigenError, match="no presence"):
        check_per_instruction(_truth(SOURCE), {"piano": 0.9}, {"piano": 0.9},
                              [Op("add", instrument="bass")])
    with pytest.raises(MusigenError, match="max_flips"):
        _check(op, _p(SOURCE), max_flips=-1)
    assert exported is check_per_instruction  # re-exported from musigen.eval


def test_margin_fit_and_shipped_margins() -> None:
    moves = {"piano": [0.1, -0.1] * 3 + [0.3, -0.3] * 2, "bass": [0.0] * 10, "organ": [0.5] * 3}
    m = fit_margins(moves, quantile=0.8)
    assert m["piano"] == pytest.approx(0.3)  # 80 % of its movements (up or down) are within 0.3
    assert m["bass"] == 0.05  # the floor
    assert "organ" not in m  # too few movements: the default margin
    with pytest.raises(MusigenError, match="quantile"):
        fit_margins(moves, quantile=1.0)
    shipped = margins_for("musigen-judge:judge_codec")
    assert shipped and all(0.05 <= v < 1.0 for v in shipped.values())
    assert margins_for("some other judge") == {} and 0.0 < DEFAULT_MARGIN < 1.0


def test_summary() -> None:
    op = [Op("remove", instrument="piano")]
    stray = _other(SOURCE)
    checks = [_check(op, _p(SOURCE - {"piano"})), _check(op, _p((SOURCE - {"piano"}) | {stray})),
              _check(op, _p(SOURCE))]
    summary = summarise_per_instruction(checks)
    assert summary["instruction_accuracy_per_instruction"] == pytest.approx(2 / 3)
    assert summary["named_ok"] == pytest.approx(2 / 3)
    assert summary["other_flips"] == pytest.approx(1 / 3)
    assert summarise_per_instruction([])["instruction_accuracy_per_instruction"] is None


def test_one_judge_slip_fails_the_old_metric_but_not_the_new_one() -> None:
    """Why the metric exists: one misheard bystander, or a judge deaf to one part."""
    op = [Op("remove", instrument="piano")]
    target = SOURCE - {"piano"}
    slip = _p(target | {_other(SOURCE)})
    assert not check_instruction(_truth(SOURCE), _truth(target), slip, op).success
    assert _check(op, slip).success
    deaf = _p(target, guitar=0.2)  # the judge never hears this guitar, in the source either
    assert not check_instruction(_truth(SOURCE), _truth(target), deaf, op).success
    assert _check(op, deaf, src=_p(SOURCE, guitar=0.2)).success
