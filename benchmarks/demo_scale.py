"""What one CPU core buys: training throughput of candidate demo scales, side by side.

The demo models are trained on one core for a few tens of hours, so their scale is chosen
from frames per second per candidate (model width/depth, codebooks written, crop length):
frames/s x the budget = frames seen, and frames seen per parameter is what a scale can learn.
One training step = forward, loss, backward, AdamW, on random inputs shaped like the demo
recipes' batches. Each candidate is timed in turn, `--repeats` rounds, medians reported.

    python benchmarks/demo_scale.py --threads 1 --repeats 3
    python benchmarks/demo_scale.py --models unet
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from musigen.instructme.diffusion import DiffusionConfig, EditConditions, EditDiffusion
from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig
from musigen.musicot.lm import LMConfig, MusiCoTLM


@dataclass
class Candidate:
    name: str
    params: int
    frames: int  # audio or latent frames per step
    step: Callable[[], None]


def lm_candidate(dim: int, layers: int, heads: int, codebooks: int, crop_frames: int, batch: int = 8) -> Candidate:
    cfg = LMConfig(dim=dim, num_layers=layers, num_heads=heads, num_codebooks=codebooks, codebook_size=1024,
                   thought_levels=4, thought_codebook_size=64, text_dim=384, max_seq_len=1024)
    model = MusiCoTLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    segments = max(1, round(crop_frames / 125))  # 2.5 s thought windows at 50 Hz
    codes = torch.randint(0, 1024, (batch, codebooks, crop_frames), generator=g)
    plan = torch.randint(0, cfg.thought_vocab, (batch, segments * 4), generator=g)
    ref = torch.randint(0, 64, (batch, 16), generator=g)
    states, mask = torch.randn(batch, 24, 384, generator=g), torch.ones(batch, 24, dtype=torch.bool)
    drop = torch.zeros(batch, dtype=torch.bool)

    def step() -> None:
        model(codes, states, mask, plan=plan, ref=ref, drop_text=drop, drop_ref=drop).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    name = f"LM {dim}d/{layers}L K={codebooks} crop={crop_frames / 50:.0f}s b={batch}"
    return Candidate(name, sum(p.numel() for p in model.parameters()), batch * crop_frames, step)


def unet_candidate(base: int, mults: tuple[int, ...], depth: int, frames: int, batch: int = 8) -> Candidate:
    cfg = InstructMEUNetConfig(latent_channels=64, text_dim=384, chord_dim=25, base_channels=base,
                               channel_mults=mults, res_blocks=1, attention_levels=tuple(range(1, len(mults))),
                               mid_attention=True, transformer_depth=depth, heads=4, chunk_size=32, ff_mult=2,
                               chord_channels=32, multiscale_source=True, use_chords=True,
                               concat_source_input=True)
    model = InstructMEUNet(cfg)
    diffusion = EditDiffusion(DiffusionConfig(prediction_type="v_prediction", beta_schedule="squaredcos_cap_v2"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    target = torch.randn(batch, 64, frames, generator=g)
    chords = torch.nn.functional.one_hot(torch.randint(0, 25, (batch, frames), generator=g), 25).float()
    cond = EditConditions(torch.randn(batch, 64, frames, generator=g), torch.randn(batch, 16, 384, generator=g),
                          torch.ones(batch, 16, dtype=torch.bool), chords)

    def step() -> None:
        diffusion.training_loss(model, target, cond).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    name = f"U-Net base {base} x{list(mults)} depth {depth} crop={frames} b={batch}"
    return Candidate(name, sum(p.numel() for p in model.parameters()), batch * frames, step)


LM_GRID = [(192, 4, 4, 4, 250), (256, 6, 4, 4, 250), (256, 6, 4, 4, 500), (256, 6, 4, 2, 500),
           (384, 8, 6, 4, 500)]
UNET_GRID = [(48, (1, 2, 4), 1, 256), (64, (1, 2, 4), 2, 256), (96, (1, 2, 4), 2, 256)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lm,unet", help="comma list of lm, unet")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all candidates")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cands: list[Candidate] = []
    if "lm" in args.models:
        cands += [lm_candidate(*c) for c in LM_GRID]
    if "unet" in args.models:
        cands += [unet_candidate(*c) for c in UNET_GRID]
    for c in cands:
        for _ in range(args.warmup):
            c.step()
    times: dict[str, list[float]] = {c.name: [] for c in cands}
    for _ in range(args.repeats):  # interleaved rounds: a slow spell hits every candidate alike
        for c in cands:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                c.step()
            times[c.name].append((time.perf_counter() - t0) / args.steps)
    print(f"threads {args.threads}; median of {args.repeats} rounds x {args.steps} steps")
    print(f"{'candidate':48s} {'params':>8s} {'s/step':>7s} {'frames/s':>9s} {'M frames/core-h':>16s}")
    for c in cands:
        sec = statistics.median(times[c.name])
        fps = c.frames / sec
        print(f"{c.name:48s} {c.params / 1e6:7.2f}M {sec:7.3f} {fps:9.0f} {fps * 3600 / 1e6:16.2f}")


if __name__ == "__main__":
    main()
