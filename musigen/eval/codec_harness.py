"""`musigen eval codec`: how much a codec's round trip costs, on a held-out set.

Both paths that the two model families use are measured: discrete codes (MusiCoT) and
continuous latents (InstructME), next to the identity ceiling, with the same judge and
chord recogniser as the generation and edit reports.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from musigen.errors import MusigenError
from musigen.eval.chord_accuracy import chord_scores
from musigen.eval.context import EvalContext
from musigen.eval.harness import _fad, _mean
from musigen.eval.kl import kl_from_logits
from musigen.eval.report import ListenItem, ReportPaths, Table, Track, write_report
from musigen.eval.set_items import EvalSet
from musigen.eval.signal_metrics import log_mel_distance, si_sdr

PATHS: tuple[str, ...] = ("codes", "latents")


class CodecRoundTrip:
    """Audio -> codec (codes or latents) -> audio, at the input's length."""

    def __init__(self, codec: Any, path: str) -> None:
        if path not in PATHS:
            raise MusigenError(f"codec path must be one of {PATHS}, got {path!r}")
        self.codec, self.path = codec, path
        self.sample_rate = int(codec.sample_rate)

    def reconstruct(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        from musigen.eval.codec_round_trip import through_codec

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
