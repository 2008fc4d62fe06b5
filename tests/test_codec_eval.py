"""The codec evaluation: every round trip is scored, chords on the paths asked for."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from musigen.codec import Codec, encodec_config, fill_codebooks
from musigen.errors import DataError
from musigen.eval.harness.codec import evaluate, format_summary


def _codec() -> Codec:
    torch.manual_seed(0)
    codec = Codec.from_config(encodec_config(sample_rate=16000, upsampling_ratios=[8, 5, 4, 2], num_filters=4,
                                             hidden_size=16, codebook_size=32, num_codebooks=3, num_lstm_layers=1))
    fill_codebooks(codec.model, generator=torch.Generator().manual_seed(0))
    return codec


def test_report_scores_chords_on_the_full_stack_and_asked_bandwidths(tmp_path: Path) -> None:
    from musigen.data.synth.corpus import build_corpus

    torch.set_num_threads(1)
    manifest = build_corpus(out_dir=tmp_path / "corpus", n=1, duration=4.0, seed=7, progress=False)
    codec = _codec()
    report = evaluate(codec, manifest, tmp_path / "out", chord_codebooks=[1])
    s = report["summary"]
    assert set(s) == {"original", "codes_k1", "codes_k2", "codes_k3", "latent_prequant", "latent_dequant"}
    for name in ("codes_k1", "codes_k3", "latent_prequant", "latent_dequant"):
        assert 0.0 <= s[name]["majmin"] <= 1.0
    assert math.isnan(s["codes_k2"]["majmin"])  # not asked: the recogniser is the slow part
    # the full stack and the dequantised latents are the same signal
    assert s["codes_k3"]["si_sdr"] == pytest.approx(s["latent_dequant"]["si_sdr"], abs=1e-3)
    assert (tmp_path / "out" / "report.json").is_file() and (tmp_path / "out" / "spectrograms.png").is_file()
    assert "codes_k1" in format_summary(report)
    with pytest.raises(DataError, match="chord codebooks"):
        evaluate(codec, manifest, tmp_path / "out2", chord_codebooks=[4])
