"""Decoder speed at the musicgen-small size: transformers' MusicGen against our converted
LM in float32 and in dynamic int8 (`--quantize int8`), side by side in one process.

A random `MusicgenForConditionalGeneration` with musicgen-small's decoder (1024 wide, 24
layers, 16 heads, 4 x 2048 codes, cross-attention to 768-wide T5-base text states) is built,
saved and converted with `musigen convert musicgen`'s converter.  The text encoder (one T5
layer at T5-base width) and the codec (a tiny EnCodec with 4 x 2048 codes) are small on
purpose: only the decoder steps are compared.  Each system decodes the same prompt greedily
with CFG 3 for `--steps` delay-pattern steps:

- transformers: `MusicgenForConditionalGeneration.generate(do_sample=False,
  guidance_scale=3, max_new_tokens=steps)`, with the codec's decode stubbed out (not timed);
- ours: the text encoder, then `musigen.musicot.sampling.generate` on the converted LM
  (float32, then the same folder loaded with `quantize="int8"`).

Runs are interleaved (transformers, fp32, int8, transformers, ...) so the load of the shared
machine hits all three alike; we report medians of `--repeats` rounds and the ratios of the
medians.  One thread by default (`torch.set_num_threads`).

    python benchmarks/musicgen_speed.py --steps 100 --repeats 3   # the docs/speed.md run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

PROMPT = "calm jazz with piano and bass"


def _tokenizer() -> Any:
    """A tiny offline T5 (sentencepiece unigram) tokenizer; the words do not matter here."""
    from transformers import T5Tokenizer

    words = "calm jazz with piano and bass rock drums a loud song".split()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(f"▁{w}", -float(i + 3)) for i, w in enumerate(words)]
    vocab += [(c, -20.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_musicgen(path: Path, seed: int = 0) -> Any:
    """Random musicgen-small decoder, one-layer T5-base-width text encoder, tiny codec."""
    from transformers import (
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    from musigen.codec import encodec_config, fill_codebooks

    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    t5 = T5Config(vocab_size=len(tokenizer), d_model=768, d_kv=64, d_ff=256, num_layers=1,
                  num_heads=12, feed_forward_proj="relu", decoder_start_token_id=0,
                  pad_token_id=0, eos_token_id=1)
    audio = encodec_config(sample_rate=8000, upsampling_ratios=[8, 5, 4], num_filters=4,
                           hidden_size=16, codebook_size=2048, num_codebooks=4,
                           num_lstm_layers=1)
    decoder = MusicgenDecoderConfig(vocab_size=2048, max_position_embeddings=2048,
                                    num_hidden_layers=24, ffn_dim=4096, num_attention_heads=16,
                                    hidden_size=1024, num_codebooks=4, pad_token_id=2048,
                                    bos_token_id=2048, dropout=0.0)
    model = MusicgenForConditionalGeneration(
        MusicgenConfig(text_encoder=t5, audio_encoder=audio, decoder=decoder)).eval()
    fill_codebooks(model.audio_encoder, generator=torch.Generator().manual_seed(seed))
    model.generation_config.decoder_start_token_id = 2048
    model.generation_config.pad_token_id = 2048
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model


def run_theirs(model: Any, batch: Any, steps: int) -> torch.Tensor:
    """Greedy CFG-3 decode; returns the codes [K, frames] the codec would have decoded."""
    seen: list[torch.Tensor] = []

    def stub(codes: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        seen.append(codes)
        return SimpleNamespace(audio_values=torch.zeros(1, 1, 1))

    decode, model.audio_encoder.decode = model.audio_encoder.decode, stub
    try:
        model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       do_sample=False, guidance_scale=3.0, max_new_tokens=steps)
    finally:
        model.audio_encoder.decode = decode
    return seen[0][0, 0]


def run_ours(pipe: Any, steps: int) -> torch.Tensor:
    """Text encoder + greedy CFG-3 decode of the converted LM; codes [K, frames]."""
    from musigen.musicot.sampling import SamplingParams, generate

    enc = pipe.text_encoder.encode([PROMPT])
    frames = steps - pipe.lm.pattern.max_delay
    params = SamplingParams(audio_temperature=0.0, audio_cfg=3.0)
    return generate(pipe.lm, num_frames=frames, text_states=enc.states, text_mask=enc.mask,
                    params=params, seed=0).codes[0]


def bench(args: argparse.Namespace) -> dict[str, Any]:
    from musigen.convert.musicgen import convert_musicgen
    from musigen.musicot.pipeline import MusiCoTPipeline

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        hf = build_musicgen(Path(tmp) / "musicgen")
        out = convert_musicgen(Path(tmp) / "musicgen", Path(tmp) / "converted",
                               window_s=max(30.0, args.steps / 50 + 1))
        fp32 = MusiCoTPipeline.from_pretrained(out)
        int8 = MusiCoTPipeline.from_pretrained(out, quantize="int8")
        print(f"built and converted in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    batch = fp32.text_encoder.tokenize([PROMPT])
    systems = {"transformers": lambda n: run_theirs(hf, batch, n),
               "ours fp32": lambda n: run_ours(fp32, n),
               "ours int8": lambda n: run_ours(int8, n)}
    times: dict[str, list[float]] = {name: [] for name in systems}
    codes: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for fn in systems.values():  # warm-up (allocations, lazy imports), not timed
            fn(8)
        for r in range(args.repeats):
            for name, fn in systems.items():
                t = time.perf_counter()
                codes[name] = fn(args.steps)
                times[name].append(time.perf_counter() - t)
                print(f"round {r + 1} {name}: {times[name][-1]:.2f} s", file=sys.stderr)
    rate = {name: args.steps / statistics.median(ts) for name, ts in times.items()}
    base = codes["transformers"]
    return {
        "steps": args.steps, "repeats": args.repeats, "threads": args.threads,
        "steps_per_s": rate,
        "speedup": {name: rate[name] / rate["transformers"] for name in rate},
        # each round runs all three back to back, so a change of load between rounds cancels
        "per_round_speedup": {name: statistics.median(
            t0 / t for t0, t in zip(times["transformers"], ts, strict=True))
            for name, ts in times.items()},
        "seconds": times,
        "fp32_codes_equal_transformers": bool(torch.equal(codes["ours fp32"], base)),
        "int8_code_agreement": float((codes["ours int8"] == codes["ours fp32"]).float().mean()),
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"decoder: 1024 d / 24 layers / 16 heads, 4 x 2048 codes; greedy, CFG 3, batch 1 "
          f"(2 rows); {result['steps']} decode steps, {result['threads']} thread(s), "
          f"medians of {result['repeats']} interleaved rounds")
    print(f"{'system':<14} {'steps/s':>8} {'vs transformers':>16} {'per-round median':>17}")
    for name, rate in result["steps_per_s"].items():
        print(f"{name:<14} {rate:8.2f} {result['speedup'][name]:15.2f}x "
              f"{result['per_round_speedup'][name]:16.2f}x")
    print(f"fp32 codes equal transformers': {result['fp32_codes_equal_transformers']}; "
          f"int8 codes equal to fp32: {100 * result['int8_code_agreement']:.1f} %")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150, help="decode steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=str, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.steps < 4 or args.repeats < 1:
        parser.error("need --steps >= 4 and --repeats >= 1")
    result = bench(args)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
