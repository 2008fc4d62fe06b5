"""int8 decoding (`--quantize int8`): it runs, is deterministic, stays close to float32, is
recorded in the sidecar, and a bad value is one line (exit 2); the column-major decode layout
keeps the model's values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from musigen.cli import main
from musigen.errors import ConfigError
from musigen.musicot.decode_step import StepDecoder
from musigen.musicot.lm import LMConfig, MusiCoTLM
from musigen.musicot.pipeline import MusiCoTPipeline
from musigen.musicot.quantize import Int8Projection, check_quantize, quantize_lm

#: Largest |int8 - fp32| logit allowed, relative to the float32 logits' spread (their std).
#: Dynamic int8 (per-tensor weights, 7-bit activations) measures ~0.005 here.
LOGIT_TOL = 0.05


def _lm(seed: int = 3) -> MusiCoTLM:
    torch.manual_seed(seed)
    cfg = LMConfig(dim=64, num_layers=3, num_heads=4, num_codebooks=3, codebook_size=32,
                   thought_levels=2, thought_codebook_size=4, text_dim=8, max_seq_len=96)
    return MusiCoTLM(cfg).eval()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musicot_tiny import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("q") / "pipe")


def test_check_quantize() -> None:
    assert check_quantize("int8") == "int8"
    assert check_quantize("none") is None and check_quantize(None) is None
    with pytest.raises(ConfigError, match="unknown quantize value 'int4'"):
        check_quantize("int4")


def test_int8_logits_are_close_to_float32_in_both_paths() -> None:
    ref, q = _lm(), quantize_lm(_lm(), "int8")
    assert all(isinstance(b.fc1, Int8Projection) for b in q.blocks)
    assert torch.is_tensor(q.blocks[0].cross_kv)  # the text memory stays float32
    g = torch.Generator().manual_seed(0)
    text = torch.randn(2, 5, 8, generator=g)
    x = torch.randn(2, 24, 64, generator=g)
    with torch.inference_mode():
        mem_r, mem_q = ref.prepare_memory(text), q.prepare_memory(text)
        for a, b in zip(mem_r.keys, mem_q.keys, strict=True):
            assert torch.equal(a, b)
        want = ref.audio_logits(ref.run(x, mem_r))
        got = q.audio_logits(q.run(x, mem_q))  # the reference (training/prefill) path
        err = (got - want).abs().max() / want.std()
        assert 0 < err < LOGIT_TOL, float(err)
        # the one-position decoder (what sampling uses) on the same quantised weights
        cache_r, cache_q = q.new_cache(2, 24), q.new_cache(2, 24)
        step = StepDecoder(q)
        q.run(x[:, :4], mem_q, cache_r)
        q.run(x[:, :4], mem_q, cache_q)
        for i in range(4, 24):
            a = q.run(x[:, i : i + 1], mem_q, cache_r)[:, -1]
            b = step.step(x[:, i], mem_q, cache_q)
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_quantize_refuses_non_float32() -> None:
    with pytest.raises(ConfigError, match="float32 model on the CPU"):
        quantize_lm(_lm().to(torch.bfloat16), "int8")


def test_pipeline_int8_runs_deterministically_and_records_it(model_dir: Path) -> None:
    pipe = MusiCoTPipeline.from_pretrained(model_dir, quantize="int8")
    a = pipe("calm piano", duration=1.0, seed=5, progress=False)
    b = pipe("calm piano", duration=1.0, seed=5, progress=False)
    assert a.parameters["quantize"] == "int8"
    assert (a.audio == b.audio).all() and a.thoughts == b.thoughts
    assert a.audio.shape[-1] > 0 and abs(a.audio).max() > 0
    fp = MusiCoTPipeline.from_pretrained(model_dir)
    assert fp("calm piano", duration=1.0, seed=5, progress=False).parameters["quantize"] == "none"
    with pytest.raises(ConfigError, match="quantised pipeline is not saved"):
        pipe.save_pretrained(model_dir.parent / "again")
    with pytest.raises(ConfigError, match="unknown quantize value"):
        MusiCoTPipeline.from_pretrained(model_dir, quantize="fp4")


def test_cli_quantize_sidecar_and_bad_value(model_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    wav = tmp_path / "q.wav"
    assert main(["generate", "--model", str(model_dir), "--prompt", "calm piano", "--duration",
                 "1", "--quantize", "int8", "--out", str(wav)]) == 0
    side = json.loads(wav.with_suffix(".json").read_text())["provenance"]
    assert side["parameters"]["quantize"] == "int8"
    capsys.readouterr()
    assert main(["generate", "--model", str(model_dir), "--prompt", "x", "--quantize", "int3",
                 "--out", str(tmp_path / "bad.wav")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "int3" in err and "int8" in err, err
    assert not (tmp_path / "bad.wav").exists()


def test_column_major_layout_keeps_values_logits_and_saved_weights(tmp_path: Path) -> None:
    from musigen.musicot.decode_step import column_major_projections

    ref, lm = _lm(), column_major_projections(_lm())
    assert not lm.blocks[0].fc1.is_contiguous() and lm.blocks[0].fc1.shape == (64, 256)
    for (name, a), b in zip(ref.state_dict().items(), lm.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    g = torch.Generator().manual_seed(1)
    text, x = torch.randn(2, 5, 8, generator=g), torch.randn(2, 12, 64, generator=g)
    with torch.inference_mode():
        want = ref.audio_logits(ref.run(x, ref.prepare_memory(text)))
        got = lm.audio_logits(lm.run(x, lm.prepare_memory(text)))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    back = MusiCoTLM.from_pretrained(lm.save_pretrained(tmp_path / "lm"))
    assert back.blocks[0].fc1.is_contiguous() and torch.equal(back.blocks[0].fc1, ref.blocks[0].fc1)
