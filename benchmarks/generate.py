"""Generation speed: our MusiCoT LM against transformers' MusicgenForCausalLM, side by side.

`all` (the default) runs both parts in one go: `lm` below, then `e2e`, the real-time factor
and peak memory of `musigen generate` end to end (see benchmarks/generate_e2e.py).

LM part (this file's `lm` section): both models are built with the same dimensions and
random weights, decode the same number of audio steps for the same batch with CFG on
(the batch is doubled: conditional + unconditional rows) and top-k sampling, in one
process, runs interleaved (ours, theirs, ours, theirs, ...) so that load on the shared
machine hits both alike; we report medians. The cross-attention memory is a random
text-state tensor of `--text-len` tokens for both. Also: our KV cache against full
recomputation (on fewer steps, since that is quadratic), and the peak extra resident
memory of each run (measured in a forked child so that one run's freed heap does not
hide another's; the timing itself runs in this process).

Threads: `torch.set_num_threads(--threads)` (default 1, because this project's machines
have 2 cores shared by several jobs); both models run under the same setting.

Speedups are reported two ways: the ratio of the medians, and the median of the per-round
ratios (each round runs ours and theirs back to back, so a change in the machine's load
between rounds cancels out).

    python benchmarks/generate.py                       # lm + e2e
    python benchmarks/generate.py lm --steps 500 --repeats 3
    python benchmarks/generate.py e2e --duration 10
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

from musigen.musicot.lm import LMConfig, MusiCoTLM  # noqa: E402
from musigen.musicot.sampling import SamplingParams, generate  # noqa: E402


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def peak_extra_mb(fn: Callable[[], Any]) -> float:
    """Peak resident memory a call adds, measured in a forked child (Linux ru_maxrss)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        base = _rss_kb()
        fn()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        os.write(write, str(max(0, peak - base)).encode())
        os._exit(0)
    os.close(write)
    data = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    return int(data or b"0") / 1024


def build_ours(args: argparse.Namespace, steps: int) -> MusiCoTLM:
    cfg = LMConfig(
        dim=args.dim,
        num_layers=args.layers,
        num_heads=args.heads,
        num_codebooks=args.codebooks,
        codebook_size=args.card,
        text_dim=args.dim,
        max_seq_len=steps + 8,
    )
    return MusiCoTLM(cfg).eval()


def build_theirs(args: argparse.Namespace, steps: int) -> torch.nn.Module:
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

    cfg = MusicgenDecoderConfig(
        vocab_size=args.card,
        hidden_size=args.dim,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        ffn_dim=4 * args.dim,
        num_codebooks=args.codebooks,
        max_position_embeddings=steps + 8,
        pad_token_id=args.card,
        bos_token_id=args.card,
        decoder_start_token_id=args.card,
    )
    return MusicgenForCausalLM(cfg).eval()


def run_ours(
    model: MusiCoTLM,
    text: torch.Tensor,
    steps: int,
    args: argparse.Namespace,
    use_cache: bool = True,
) -> torch.Tensor:
    frames = steps - model.pattern.max_delay  # `steps` decode steps in the interleaved sequence
    params = SamplingParams(audio_cfg=args.cfg, top_k=args.top_k)
    return generate(
        model, num_frames=frames, text_states=text, params=params, seed=0, use_cache=use_cache
    ).codes


def run_theirs(
    model: torch.nn.Module,
    text: torch.Tensor,
    steps: int,
    args: argparse.Namespace,
    default_cache: bool = False,
) -> torch.Tensor:
    """transformers' own sampling loop. We pass an EncoderDecoderCache: with the default cache
    (transformers 5.24) the cross-attention K/V are appended to the self-attention cache at
    every step, which is both wrong and slow, and would flatter us."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    cache = (
        None
        if default_cache
        else EncoderDecoderCache(
            DynamicCache(config=model.config), DynamicCache(config=model.config)
        )
    )
    b = text.shape[0]
    ids = torch.full((b * args.codebooks, 1), args.card, dtype=torch.long)
    both = torch.cat([text, torch.zeros_like(text)])  # conditional rows, then unconditional rows
    with torch.inference_mode():
        return model.generate(
            ids,
            encoder_hidden_states=both,
            encoder_attention_mask=torch.ones(both.shape[:2], dtype=torch.long),
            do_sample=True,
            top_k=args.top_k,
            guidance_scale=args.cfg,
            max_new_tokens=steps,
            num_return_sequences=1,
            cache=cache,
        )


def timed(fn: Callable[[], Any], cpu: list[float]) -> float:
    """Wall seconds of one call; its process CPU seconds go to `cpu` (robust to a busy machine)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    cpu.append(time.process_time() - start_cpu)
    return time.perf_counter() - start


def bench_lm(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    steps = args.steps
    text = torch.randn(args.batch, args.text_len, args.dim)
    ours, theirs = build_ours(args, steps), build_theirs(args, steps)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    frames = run_ours(ours, text, 12, args).shape[-1]  # warm-up
    out = run_theirs(theirs, text, 12, args)
    assert out.shape[-1] == frames, (out.shape, frames)

    nc_steps = args.nocache_steps
    names = [
        "ours_kv_cache",
        "transformers",
        f"ours_kv_cache_{nc_steps}",
        f"ours_no_cache_{nc_steps}",
    ]
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    runs = [
        lambda: run_ours(ours, text, steps, args),
        lambda: run_theirs(theirs, text, steps, args),
        lambda: run_ours(ours, text, nc_steps, args),
        lambda: run_ours(ours, text, nc_steps, args, use_cache=False),
    ]
    if args.with_default_cache:
        names.append("transformers_default_cache")
        runs.append(lambda: run_theirs(theirs, text, steps, args, default_cache=True))
        wall[names[-1]], cpu[names[-1]] = [], []
    for _ in range(args.repeats):  # interleaved so that machine load hits all alike
        for name, fn in zip(names, runs):
            wall[name].append(timed(fn, cpu[name]))
    mem = {
        "ours_kv_cache": peak_extra_mb(lambda: run_ours(ours, text, steps, args)),
        "transformers": peak_extra_mb(lambda: run_theirs(theirs, text, steps, args)),
        "ours_no_cache": peak_extra_mb(
            lambda: run_ours(ours, text, nc_steps, args, use_cache=False)
        ),
    }
    med = statistics.median
    paired = {
        "vs_transformers": med(t / o for o, t in zip(wall[names[0]], wall[names[1]])),
        "vs_transformers_cpu_time": med(t / o for o, t in zip(cpu[names[0]], cpu[names[1]])),
        "kv_cache_vs_none": med(n / c for c, n in zip(wall[names[2]], wall[names[3]])),
    }
    return {
        "config": {k: v for k, v in vars(args).items() if k not in ("func",)},
        "paired_speedup_medians": paired,
        "params_millions": {"ours": n_ours / 1e6, "transformers": n_theirs / 1e6},
        "seconds": wall,
        "cpu_seconds": cpu,
        "steps_per_s": {k: (nc_steps if k in names[2:4] else steps) / med(wall[k]) for k in names},
        "speedup_vs_transformers": med(wall[names[1]]) / med(wall[names[0]]),
        "speedup_vs_transformers_cpu_time": med(cpu[names[1]]) / med(cpu[names[0]]),
        "speedup_kv_cache_vs_none": med(wall[names[3]]) / med(wall[names[2]]),
        "speedup_kv_cache_vs_none_cpu_time": med(cpu[names[3]]) / med(cpu[names[2]]),
        "lm_rtf_at_50hz": {
            "ours": med(wall[names[0]]) / (steps / 50),
            "transformers": med(wall[names[1]]) / (steps / 50),
        },
        "peak_extra_mb": mem,
    }


def print_lm(result: dict[str, Any]) -> None:
    cfg = result["config"]
    print(
        f"LM decode, size {cfg['size']!r}: dims {cfg['dim']}/{cfg['layers']}/{cfg['heads']}, "
        f"K={cfg['codebooks']} x {cfg['card']}, batch {cfg['batch']} (x2 for CFG {cfg['cfg']}), "
        f"top-k {cfg['top_k']}, {cfg['threads']} thread(s), "
        f"median of {cfg['repeats']}"
    )
    p = result["params_millions"]
    print(f"  parameters: ours {p['ours']:.1f} M, transformers {p['transformers']:.1f} M")
    n = cfg["nocache_steps"]
    rows = [
        ("ours, KV cache", cfg["steps"], "ours_kv_cache", "ours_kv_cache"),
        ("transformers MusicgenForCausalLM", cfg["steps"], "transformers", "transformers"),
        ("ours, KV cache", n, f"ours_kv_cache_{n}", None),
        ("ours, no cache (recompute)", n, f"ours_no_cache_{n}", "ours_no_cache"),
    ]
    if "transformers_default_cache" in result["seconds"]:
        rows.append(
            (
                "transformers, default cache (buggy)",
                cfg["steps"],
                "transformers_default_cache",
                None,
            )
        )
    print(
        f"  {'run':34s} {'steps':>6s} {'steps/s':>9s} {'median s':>9s} {'CPU s':>7s} "
        f"{'peak extra MB':>14s}"
    )
    for name, nsteps, key, mem_key in rows:
        secs = statistics.median(result["seconds"][key])
        cpu = statistics.median(result["cpu_seconds"][key])
        mem = "" if mem_key is None else f"{result['peak_extra_mb'][mem_key]:.0f}"
        print(
            f"  {name:34s} {nsteps:6d} {result['steps_per_s'][key]:9.2f} {secs:9.2f} {cpu:7.2f} "
            f"{mem:>14s}"
        )
    paired = result["paired_speedup_medians"]
    print(
        f"  speedup ours vs transformers ({cfg['steps']} steps): "
        f"{result['speedup_vs_transformers']:.2f}x wall, "
        f"{result['speedup_vs_transformers_cpu_time']:.2f}x CPU time "
        f"(per-round medians: {paired['vs_transformers']:.2f}x wall, "
        f"{paired['vs_transformers_cpu_time']:.2f}x CPU time)"
    )
    print(
        f"  speedup KV cache vs recompute ({n} steps): "
        f"{result['speedup_kv_cache_vs_none']:.2f}x wall, "
        f"{result['speedup_kv_cache_vs_none_cpu_time']:.2f}x CPU time"
    )
    rtf = result["lm_rtf_at_50hz"]
    print(f"  LM-only RTF at 50 Hz: ours {rtf['ours']:.2f}, transformers {rtf['transformers']:.2f}")


#: LM sizes to compare at: (dim, layers, heads, codebook size, batch). `demo` is the shipped
#: checkpoint as `musigen generate` runs it (one prompt); `anchor` is the size whose
#: transformers speed ANCHORS.md records; `base` is MusicGen-small (slow: use few steps).
SIZES: dict[str, tuple[int, int, int, int, int]] = {
    "demo": (256, 6, 4, 1024, 1),
    "anchor": (512, 8, 8, 2048, 2),
    "base": (1024, 24, 16, 2048, 2),
}


def with_size(args: argparse.Namespace, size: str) -> argparse.Namespace:
    """A copy of `args` with the dims of `size`, except those given on the command line."""
    out = argparse.Namespace(**vars(args))
    out.size = size
    for name, value in zip(("dim", "layers", "heads", "card", "batch"), SIZES[size], strict=True):
        if getattr(out, name) is None:
            setattr(out, name, value)
    return out


def _lm_arguments(lm: argparse.ArgumentParser) -> None:
    lm.add_argument("--size", choices=sorted(SIZES), default=None,
                    help="preset dims (lm: anchor; all: demo and anchor); flags below override")
    lm.add_argument("--dim", type=int, default=None)
    lm.add_argument("--layers", type=int, default=None)
    lm.add_argument("--heads", type=int, default=None)
    lm.add_argument("--codebooks", type=int, default=4)
    lm.add_argument("--card", type=int, default=None)
    lm.add_argument("--batch", type=int, default=None)
    lm.add_argument("--cfg", type=float, default=3.0)
    lm.add_argument("--top-k", type=int, default=250)
    lm.add_argument("--text-len", type=int, default=16)
    lm.add_argument("--steps", type=int, default=500, help="decode steps (500 = 10 s at 50 Hz)")
    lm.add_argument(
        "--nocache-steps", type=int, default=64, help="steps for the cache vs recompute comparison"
    )
    lm.add_argument("--repeats", type=int, default=3)
    lm.add_argument("--threads", type=int, default=1)
    lm.add_argument(
        "--with-default-cache",
        action="store_true",
        help="also time transformers with its default cache (cross-attn K/V wrongly re-appended)",
    )


def main(argv: list[str] | None = None) -> int:
    import generate_e2e  # this folder is on sys.path when the script runs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part")
    lm = sub.add_parser("lm", help="our LM against MusicgenForCausalLM, and KV cache against none")
    _lm_arguments(lm)
    e2e = sub.add_parser("e2e", help="real-time factor and peak memory of `musigen generate`")
    generate_e2e.add_arguments(e2e)
    both = sub.add_parser("all", help="lm, then e2e (the default)")
    _lm_arguments(both)
    both.add_argument("--model", default=None, help="MusiCoT pipeline folder for e2e")
    both.add_argument("--duration", type=float, default=10.0, help="e2e seconds of audio")
    both.add_argument("--e2e-repeats", type=int, default=3)
    both.add_argument("--jobs", type=int, default=3, help="e2e jobs in the one-process run")
    for p in (lm, e2e, both):
        p.add_argument("--json", type=str, default=None, help="also write the results here")
    args = parser.parse_args(argv if argv is not None else (sys.argv[1:] or ["all"]))
    result: dict[str, Any] = {}
    if args.part in ("lm", "all"):
        default = ["anchor"] if args.part == "lm" else ["demo", "anchor"]
        sizes = [args.size] if args.size else default
        for size in sizes:
            result[f"lm_{size}"] = bench_lm(with_size(args, size))
            print_lm(result[f"lm_{size}"])
    if args.part in ("e2e", "all"):
        e2e_args = args
        if args.part == "all":
            e2e_args = argparse.Namespace(
                model=args.model, duration=args.duration, repeats=args.e2e_repeats,
                threads=args.threads, jobs=args.jobs, breakdown=True,
            )
        result["e2e"] = generate_e2e.bench_e2e(e2e_args)
        generate_e2e.print_e2e(result["e2e"])
    if args.json:
        from musigen.atomic import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
