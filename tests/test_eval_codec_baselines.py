"""The codec baselines of `eval edit`: the exact target and the source through a latent editor's codec.

A latent-diffusion editor can output nothing better than its codec's reconstruction of the
target, so `target-codec` is its real ceiling; these tests check that the round trip is of
the right clip (the target, not the source), through the model's own codec, and that only
systems with a codec get these rows.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from musigen.eval.harness.baselines import CodecRoundTrip, IdentityEdit
from musigen.eval.harness.runner import run_edit_eval
from musigen.eval.harness.set_items import load_set
from musigen.eval.harness.sets import _Synth, build_edit_set
from musigen.eval.metrics.signal_metrics import si_sdr
from musigen.instructme.latent_stats import LatentStats
from musigen.judge.model import InstrumentJudge, JudgeConfig

FRAME = 4  # samples per latent frame of the fake codec
STEP = 0.05  # latent quantisation step: the fake codec's loss


class LossyCodec:
    """Frames of FRAME samples as latent channels, rounded to STEP: a known, lossy round trip."""

    latent_dim = FRAME

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self.calls: list[int] = []

    def encode_latents(self, wav: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        assert sample_rate in (None, self.sample_rate), "the round trip must pass the audio's rate"
        x = wav.reshape(-1)
        n = -(-x.numel() // FRAME) * FRAME
        x = torch.nn.functional.pad(x, (0, n - x.numel()))
        self.calls.append(int(wav.shape[-1]))
        return x.reshape(-1, FRAME).T[None]  # [1, FRAME, T]

    def decode_latents(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor:
        x = (torch.round(z[0] / STEP) * STEP).T.reshape(-1)
        return x[:length][None, None]


def round_trip(x: np.ndarray) -> np.ndarray:
    """What LossyCodec does to a clip, written independently of it."""
    return (np.round(x.astype(np.float32) / STEP) * STEP).astype(np.float32)


class FakeLatentEditor:
    """An edit system with a codec and latent statistics, like the InstructME pipeline."""

    def __init__(self) -> None:
        self.codec = LossyCodec()
        self.stats = LatentStats(torch.linspace(-0.1, 0.1, FRAME), torch.linspace(0.5, 2.0, FRAME))

    def edit(self, wav: np.ndarray, sample_rate: int, instructions: list[str], seed: int) -> np.ndarray:
        return np.zeros_like(wav)


@pytest.fixture(scope="module")
def edit_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("set")
    return build_edit_set(root, 1, _Synth("builtin", 16000, 3.0), tasks=("remove", "extract"))


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("judge")
    InstrumentJudge(JudgeConfig(channels=[4, 8, 8, 8], embedding_dim=8)).save_pretrained(path)
    return path


def test_round_trip_applies_the_codec_to_the_inner_output() -> None:
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(1001)).astype(np.float32)  # not a multiple of FRAME
    system = CodecRoundTrip(IdentityEdit(), LossyCodec(), "identity-codec",
                            LatentStats(torch.zeros(FRAME), torch.full((FRAME,), 3.0)))
    y = system.edit(x, 16000, ["remove drums"], seed=0)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, round_trip(x), atol=1e-6)
    assert not np.allclose(y, x, atol=1e-3)  # the codec is lossy, and the loss reaches the output
    assert system.sample_rate == 16000


def test_delta_round_trip_is_the_source_plus_what_the_codec_says_changed() -> None:
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal(1001)).astype(np.float32)
    quiet = (0.5 * x).astype(np.float32)

    class Halve:
        def edit(self, wav: np.ndarray, sample_rate: int, instructions: list[str], seed: int) -> np.ndarray:
            return 0.5 * wav

    system = CodecRoundTrip(Halve(), LossyCodec(), "target-codec-delta", delta=True)
    y = system.edit(x, 16000, ["remove drums"], seed=0)
    np.testing.assert_allclose(y, x + round_trip(quiet) - round_trip(x), atol=1e-6)
    # a do-nothing inner edit gives the source back exactly, not its round trip
    same = CodecRoundTrip(IdentityEdit(), LossyCodec(), "identity-codec-delta", delta=True)
    np.testing.assert_allclose(same.edit(x, 16000, ["remove drums"], seed=0), x, atol=1e-6)
    masked = CodecRoundTrip(IdentityEdit(), LossyCodec(), "identity-codec-masked", delta=True, masked=True)
    np.testing.assert_allclose(masked.edit(x, 16000, ["remove drums"], seed=0), x, atol=1e-5)
    from musigen.errors import DataError

    with pytest.raises(DataError, match="masked needs delta"):
        CodecRoundTrip(IdentityEdit(), LossyCodec(), "x", masked=True)


def test_a_codec_without_latent_methods_is_refused() -> None:
    from musigen.errors import DataError

    with pytest.raises(DataError, match="encode_latents"):
        CodecRoundTrip(IdentityEdit(), object(), "identity-codec")


def test_eval_edit_adds_target_and_identity_through_the_models_codec(
        edit_set: Path, judge_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    module = types.ModuleType("fake_latent_editor")
    editor = FakeLatentEditor()
    module.Factory = lambda: editor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_latent_editor", module)
    paths = run_edit_eval("fake_latent_editor:Factory", edit_set, tmp_path / "report", judge=str(judge_dir),
                          clap=None, chords=False, n_listen=1)
    metrics = json.loads(Path(paths.metrics).read_text())
    assert metrics["system_order"] == ["fake_latent_editor:Factory", "identity", "random-stem", "target",
                                       "target-codec", "identity-codec"]
    assert editor.codec.calls, "the baselines did not use the model's own codec"
    s = load_set(edit_set)
    by_id = {name: {r["id"]: r for r in metrics["systems"][name]["items"]} for name in metrics["system_order"]}
    for item in s.items:
        source, target = s.audio(item.source), s.audio(item.target)
        ceiling = by_id["target-codec"][item.id]["si_sdr"]
        # the round trip is of the exact target (not of the source), through the lossy codec
        assert ceiling == pytest.approx(si_sdr(round_trip(target), target), abs=1e-3)
        assert 5.0 < ceiling < by_id["target"][item.id]["si_sdr"] - 20.0
        assert by_id["identity-codec"][item.id]["si_sdr"] == pytest.approx(si_sdr(round_trip(source), target),
                                                                           abs=1e-3)
    # a model with a codec: a perfect latent edit beats the do-nothing edit through the same codec
    tasks = metrics["systems"]
    assert tasks["target-codec"]["tasks"]["all"]["si_sdr"] > tasks["identity-codec"]["tasks"]["all"]["si_sdr"]
    assert "target-codec" in (tmp_path / "report" / "report.md").read_text()


def test_no_codec_rows_for_a_system_without_a_codec_or_when_turned_off(
        edit_set: Path, judge_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    module = types.ModuleType("fake_latent_editor2")
    module.Factory = FakeLatentEditor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_latent_editor2", module)
    off = run_edit_eval("fake_latent_editor2:Factory", edit_set, tmp_path / "off", judge=str(judge_dir),
                        clap=None, chords=False, n_listen=1, codec_baselines=False)
    assert json.loads(Path(off.metrics).read_text())["system_order"] == [
        "fake_latent_editor2:Factory", "identity", "random-stem", "target"]
    plain = run_edit_eval("identity", edit_set, tmp_path / "plain", judge=str(judge_dir), clap=None,
                          chords=False, n_listen=1)
    assert json.loads(Path(plain.metrics).read_text())["system_order"] == ["identity", "random-stem", "target"]


def test_a_source_delta_editor_gets_its_own_ceiling_row(edit_set: Path) -> None:
    from musigen.eval.harness.set_items import load_set
    from musigen.eval.harness.systems import codec_baselines

    editor = FakeLatentEditor()
    names = [n for n, _ in codec_baselines(editor, load_set(edit_set))]
    assert names == ["target-codec", "identity-codec"]
    editor.config = types.SimpleNamespace(output="source_delta")  # type: ignore[attr-defined]
    rows = dict(codec_baselines(editor, load_set(edit_set)))
    assert list(rows) == ["target-codec", "identity-codec", "target-codec-delta"]
    assert rows["target-codec-delta"].delta and not rows["target-codec"].delta
    editor.config = types.SimpleNamespace(output="masked_delta")  # type: ignore[attr-defined]
    rows = dict(codec_baselines(editor, load_set(edit_set)))
    assert list(rows) == ["target-codec", "identity-codec", "target-codec-delta", "target-codec-masked"]
    assert rows["target-codec-masked"].masked and not rows["target-codec-delta"].masked
