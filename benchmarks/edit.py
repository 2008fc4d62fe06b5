"""InstructME speed and memory benchmarks.

Model part (`unet`): time and peak memory of one U-Net forward at 10, 20, 40 and 80 s of
latents (50 Hz), chunked attention against full attention with the same weights, side by
side.  The growth columns divide each length by the shortest one, so ~2x per doubling is
linear and ~4x is quadratic.

- Time: per length, one subprocess builds the model once and alternates chunked and full
  forwards (`set_full_attention`, same weights) for `--repeats` rounds after a warm-up;
  medians of CPU time (`time.process_time`, robust when other jobs share the cores) and of
  wall time are reported.  Alternating means both modes see the same background load.
- Memory: per (length, mode), a fresh subprocess runs two forwards; the peak RSS growth
  over the RSS before the first forward is that point's memory.

    python benchmarks/edit.py unet                      # demo U-Net, batch 1, 1 thread
    python benchmarks/edit.py unet --part attention     # the level-1 chunk-transformer stack
    python benchmarks/edit.py unet --backend math --out results.json

(The pipeline part, the real-time factor of a full 10 s edit, is added with the pipeline.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

FRAME_RATE = 50
MODES = ("chunked", "full")


def _rss_kib() -> int:
    """Current resident set size in KiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _build(
    args: argparse.Namespace,
) -> tuple[Callable[[int], Callable[[], object]], Callable[[bool], None]]:
    """The model under test as (make_forward(frames) -> forward, set_full_attention)."""
    import torch

    from musigen.instructme.chunk_transformer import ChunkTransformer
    from musigen.instructme.unet import InstructMEUNet, InstructMEUNetConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = InstructMEUNetConfig.preset(
        args.size, latent_channels=args.latent_channels, chord_dim=args.chord_dim
    )
    b = args.batch
    text = torch.randn(b, 12, config.text_dim)
    mask = torch.ones(b, 12, dtype=torch.bool)
    if args.part == "unet":
        unet = InstructMEUNet(config).eval()

        def unet_forward(frames: int) -> Callable[[], object]:
            x = torch.randn(b, config.latent_channels, frames)
            labels = torch.randint(0, config.chord_dim, (b, frames))
            chords = torch.nn.functional.one_hot(labels, config.chord_dim).float()
            ts = torch.full((b,), 500)
            return lambda: unet(x, ts, x, text, mask, chords)

        return unet_forward, unet.set_full_attention
    # The attention stack of the U-Net's level 1 alone, at that level's rate (frames / 2).
    width = config.base_channels * config.channel_mults[1]
    stack = ChunkTransformer(
        width,
        config.transformer_depth,
        config.heads,
        config.chunk_size,
        config.text_dim,
        config.chord_channels,
        config.ff_mult,
    ).eval()

    def stack_forward(frames: int) -> Callable[[], object]:
        h = torch.randn(b, width, frames // 2)
        cond = torch.randn(b, config.chord_channels, frames // 2)
        return lambda: stack(h, text, mask, cond, None)

    return stack_forward, stack.set_full_attention


def _frames(args: argparse.Namespace) -> int:
    return int(round(args.seconds * FRAME_RATE))


def _kernels(args: argparse.Namespace) -> object:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if args.backend == "math":
        return sdpa_kernel([SDPBackend.MATH])
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH])


def time_point(args: argparse.Namespace) -> dict[str, float]:
    """Both modes at one length, interleaved; medians of CPU and wall time in seconds."""
    import torch

    make_forward, set_full = _build(args)
    frames = _frames(args)
    forward = make_forward(frames)
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    wall: dict[str, list[float]] = {m: [] for m in MODES}
    with torch.inference_mode(), _kernels(args):  # type: ignore[attr-defined]
        for mode in MODES:
            set_full(mode == "full")
            forward()  # warm-up
        for r in range(args.repeats):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                set_full(mode == "full")
                c0, w0 = time.process_time(), time.perf_counter()
                forward()
                cpu[mode].append(time.process_time() - c0)
                wall[mode].append(time.perf_counter() - w0)
    out: dict[str, float] = {"seconds": args.seconds, "frames": frames}
    for mode in MODES:
        out[f"{mode}_cpu_s"] = statistics.median(cpu[mode])
        out[f"{mode}_wall_s"] = statistics.median(wall[mode])
    return out


def memory_point(args: argparse.Namespace) -> dict[str, float]:
    """Peak RSS growth (MiB) of a forward in one mode, in a fresh process.

    A short warm-up forward first pages in the kernels' code and allocator pools, and
    `malloc_trim` hands its freed heap back, so the growth is the forward's own working set.
    """
    import ctypes

    import torch

    make_forward, set_full = _build(args)
    set_full(args.mode == "full")
    with torch.inference_mode(), _kernels(args):  # type: ignore[attr-defined]
        make_forward(64)()
        forward = make_forward(_frames(args))
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        before = _rss_kib()
        forward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": args.seconds, "mode": args.mode, "peak_mib": max(0, peak - before) / 1024}


def _child(kind: str, args: argparse.Namespace, seconds: float, mode: str = "") -> dict[str, float]:
    cmd = [sys.executable, __file__, kind, "--seconds", str(seconds), "--size", args.size]
    cmd += ["--part", args.part, "--batch", str(args.batch), "--threads", str(args.threads)]
    cmd += ["--repeats", str(args.repeats), "--backend", args.backend]
    cmd += ["--latent-channels", str(args.latent_channels), "--chord-dim", str(args.chord_dim)]
    if mode:
        cmd += ["--mode", mode]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def scaling(args: argparse.Namespace) -> list[dict[str, float]]:
    """All lengths: one timing subprocess and one memory subprocess per mode."""
    rows = []
    for seconds in args.seconds:
        row = _child("_time", args, seconds)
        for mode in MODES:
            row[f"{mode}_mib"] = _child("_memory", args, seconds, mode)["peak_mib"]
        print(
            f"  {seconds:4.0f} s: cpu chunked {row['chunked_cpu_s'] * 1e3:7.1f} ms, "
            f"full {row['full_cpu_s'] * 1e3:7.1f} ms; "
            f"mem {row['chunked_mib']:6.1f} / {row['full_mib']:6.1f} MiB",
            file=sys.stderr,
            flush=True,
        )
        rows.append(row)
    return rows


def table(rows: list[dict[str, float]]) -> str:
    """Side-by-side Markdown table with growth relative to the shortest length."""
    r0 = rows[0]
    lines = [
        "| audio | frames | chunked ms | full ms | full/chunked | chunked x | full x "
        "| chunked MiB | full MiB | chunked mem x | full mem x | wall ms (chunked / full) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c, f = r["chunked_cpu_s"], r["full_cpu_s"]
        cells = [
            f"{r['seconds']:.0f} s",
            f"{r['frames']:.0f}",
            f"{c * 1e3:.0f}",
            f"{f * 1e3:.0f}",
            f"{f / c:.2f}",
            f"{c / r0['chunked_cpu_s']:.2f}",
            f"{f / r0['full_cpu_s']:.2f}",
            f"{r['chunked_mib']:.1f}",
            f"{r['full_mib']:.1f}",
            f"{r['chunked_mib'] / max(r0['chunked_mib'], 1e-9):.2f}",
            f"{r['full_mib'] / max(r0['full_mib'], 1e-9):.2f}",
            f"{r['chunked_wall_s'] * 1e3:.0f} / {r['full_wall_s'] * 1e3:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("unet", "_time", "_memory"):
        p = sub.add_parser(name)
        p.add_argument("--size", default="demo", choices=("debug", "demo", "base"))
        p.add_argument("--part", default="unet", choices=("unet", "attention"))
        p.add_argument("--batch", type=int, default=1)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--repeats", type=int, default=7)
        p.add_argument(
            "--backend",
            default="default",
            choices=("default", "math"),
            help="SDPA kernels: default lets torch pick (flash on CPU); math forces the naive one",
        )
        p.add_argument("--latent-channels", type=int, default=64)
        p.add_argument("--chord-dim", type=int, default=25)
        if name == "unet":
            p.add_argument("--seconds", type=float, nargs="+", default=[10, 20, 40, 80])
            p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
        else:
            p.add_argument("--seconds", type=float, required=True)
            p.add_argument("--mode", choices=MODES, default="chunked")
    args = parser.parse_args(argv)
    if args.command == "_time":
        print(json.dumps(time_point(args)))
        return 0
    if args.command == "_memory":
        print(json.dumps(memory_point(args)))
        return 0
    print(
        f"InstructME {args.part} forward: size={args.size}, batch={args.batch}, "
        f"threads={args.threads}, SDPA backend={args.backend}, median of {args.repeats}",
        file=sys.stderr,
    )
    rows = scaling(args)
    print(table(rows))
    if args.out is not None:
        from musigen.atomic import write_json

        settings = {k: str(v) for k, v in vars(args).items()}
        write_json(args.out, {"settings": settings, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
