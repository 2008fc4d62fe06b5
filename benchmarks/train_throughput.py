"""Training throughput of the `base` MusiCoT LM and InstructME U-Net: samples/s, tokens/s, MFU.

One training step = forward, loss, backward and an AdamW step, on random inputs shaped like
the base recipes' batches (LM: 30 s of 4 x 2048 codes at 50 Hz + plan + reference + 32
T5-width text states, batch 8; U-Net: 512 latent frames of 128 channels + chords + text,
batch 16).  Timed steps follow warm-up steps; the figures are medians.  FLOPs per step are
counted once with torch's FlopCounterMode (matmuls, convolutions, attention), so the MFU is
achieved FLOP/s over the device's peak for the dtype (known GPUs, or --peak-tflops).

    python benchmarks/train_throughput.py                 # GPU: base sizes, bf16
    python benchmarks/train_throughput.py --reduced       # CPU: reduced sizes, float32
    python benchmarks/train_throughput.py --grad-ckpt     # with gradient checkpointing
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from musigen.instructme.chunk_transformer import ChunkTransformerBlock
from musigen.instructme.diffusion import DiffusionConfig, EditConditions, EditDiffusion
from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig, ResBlock
from musigen.musicot.lm import LMConfig, MusiCoTLM
from musigen.training.activation_checkpointing import blocks_of, checkpoint_blocks


@dataclass
class Case:
    name: str
    model: torch.nn.Module
    loss: Callable[[], torch.Tensor]
    samples: int
    tokens: int
    token_name: str


def lm_case(reduced: bool, batch: int | None, device: torch.device, grad_ckpt: bool) -> Case:
    if reduced:
        cfg = LMConfig.preset("demo", num_codebooks=4, codebook_size=1024, thought_levels=4,
                              thought_codebook_size=64, text_dim=384, max_seq_len=512)
        b, frames, segments, text = batch or 2, 250, 2, 16  # 5 s excerpts
    else:  # recipes/musicot/base.yaml
        cfg = LMConfig.preset("base", num_codebooks=4, codebook_size=2048, thought_levels=4,
                              thought_codebook_size=256, text_dim=768, max_seq_len=1600)
        b, frames, segments, text = batch or 8, 1500, 4, 32  # 30 s excerpts, 10 s thoughts
    model = MusiCoTLM(cfg).to(device)
    if grad_ckpt:
        checkpoint_blocks(model.blocks)
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, cfg.codebook_size, (b, cfg.num_codebooks, frames), generator=g).to(device)
    plan = torch.randint(0, cfg.thought_vocab, (b, segments * cfg.thought_levels), generator=g).to(device)
    ref = torch.randint(0, cfg.thought_codebook_size, (b, 2), generator=g).to(device)
    states = torch.randn(b, text, cfg.text_dim, generator=g).to(device)
    mask = torch.ones(b, text, dtype=torch.bool, device=device)
    drop = torch.zeros(b, dtype=torch.bool, device=device)
    drop[0] = True  # one row unconditional, as condition dropout gives

    def loss() -> torch.Tensor:
        return model(codes, states, mask, plan=plan, ref=ref, drop_text=drop, drop_ref=drop).loss

    return Case("MusiCoT LM", model, loss, b, codes.numel() + plan.numel(), "tokens")


def unet_case(reduced: bool, batch: int | None, device: torch.device, grad_ckpt: bool) -> Case:
    if reduced:
        cfg = InstructMEUNetConfig(latent_channels=64, text_dim=384, chord_dim=25, base_channels=32,
                                   channel_mults=(1, 2, 4), attention_levels=(1, 2), heads=4,
                                   chunk_size=32, chord_channels=32)
        b, frames, text = batch or 2, 128, 16
    else:  # recipes/instructme/base.yaml
        cfg = InstructMEUNetConfig(latent_channels=128, text_dim=768, chord_dim=85, base_channels=256,
                                   channel_mults=(1, 2, 3, 4), res_blocks=2, attention_levels=(1, 2, 3),
                                   mid_attention=True, transformer_depth=2, heads=8, chunk_size=64,
                                   ff_mult=2, chord_channels=128, dropout=0.1)
        b, frames, text = batch or 16, 512, 32
    model = InstructMEUNet(cfg).to(device)
    if grad_ckpt:
        checkpoint_blocks(blocks_of(model, (ResBlock, ChunkTransformerBlock)))
    diffusion = EditDiffusion(DiffusionConfig(prediction_type="v_prediction",
                                              beta_schedule="squaredcos_cap_v2"))
    g = torch.Generator().manual_seed(0)
    target = torch.randn(b, cfg.latent_channels, frames, generator=g).to(device)
    chords = torch.nn.functional.one_hot(torch.randint(0, cfg.chord_dim, (b, frames), generator=g),
                                         cfg.chord_dim).float().to(device)
    cond = EditConditions(torch.randn(b, cfg.latent_channels, frames, generator=g).to(device),
                          torch.randn(b, text, cfg.text_dim, generator=g).to(device),
                          torch.ones(b, text, dtype=torch.bool, device=device), chords)

    def loss() -> torch.Tensor:
        return diffusion.training_loss(model, target, cond)

    return Case("InstructME U-Net", model, loss, b, b * frames, "latent frames")


def count_flops(case: Case, autocast: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        with autocast():  # type: ignore[attr-defined]
            loss = case.loss()
        loss.backward()
    case.model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def run(case: Case, device: torch.device, dtype: torch.dtype, warmup: int, steps: int,
        peak: float | None) -> dict[str, float]:
    case.model.train()
    opt = torch.optim.AdamW(case.model.parameters(), lr=1e-4, fused=device.type == "cuda")

    def autocast() -> object:
        return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    flops = count_flops(case, autocast)
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast():  # type: ignore[attr-defined]
            loss = case.loss()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    out = {"params_M": sum(p.numel() for p in case.model.parameters()) / 1e6, "step_s": step,
           "samples_per_s": case.samples / step, "tokens_per_s": case.tokens / step,
           "tflop_per_step": flops / 1e12, "achieved_tflops": flops / step / 1e12}
    if peak:
        out["mfu"] = flops / step / peak
    if device.type == "cuda":
        out["peak_mem_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reduced", action="store_true", help="CPU-sized models (default off GPU)")
    parser.add_argument("--models", default="lm,unet", help="comma list of lm, unet")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the recipe's)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median)")
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default=None,
                        help="autocast dtype (default: bf16 on GPU, fp32 on CPU)")
    parser.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing on")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="device peak for the MFU (default: Lightning's table for known GPUs)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    reduced = args.reduced or not cuda
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype or ("bf16" if cuda else "fp32")]
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    peak = args.peak_tflops * 1e12 if args.peak_tflops else None
    if peak is None and cuda:
        from lightning.fabric.utilities.throughput import get_available_flops

        peak = get_available_flops(device, dtype)
    name = torch.cuda.get_device_name() if cuda else f"CPU, {args.threads} thread(s)"
    print(f"device: {name}; sizes: {'reduced' if reduced else 'base'}; dtype: {dtype}; "
          f"grad checkpointing: {args.grad_ckpt}; median of {args.steps} steps after {args.warmup}")
    builders = {"lm": lm_case, "unet": unet_case}
    for key in args.models.split(","):
        torch.manual_seed(0)
        case = builders[key](reduced, args.batch, device, args.grad_ckpt)
        r = run(case, device, dtype, args.warmup, args.steps, peak)
        mfu = f", MFU {100 * r['mfu']:.1f}%" if "mfu" in r else ""
        mem = f", peak mem {r['peak_mem_GiB']:.1f} GiB" if "peak_mem_GiB" in r else ""
        print(f"{case.name:17s} {r['params_M']:7.1f} M params, batch {case.samples}: "
              f"{r['step_s'] * 1000:8.1f} ms/step, {r['samples_per_s']:8.2f} samples/s, "
              f"{r['tokens_per_s']:10.0f} {case.token_name}/s, {r['tflop_per_step']:.3f} TFLOP/step, "
              f"{r['achieved_tflops']:.3f} TFLOP/s{mfu}{mem}")
        del case


if __name__ == "__main__":
    main()
