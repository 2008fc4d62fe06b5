"""CLAP embedding time per 10 s of audio on this CPU: the demo musigen_clap vs LAION CLAP.

Usage: python benchmarks/clap.py [--threads 1] [--repeats 5] [--model checkpoints/clap_demo]

`hf_clap` is a random-init `ClapModel` in laion/larger_clap_music's exact config (HTSAT-base
+ RoBERTa-base, 48 kHz): same architecture and cost as the real checkpoint, which cannot be
downloaded here.  Each row is the median of `--repeats` timed runs after one warm-up:
audio = `embed_audio` on 10 s of 16 kHz audio (resampling and features included), text =
`embed_text` of 8 prompts.  The last column is the ratio to musigen_clap.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402


def _median_s(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up (lazy loads, allocator)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _hf_clap() -> Any:
    from tokenizers import pre_tokenizers
    from transformers import ClapFeatureExtractor, ClapModel, RobertaTokenizer

    from musigen.embedders.clap import HFClapEmbedder, larger_clap_music_config

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = RobertaTokenizer(vocab=vocab, merges=[], model_max_length=512)
    model = ClapModel(larger_clap_music_config())  # full size, 50k-token embedding table
    emb = HFClapEmbedder(model, ClapFeatureExtractor(truncation="rand_trunc"), tok)
    emb.name = "hf_clap (larger_clap_music config, random init)"
    return emb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default="demo", help="musigen_clap preset or folder")
    ap.add_argument("--skip-hf", action="store_true", help="only time musigen_clap")
    args = ap.parse_args()

    import numpy as np
    import torch

    from musigen.embedders.clap import load_embedder

    torch.set_num_threads(args.threads)
    wav = (0.1 * np.random.default_rng(0).standard_normal(160000)).astype(np.float32)
    prompts = [
        "drums",
        "bass",
        "piano",
        "guitar",
        "a calm ambient track",
        "rock music",
        "happy mood",
        "the chorus",
    ]
    embedders = [load_embedder(args.model)]
    if not args.skip_hf:
        embedders.append(_hf_clap())
    print(f"threads={args.threads} repeats={args.repeats}; 10 s of 16 kHz mono audio, 8 prompts")
    print(f"{'embedder':<52} {'params':>8} {'audio s/10s':>12} {'text s/8':>10} {'x demo':>8}")
    base = None
    for e in embedders:
        params = sum(p.numel() for p in e.parameters()) / 1e6
        audio_s = _median_s(lambda e=e: e.embed_audio(wav, 16000, window_s=10.0), args.repeats)
        text_s = _median_s(lambda e=e: e.embed_text(prompts), args.repeats)
        base = base or audio_s
        name = (e.name or e.kind)[:52]
        ratio = audio_s / base
        print(f"{name:<52} {params:>7.1f}M {audio_s:>12.3f} {text_s:>10.3f} {ratio:>8.1f}")


if __name__ == "__main__":
    main()
