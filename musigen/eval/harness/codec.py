"""How much a codec's round trip costs: the one place the codec is evaluated.

Two views of the same question, sharing the round trip of :mod:`musigen.codec_round_trip`:

- `musigen eval codec` (:func:`evaluate_codec`): on a held-out *set*, both paths the two
  model families use, discrete codes (MusiCoT) and continuous latents (InstructME), next to
  the identity ceiling, with the same judge and chord recogniser as the generation and edit
  reports (an HTML report).
- `musigen eval codec-corpus` (:func:`evaluate`): on held-out *corpus* pieces (seeds >=
  900000, never in training corpora, so the chord labels are exact), every bandwidth: codes
  through 1..K codebooks (chords scored at full K and at `chord_codebooks` only) and the
  latents both pre-quantiser and fully dequantised (the dequantised latent equals the sum of
  the code vectors, so that row also checks the two paths agree); log-mel distance, SI-SDR
  and the recogniser's `majmin` accuracy against the original's (report.json and a PNG of
  the original's spectrogram above the reconstructions').
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from musigen.errors import DataError, MusigenError
from musigen.eval.harness.context import EvalContext
from musigen.eval.harness.evaluate import _fad, _mean
from musigen.eval.harness.report import ListenItem, ReportPaths, Table, Track, write_report
from musigen.eval.harness.set_items import EvalSet
from musigen.eval.metrics.chord_accuracy import chord_scores
from musigen.eval.metrics.kl import kl_from_logits
from musigen.eval.metrics.signal_metrics import log_mel_distance, si_sdr

PATHS: tuple[str, ...] = ("codes", "latents")


class CodecRoundTrip:
    """Audio -> codec (codes or latents) -> audio, at the input's length."""

    def __init__(self, codec: Any, path: str) -> None:
        if path not in PATHS:
            raise MusigenError(f"codec path must be one of {PATHS}, got {path!r}")
        self.codec, self.path = codec, path
        self.sample_rate = int(codec.sample_rate)

    def reconstruct(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        from musigen.codec_round_trip import through_codec

        return through_codec(self.codec, wav, sample_rate, None if self.path == "codes" else 0)


def _clips(eval_set: EvalSet) -> list[tuple[str, str, list[tuple[float, float, str]]]]:
    """(id, audio path, ground-truth chords) of the set's ground-truth mixes."""
    if eval_set.kind == "gen":
        return [(it.id, it.target, it.chords) for it in eval_set.items]
    return [(it.id, it.source, it.chords) for it in eval_set.items]


def evaluate_codec(codec: Any, codec_name: str, eval_set: EvalSet, out_dir: str | os.PathLike[str],
                   ctx: EvalContext, n_listen: int = 3, limit: int | None = None) -> ReportPaths:
    """SI-SDR, log-mel, chord accuracy (and its drop), FAD and KL of both round-trip paths."""
    sr = eval_set.sample_rate
    clips = _clips(eval_set)[:limit] if limit else _clips(eval_set)
    originals = {cid: eval_set.audio(rel) for cid, rel, _ in clips}
    systems: dict[str, Any] = {"identity": None}
    systems.update({f"{codec_name} ({p})": CodecRoundTrip(codec, p) for p in PATHS})
    outputs: dict[str, dict[str, np.ndarray]] = {}
    results: dict[str, Any] = {}
    orig_chords: dict[str, float | None] = {}
    for name, rt in systems.items():
        outs = {cid: (originals[cid].copy() if rt is None else rt.reconstruct(originals[cid], sr)) for cid, _, _ in clips}
        outputs[name] = outs
        a_ref = [ctx.analyze(originals[c], sr, key=f"{eval_set.root}:{c}:codec-orig") for c, _, _ in clips]
        a_out = [ctx.analyze(outs[c], sr) for c, _, _ in clips]
        majmin = []
        for cid, _, chords in clips:
            est = ctx.recognise(outs[cid], sr)
            majmin.append(chord_scores(chords, est)["majmin"] if est else None)
            if name == "identity":
                orig_chords[cid] = majmin[-1]
        m = {
            "n": len(clips),
            "si_sdr": _mean([si_sdr(outs[c], originals[c]) for c, _, _ in clips]),
            "log_mel": _mean([log_mel_distance(outs[c], originals[c], sr) for c, _, _ in clips]),
            "chord_majmin": _mean(majmin),
            "chord_majmin_drop": (None if ctx.chords is None else
                                  _mean(list(orig_chords.values())) - (_mean(majmin) or 0.0)),
            "fad_judge": _fad([a.embeddings for a in a_ref], [a.embeddings for a in a_out], ctx.judge_name),
            "kl_judge": kl_from_logits(np.stack([a.clip_logits for a in a_ref]),
                                       np.stack([a.clip_logits for a in a_out]), ctx.judge_name).as_dict(),
        }
        results[name] = {"metrics": m}
    rows = [[name, r["metrics"]["n"], r["metrics"]["si_sdr"], r["metrics"]["log_mel"], r["metrics"]["chord_majmin"],
             r["metrics"]["chord_majmin_drop"], r["metrics"]["fad_judge"]["value"], r["metrics"]["kl_judge"]["value"]]
            for name, r in results.items()]
    table = Table("Codec round trip", ["system", "n", "SI-SDR dB", "log-mel", "chord majmin", "majmin drop",
                                       "FAD (judge)", "KL (judge)"], rows)
    metrics = {"kind": "codec", "codec": codec_name, "set": str(eval_set.root), "judge": ctx.judge_name,
               "chords": ctx.chords_note, "system_order": list(results), "systems": results}
    listen = [ListenItem(cid, f"{cid}", "original and reconstructions",
                         [Track(name, outputs[name][cid], sr, chords=chords) for name in outputs])
              for cid, _, chords in clips[:n_listen]]
    notes = [f"set: {eval_set.root} ({len(clips)} clips)", f"codec: {codec_name}",
             f"judge (FAD/KL): {ctx.judge_name}", f"chords: {ctx.chords_note}",
             "'identity' is the ceiling: the original audio"]
    return write_report(Path(out_dir), f"musigen codec evaluation: {codec_name}", metrics, [table], listen, notes)


# ------------------------------------------------------- every bandwidth, on corpus pieces

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
    from musigen.eval.metrics.signal_metrics import log_mel

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
    from musigen.eval.metrics.chord_accuracy import chord_scores
    from musigen.eval.metrics.signal_metrics import log_mel_distance, si_sdr

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
        print(f"[codec-corpus] {i + 1}/{len(records)} {rec['path']}: "
              f"codes mel={item[f'codes_k{codec.num_codebooks}']['mel_distance']:.3f} "
              f"latent mel={item['latent_prequant']['mel_distance']:.3f}", flush=True)

    paths = [k for k in per_item[0] if k not in ("path", "seed", "original")]
    summary: dict[str, Any] = {"original": {"majmin": float(np.mean([it["original"]["majmin"] for it in per_item]))}}
    for name in paths:
        row = {m: _finite_mean([it[name][m] for it in per_item]) for m in ("mel_distance", "si_sdr", "majmin")}
        row["majmin_drop_points"] = 100.0 * (summary["original"]["majmin"] - row["majmin"])
        summary[name] = row
    report = {"manifest": str(manifest), "items": len(per_item), "sample_rate": sr,
              "num_codebooks": codec.num_codebooks, "cardinality": codec.cardinality,
              "summary": summary, "per_item": per_item, "png": str(out / "spectrograms.png")}
    write_json(out / "report.json", report)
    return report


def _finite_mean(values: list[float]) -> float:
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
