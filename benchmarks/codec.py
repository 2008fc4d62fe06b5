"""Real-time factor of codec encode and decode on this CPU: the demo codec vs MusicGen's.

Usage: python benchmarks/codec.py [--threads 2] [--repeats 5] [--seconds 10] [--json out.json]

`encodec_32khz` is a random-init `EncodecModel` in facebook/encodec_32khz's exact config
(56.9 M parameters): same architecture and cost as the real checkpoint, which cannot be
downloaded here.  `demo` is the shipped checkpoints/codec_demo when present (else the same
architecture, random init).  Each cell is the median of `--repeats` timed runs after one
warm-up, of `Codec.encode` (audio -> codes) and `Codec.decode` (codes -> audio) on
`--seconds` of audio at the codec's rate.  RTF = processing time / audio duration (below 1
is faster than real time).  CPU time (`time.process_time`, summed over threads) is shown
beside wall time because the cores may be shared with other jobs.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402


def _median_times(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `fn` over `repeats` runs after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def _codec(name: str) -> tuple[Any, str]:
    from musigen.checkpoints import find_checkpoint
    from musigen.codec import DEMO_CODEC_NAME, Codec, fill_codebooks, preset_config

    if name == "demo" and find_checkpoint(DEMO_CODEC_NAME) is not None:
        return Codec.from_pretrained("demo"), "demo (checkpoints/codec_demo)"
    codec = Codec.from_config(preset_config(name))
    fill_codebooks(codec.model)
    return codec, f"{name} (exact config, random init)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--presets", nargs="+", default=["demo", "encodec_32khz"])
    ap.add_argument("--json", default=None, help="also write the rows as JSON")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for name in args.presets:
        codec, label = _codec(name)
        n = int(args.seconds * codec.sample_rate)
        wav = 0.1 * torch.randn(1, 1, n, generator=torch.Generator().manual_seed(0))
        codes = codec.encode(wav)
        enc_wall, enc_cpu = _median_times(lambda c=codec: c.encode(wav), args.repeats)
        dec_wall, dec_cpu = _median_times(lambda c=codec: c.decode(codes, length=n), args.repeats)
        rows.append({
            "preset": name, "model": label, "params_m": sum(p.numel() for p in codec.parameters()) / 1e6,
            "sample_rate": codec.sample_rate, "seconds": args.seconds,
            "encode_wall_s": enc_wall, "encode_cpu_s": enc_cpu, "encode_rtf": enc_wall / args.seconds,
            "decode_wall_s": dec_wall, "decode_cpu_s": dec_cpu, "decode_rtf": dec_wall / args.seconds,
        })
        del codec

    base = rows[0]
    print(f"# codec RTF, {args.seconds:g} s of audio, {args.threads} thread(s), median of {args.repeats} runs")
    print(f"{'model':44s} {'params':>7s} {'enc s':>7s} {'enc RTF':>8s} {'enc cpu':>8s} "
          f"{'dec s':>7s} {'dec RTF':>8s} {'dec cpu':>8s} {'enc x':>6s} {'dec x':>6s}")
    for r in rows:
        print(f"{r['model']:44s} {r['params_m']:6.1f}M {r['encode_wall_s']:7.3f} {r['encode_rtf']:8.3f} "
              f"{r['encode_cpu_s']:8.3f} {r['decode_wall_s']:7.3f} {r['decode_rtf']:8.3f} {r['decode_cpu_s']:8.3f} "
              f"{r['encode_wall_s'] / base['encode_wall_s']:6.1f} {r['decode_wall_s'] / base['decode_wall_s']:6.1f}")
    print(f"(enc x / dec x: time relative to {base['preset']})")
    if args.json:
        from musigen.atomic import write_json

        write_json(args.json, {"threads": args.threads, "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
