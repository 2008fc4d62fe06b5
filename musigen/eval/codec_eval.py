"""How much of the music survives a codec round trip, on held-out corpus pieces.

    python -m musigen.eval.codec_eval --model demo --out runs/codec_demo/eval

Held-out pieces are rendered from seeds >= 900000 (training corpora use lower seeds), so
the exact chord labels are known.  For every piece it reconstructs the mix

- through codes (`decode(encode(x))`, at every number of codebooks 1..K; chords are
  scored at full K only), which is the path MusiCoT's language model uses, and
- through continuous latents (`decode_latents(encode_latents(x))`), the InstructME path,
  both pre-quantiser and fully dequantised; the dequantised latent equals the sum of the
  code vectors, so that row also checks the two paths agree,

and reports log-mel distance, SI-SDR, and the recogniser's duration-weighted `majmin`
chord accuracy (mir_eval) on the reconstruction against on the original.  A PNG puts the
original's spectrogram above the reconstructions'.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musigen.errors import DataError, MusigenError

EVAL_SEED = 900_000
DEFAULT_CORPUS = Path("data/corpus_codec_eval")


def ensure_eval_corpus(folder: str | os.PathLike[str], n: int, duration: float, seed: int = EVAL_SEED,
                       rebuild: bool = False) -> Path:
    """Render the held-out corpus once (seeds >= 900000 never appear in training corpora)."""
    if seed < EVAL_SEED:
        raise DataError(f"held-out codec evaluation uses seeds >= {EVAL_SEED}, got {seed}")
    folder = Path(folder)
    manifest = folder / "manifest.jsonl"
    if manifest.is_file() and not rebuild:
        return manifest
    from musigen.data.synth.corpus import build_corpus

    return build_corpus(out_dir=folder, n=n, duration=duration, seed=seed, progress=False)


def _reconstructions(codec: Any, wav: np.ndarray) -> dict[str, np.ndarray]:
    """Every round trip of one mono clip at the codec's rate, trimmed to its length."""
    import torch

    x = torch.from_numpy(wav)[None]
    n = wav.shape[-1]
    out: dict[str, np.ndarray] = {}
    codes = codec.encode(x)
    for k in range(1, codec.num_codebooks + 1):
        out[f"codes_k{k}"] = codec.decode(codes[:, :k], length=n)[0].cpu().numpy()
    for name, quantized in (("latent_prequant", False), ("latent_dequant", True)):
        z = codec.encode_latents(x, quantized=quantized)
        out[name] = codec.decode_latents(z, length=n)[0].cpu().numpy()
    return out


def _spectrogram_figure(wavs: dict[str, np.ndarray], sample_rate: int, path: Path, seconds: float) -> Path:
    """Original above its reconstructions, same colour scale, first `seconds` seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from musigen.atomic import atomic_path
    from musigen.eval.signal_metrics import log_mel

    n = int(seconds * sample_rate)
    mels = {k: log_mel(v[..., :n], sample_rate, n_mels=80) * (10 / math.log(10)) for k, v in wavs.items()}
    top = max(float(m.max()) for m in mels.values())
    fig, axes = plt.subplots(len(mels), 1, figsize=(9, 1.9 * len(mels)), sharex=True, dpi=90)
    for ax, (name, mel) in zip(np.atleast_1d(axes), mels.items()):
        ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                  extent=(0.0, mel.shape[1] * 256 / sample_rate, 0, mel.shape[0]))
        ax.set_ylabel(name, fontsize=8)
        ax.set_yticks([])
    np.atleast_1d(axes)[-1].set_xlabel("time (s)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def evaluate(codec: Any, manifest: str | os.PathLike[str], out_dir: str | os.PathLike[str],
             max_items: int | None = None, png_seconds: float = 10.0,
             chord_codebooks: list[int] | None = None) -> dict[str, Any]:
    """Score every round trip on the manifest's pieces; writes `report.json` and `spectrograms.png`.

    Chords are recognised on the full code stack and the latents, plus on the lower
    bandwidths in `chord_codebooks` (e.g. the number of codebooks an LM decodes).
    """
    from musigen.atomic import write_json
    from musigen.audio import load_audio
    from musigen.chords import recognize_chords
    from musigen.data.manifest import read_manifest
    from musigen.eval.chord_accuracy import chord_scores
    from musigen.eval.signal_metrics import log_mel_distance, si_sdr

    manifest = Path(manifest)
    records = read_manifest(manifest)[:max_items]
    if not records:
        raise DataError(f"no pieces in {manifest}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sr = codec.sample_rate
    extra = sorted(set(chord_codebooks or []))
    if any(not 1 <= k <= codec.num_codebooks for k in extra):
        raise DataError(f"chord codebooks must be in 1..{codec.num_codebooks}, got {extra}")
    chord_paths = {f"codes_k{k}" for k in extra + [codec.num_codebooks]} | {"latent_prequant", "latent_dequant"}
    per_item: list[dict[str, Any]] = []
    for i, rec in enumerate(records):
        wav, _ = load_audio(manifest.parent / rec["path"], sample_rate=sr, channels=1)
        truth = [(float(a), float(b), str(c)) for a, b, c in rec["chords"]]
        recon = _reconstructions(codec, wav)
        item: dict[str, Any] = {"path": rec["path"], "seed": rec.get("seed"),
                                "original": {"majmin": chord_scores(truth, recognize_chords(wav, sr),
                                                                    ["majmin"])["majmin"]}}
        for name, y in recon.items():
            item[name] = {"mel_distance": log_mel_distance(y, wav, sr), "si_sdr": si_sdr(y, wav),
                          "majmin": float("nan")}
            if name in chord_paths:  # the recogniser is the slow part; lower bandwidths skip it
                item[name]["majmin"] = chord_scores(truth, recognize_chords(y, sr), ["majmin"])["majmin"]
        per_item.append(item)
        if i == 0:
            _spectrogram_figure({"original": wav[0], **{k: v[0] for k, v in recon.items()
                                                        if k in (f"codes_k{codec.num_codebooks}", "latent_prequant")}},
                                sr, out / "spectrograms.png", png_seconds)
        print(f"[codec_eval] {i + 1}/{len(records)} {rec['path']}: "
              f"codes mel={item[f'codes_k{codec.num_codebooks}']['mel_distance']:.3f} "
              f"latent mel={item['latent_prequant']['mel_distance']:.3f}", flush=True)

    paths = [k for k in per_item[0] if k not in ("path", "seed", "original")]
    summary: dict[str, Any] = {"original": {"majmin": float(np.mean([it["original"]["majmin"] for it in per_item]))}}
    for name in paths:
        row = {m: _mean([it[name][m] for it in per_item]) for m in ("mel_distance", "si_sdr", "majmin")}
        row["majmin_drop_points"] = 100.0 * (summary["original"]["majmin"] - row["majmin"])
        summary[name] = row
    report = {"manifest": str(manifest), "items": len(per_item), "sample_rate": sr,
              "num_codebooks": codec.num_codebooks, "cardinality": codec.cardinality,
              "summary": summary, "per_item": per_item, "png": str(out / "spectrograms.png")}
    write_json(out / "report.json", report)
    return report


def _mean(values: list[float]) -> float:
    """Mean over finite values (NaN where none: e.g. chords not scored on that path)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def format_summary(report: dict[str, Any]) -> str:
    """A plain-text table of the summary (one row per round trip)."""
    s = report["summary"]
    lines = [f"{report['items']} held-out pieces, {report['sample_rate']} Hz; "
             f"chord majmin on originals = {100 * s['original']['majmin']:.1f}%",
             f"{'path':18s} {'mel dist':>9s} {'SI-SDR dB':>10s} {'majmin %':>9s} {'drop pts':>9s}"]
    for name, row in s.items():
        if name == "original":
            continue
        chords = "        -         -" if math.isnan(row["majmin"]) else \
            f"{100 * row['majmin']:9.1f} {row['majmin_drop_points']:9.1f}"
        lines.append(f"{name:18s} {row['mel_distance']:9.3f} {row['si_sdr']:10.2f} {chords}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(prog="python -m musigen.eval.codec_eval", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo", help="codec preset, folder or hub id")
    ap.add_argument("--out", type=Path, required=True, help="folder for report.json and spectrograms.png")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="held-out corpus folder (rendered if absent)")
    ap.add_argument("--n", type=int, default=16, help="pieces to render when the corpus is absent")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=EVAL_SEED)
    ap.add_argument("--rebuild", action="store_true", help="re-render the held-out corpus")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chord-codebooks", type=int, nargs="*", default=[],
                    help="lower bandwidths to score chords on too (e.g. 4: what the demo LM decodes)")
    args = ap.parse_args(argv)
    try:
        import torch

        from musigen.codec import Codec

        torch.set_num_threads(args.threads)
        manifest = ensure_eval_corpus(args.corpus, args.n, args.duration, args.seed, args.rebuild)
        report = evaluate(Codec.from_pretrained(args.model), manifest, args.out, max_items=args.n,
                          chord_codebooks=args.chord_codebooks)
    except MusigenError as exc:
        print(f"codec_eval: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(report))
    print(f"wrote {args.out / 'report.json'} and {report['png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
