"""int8 against float32 on the shipped MusiCoT demo: greedy token agreement and CLAP score.

Both pipelines load the same folder (`checkpoints/musicot_demo`), one with
`quantize="int8"`.  For each held-out prompt (the captions of the evaluation harness's
test split: `build_gen_set`'s seeds, never in training corpora):

- greedy (temperature 0 for plan and audio, the folder's CFG scales): the share of plan
  tokens and of audio codes that are equal, position by position, and where the plan and
  the codes first differ (one changed greedy token changes everything after it);
- sampled (the folder's sampling defaults, the same seed for both): the CLAP score of each
  output against its prompt with the demo's own CLAP (`musigen.eval.metrics.clap_score`).

    python benchmarks/quantize_agreement.py --n 10 --duration 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def held_out_prompts(n: int, duration: float) -> list[str]:
    """The first `n` captions of the harness's held-out generation set (builtin renderer)."""
    from musigen.eval.harness.sets import GEN_SEED, GENRES, _Synth

    synth = _Synth("builtin", 16000, duration)
    out = []
    for i in range(n):
        genre = GENRES[i % len(GENRES)]
        out.append(synth.render(synth.composition(GEN_SEED + i, genre), genre, GEN_SEED + i).caption)
    return out


def run(pipe: Any, prompt: str, duration: float, seed: int, params: Any) -> tuple[Any, Any]:
    """(result, audio codes [K, T]) of one call; the codes are caught on their way to the codec."""
    seen: list[torch.Tensor] = []
    decode = pipe.codec.decode

    def spy(codes: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        seen.append(codes)
        return decode(codes, *args, **kwargs)

    pipe.codec.decode = spy
    try:
        result = pipe(prompt, duration=duration, seed=seed, params=params, progress=False)
    finally:
        pipe.codec.decode = decode
    return result, seen[0][0]


def first_difference(a: torch.Tensor, b: torch.Tensor) -> int | None:
    diff = (a != b).nonzero()
    return None if len(diff) == 0 else int(diff[:, -1].min())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped demo")
    parser.add_argument("--n", type=int, default=10, help="held-out prompts")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args(argv)
    from musigen.checkpoints import default_checkpoint
    from musigen.eval.metrics.clap_score import clap_score
    from musigen.musicot.pipeline import MusiCoTPipeline

    torch.set_num_threads(1)
    model = args.model or default_checkpoint("musicot_demo")
    pipes = {"fp32": MusiCoTPipeline.from_pretrained(model),
             "int8": MusiCoTPipeline.from_pretrained(model, quantize="int8")}
    prompts = held_out_prompts(args.n, args.duration)
    base = pipes["fp32"].config.sampling
    greedy = dataclasses.replace(base, thought_temperature=0.0, audio_temperature=0.0)
    plan_eq, code_eq, plan_first, code_first = [], [], [], []
    wavs: dict[str, list[np.ndarray]] = {"fp32": [], "int8": []}
    for i, prompt in enumerate(prompts):
        (r32, c32), (r8, c8) = (run(pipes[k], prompt, args.duration, args.seed, greedy)
                                for k in ("fp32", "int8"))
        p32, p8 = torch.tensor(r32.thoughts[0]), torch.tensor(r8.thoughts[0])
        plan_eq.append(float((p32 == p8).float().mean()))
        code_eq.append(float((c32 == c8).float().mean()))
        plan_first.append(first_difference(p32.flatten(), p8.flatten()))
        code_first.append(first_difference(c32, c8))
        for k in ("fp32", "int8"):
            wavs[k].append(run(pipes[k], prompt, args.duration, args.seed + i, base)[0].audio[0])
        print(f"{i}: plan {100 * plan_eq[-1]:.0f} % codes {100 * code_eq[-1]:.1f} % "
              f"(first code difference at frame {code_first[-1]}) {prompt[:50]!r}",
              file=sys.stderr)
    sr = pipes["fp32"].sample_rate
    emb = pipes["fp32"].embedder
    clap = {k: clap_score(emb, prompts, wavs[k], sr) for k in wavs}
    delta = [b - a for a, b in zip(clap["fp32"].per_item, clap["int8"].per_item, strict=True)]
    result = {
        "n": args.n, "duration": args.duration, "model": str(model),
        "greedy_plan_agreement": statistics.mean(plan_eq),
        "greedy_code_agreement": statistics.mean(code_eq),
        "plans_identical": sum(x == 1.0 for x in plan_eq),
        "codes_identical": sum(x == 1.0 for x in code_eq),
        "first_code_difference_frames": code_first,
        "clap_fp32": clap["fp32"].value, "clap_int8": clap["int8"].value,
        "clap_delta_mean": statistics.mean(delta),
        "clap_delta_sd": statistics.stdev(delta) if len(delta) > 1 else 0.0,
        "clap_embedder": clap["fp32"].embedder,
    }
    print(f"{args.n} held-out prompts x {args.duration:g} s, greedy: plan tokens equal "
          f"{100 * result['greedy_plan_agreement']:.1f} % (identical plans "
          f"{result['plans_identical']}/{args.n}), audio codes equal "
          f"{100 * result['greedy_code_agreement']:.1f} % (identical {result['codes_identical']}"
          f"/{args.n})")
    print(f"CLAP ({result['clap_embedder']}, sampled, same seeds): fp32 {result['clap_fp32']:.4f}"
          f", int8 {result['clap_int8']:.4f}, int8 - fp32 {result['clap_delta_mean']:+.4f} "
          f"(sd of per-prompt differences {result['clap_delta_sd']:.4f})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
