"""The evaluation harness: run systems on a held-out set, score them, write the report.

Systems are anything implementing :mod:`musigen.eval.harness.protocols`; the trivial baselines are
scored in the same run by the same judge, so every model's numbers sit next to the floors
(and ceilings) they must be read against.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from musigen.errors import AudioError, MusigenError, NonFiniteAudioError
from musigen.eval.harness.context import EvalContext
from musigen.eval.harness.protocols import EditSystem, GenerationSystem, output_rate
from musigen.eval.harness.report import ListenItem, ReportPaths, Table, Track, write_report
from musigen.eval.harness.set_items import EditItem, EvalSet, GenItem
from musigen.eval.metrics.chord_accuracy import chord_scores
from musigen.eval.metrics.clap_score import clap_score
from musigen.eval.metrics.fad import fad_from_embeddings
from musigen.eval.metrics.instruction_accuracy import InstructionCheck, Op, check_instruction, summarise_checks
from musigen.eval.metrics.kl import kl_from_logits
from musigen.eval.metrics.per_instruction import (
    PerInstructionCheck,
    check_per_instruction,
    summarise_per_instruction,
)
from musigen.eval.metrics.per_instruction_margins import margins_for
from musigen.eval.metrics.signal_metrics import log_mel_distance, si_sdr

log = logging.getLogger(__name__)

EDIT_TASKS: tuple[str, ...] = ("add", "remove", "extract", "replace", "remix", "two_round")


def conform(wav: Any, rate_in: int, rate_out: int, who: str) -> np.ndarray:
    """A system's output -> mono float32 [samples] at `rate_out`, with a clear error if unusable."""
    if hasattr(wav, "detach"):
        wav = wav.detach().cpu().float().numpy()
    x = np.asarray(wav, dtype=np.float32)
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1 or x.size == 0:
        raise AudioError(f"{who} returned audio of shape {x.shape}; expected [samples] or [channels, samples]")
    if not np.all(np.isfinite(x)):
        raise NonFiniteAudioError(f"{who} returned NaN or Inf samples")
    if rate_in != rate_out:
        import soxr

        x = soxr.resample(x, rate_in, rate_out).astype(np.float32)
    return x


def _mean(values: Sequence[float | None]) -> float | None:
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    return float(np.mean(v)) if v else None


# ---------------------------------------------------------------------------------- edits


def run_edit_system(name: str, system: EditSystem, eval_set: EvalSet, seed: int) -> dict[str, np.ndarray]:
    """Edit every source of the set; returns item id -> output at the set's rate."""
    sr = eval_set.sample_rate
    out: dict[str, np.ndarray] = {}
    for i, item in enumerate(eval_set.items):
        wav = system.edit(eval_set.audio(item.source), sr, list(item.instructions), seed + i)
        out[item.id] = conform(wav, output_rate(system, sr), sr, name)
    return out


def _has_harmony(truth: dict[str, bool | None]) -> bool:
    return any(v for k, v in truth.items() if k != "drums")


def _fad(ref: list[np.ndarray], test: list[np.ndarray], embedder: str) -> dict[str, Any]:
    """FAD as a report dict; with fewer than two embeddings a side it is n/a, not an error."""
    a, b = np.concatenate(ref), np.concatenate(test)
    if min(len(a), len(b)) < 2:
        return {"value": None, "embedder": embedder, "n_reference": len(a), "n_test": len(b),
                "warning": "fewer than two embeddings: no FAD"}
    return fad_from_embeddings(a, b, embedder).as_dict()


def score_edits(eval_set: EvalSet, outputs: dict[str, np.ndarray], ctx: EvalContext) -> dict[str, Any]:
    """Per-task and overall metrics of one system's outputs, plus per-item records."""
    sr = eval_set.sample_rate
    records: list[dict[str, Any]] = []
    per_task: dict[str, list[tuple[EditItem, dict[str, Any], Any, Any, np.ndarray]]] = {}
    margins = margins_for(ctx.judge_name)
    for item in eval_set.items:
        out, target = outputs[item.id], eval_set.audio(item.target)
        a_out = ctx.analyze(out, sr)
        a_tgt = ctx.analyze(target, sr)
        ops = [Op.from_dict(o) for o in item.ops]
        check = check_instruction(item.source_truth, item.target_truth, a_out.presence, ops, a_out.genre,
                                  threshold=a_out.thresholds)
        a_src = ctx.analyze(eval_set.audio(item.source), sr)
        per = check_per_instruction(item.source_truth, a_src.presence, a_out.presence, ops, a_out.thresholds,
                                    a_out.genre, margins=margins)
        rec: dict[str, Any] = {
            "id": item.id, "task": item.task, "si_sdr": si_sdr(out, target),
            "log_mel": log_mel_distance(out, target, sr), "success": check.success,
            "target_ok": check.target_ok, "others_ok": check.others_ok, "genre_ok": check.genre_ok,
            "wrong": check.wrong, "judged_genre": a_out.genre,
            "per_instruction_success": per.success, "named_ok": per.named_ok, "other_flips": per.other_flips,
            "wrong_named": per.wrong_named, "flipped": per.flipped,
        }
        if ctx.chords is not None and _has_harmony(item.target_truth):
            est = ctx.recognise(out, sr)
            src = ctx.recognise(eval_set.audio(item.source), sr)
            if est:
                rec.update({f"chord_{k}": v for k, v in chord_scores(item.chords, est).items()})
                if src:  # chord preservation: the output's recognised chords against the source's
                    rec.update({f"chord_kept_{k}": v for k, v in chord_scores(src, est).items()})
            rec["chords_out"] = est
        records.append(rec)
        per_task.setdefault(item.task, []).append((item, rec, a_tgt, a_out, out))
    groups = {t: per_task[t] for t in EDIT_TASKS if t in per_task}
    groups.update({t: v for t, v in per_task.items() if t not in groups})
    groups["all"] = [x for t in list(groups) for x in groups[t]]
    tasks: dict[str, Any] = {}
    for task, rows in groups.items():
        recs = [r for _, r, _, _, _ in rows]
        m: dict[str, Any] = {"n": len(rows)}
        m["si_sdr"] = _mean([r["si_sdr"] for r in recs])
        m["log_mel"] = _mean([r["log_mel"] for r in recs])
        m.update(summarise_checks([InstructionCheck(r["target_ok"], r["others_ok"], r["genre_ok"], r["success"])
                                   for r in recs]))
        m.update(summarise_per_instruction([PerInstructionCheck(r["named_ok"], r["genre_ok"], r["other_flips"],
                                                                r["per_instruction_success"]) for r in recs]))
        m["chord_root"] = _mean([r.get("chord_root") for r in recs])
        m["chord_majmin"] = _mean([r.get("chord_majmin") for r in recs])
        m["chord_kept_root"] = _mean([r.get("chord_kept_root") for r in recs])
        m["chord_kept_majmin"] = _mean([r.get("chord_kept_majmin") for r in recs])
        m["fad_judge"] = _fad([a.embeddings for _, _, a, _, _ in rows], [a.embeddings for _, _, _, a, _ in rows],
                              ctx.judge_name)
        m["kl_judge"] = kl_from_logits(np.stack([a.clip_logits for _, _, a, _, _ in rows]),
                                       np.stack([a.clip_logits for _, _, _, a, _ in rows]), ctx.judge_name).as_dict()
        if ctx.clap is not None:
            m["clap"] = clap_score(ctx.clap, [it.target_caption for it, *_ in rows],
                                   [o for *_, o in rows], sr, ctx.clap_note).as_dict()
        tasks[task] = m
    return {"tasks": tasks, "items": records}


def edit_table(results: dict[str, dict[str, Any]], ctx: EvalContext) -> Table:
    cols = ["task", "system", "n", "SI-SDR dB", "log-mel", "instr. acc (per instruction)", "instr. acc",
            "target ok", "others ok",
            "genre ok", "chord majmin", "chords kept", "FAD (judge)", "KL (judge)"]
    if ctx.clap is not None:
        cols.append("CLAP")
    rows = []
    tasks = list(next(iter(results.values()))["tasks"])
    for task in tasks:
        for system, res in results.items():
            m = res["tasks"][task]
            row = [task, system, m["n"], m["si_sdr"], m["log_mel"], m["instruction_accuracy_per_instruction"],
                   m["instruction_accuracy"], m["target_ok"],
                   m["others_ok"], m["genre_ok"], m["chord_majmin"], m["chord_kept_majmin"], m["fad_judge"]["value"],
                   m["kl_judge"]["value"]]
            if ctx.clap is not None:
                row.append(m["clap"]["value"])
            rows.append(row)
    return Table("Editing", cols, rows)


def _listen_edit(eval_set: EvalSet, outputs: dict[str, dict[str, np.ndarray]], results: dict[str, Any],
                 n_per_task: int) -> list[ListenItem]:
    sr = eval_set.sample_rate
    chosen: dict[str, list[EditItem]] = {}
    for item in eval_set.items:
        if len(chosen.setdefault(item.task, [])) < n_per_task:
            chosen[item.task].append(item)
    listen = []
    for items in chosen.values():
        for item in items:
            tracks = [Track("input (source)", eval_set.audio(item.source), sr, chords=item.chords),
                      Track("ground truth (target)", eval_set.audio(item.target), sr, chords=item.chords)]
            for system, outs in outputs.items():
                rec = next(r for r in results[system]["items"] if r["id"] == item.id)
                note = (f"instruction {'followed' if rec['success'] else 'not followed'}"
                        + (f" (wrong: {', '.join(rec['wrong'])})" if rec["wrong"] else "")
                        + f"; SI-SDR {rec['si_sdr']:.1f} dB")
                tracks.append(Track(f"output: {system}", outs[item.id], sr, chords=rec.get("chords_out"), note=note,
                                    is_output=True))
            listen.append(ListenItem(item.id, " → ".join(item.instructions),
                                     f"{item.task} · {item.genre} → {item.target_genre} · target: {item.target_caption}",
                                     tracks))
    return listen


def evaluate_edit(systems: Sequence[tuple[str, EditSystem]], eval_set: EvalSet, out_dir: str | os.PathLike[str],
                  ctx: EvalContext, seed: int = 0, n_listen: int = 2, title: str | None = None) -> ReportPaths:
    """Score every system (model first, then baselines) on an edit set and write the report."""
    if eval_set.kind != "edit":
        raise MusigenError(f"{eval_set.root} is a {eval_set.kind!r} set; `eval edit` needs an edit set")
    outputs, results = {}, {}
    for name, system in systems:
        log.info("editing with %s", name)
        outputs[name] = run_edit_system(name, system, eval_set, seed)
        results[name] = score_edits(eval_set, outputs[name], ctx)
    metrics = {"kind": "edit", "set": str(eval_set.root), "set_info": eval_set.info, "seed": seed,
               "judge": ctx.judge_name, "fad_embedder": ctx.judge_name, "clap": ctx.clap_note,
               "chords": ctx.chords_note, "system_order": list(results), "systems": results}
    notes = [f"set: {eval_set.root} ({len(eval_set.items)} triplets, {eval_set.info.get('renderer')} renders)",
             f"judge (instruction accuracy, FAD and KL embedder): {ctx.judge_name}",
             f"CLAP score: {ctx.clap_note}", f"chords: {ctx.chords_note}",
             "instr. acc (per instruction): against the judge's view of the source, the instrument the "
             "instruction names moves as asked (crosses its threshold or moves by its dev-fitted margin; the "
             "genre after a genre remix) and at most one other instrument changes its judged state by more "
             "than its margin; "
             "instr. acc: every instrument judged right (target ok and others ok)",
             "SI-SDR and log-mel against the exact target; chord majmin: recognised chords of the output "
             "against the ground truth; chords kept: the output's recognised chords against the source's "
             "(mir_eval, duration-weighted); FAD per task uses few embeddings (see metrics.json)"]
    listen = _listen_edit(eval_set, outputs, results, n_listen)
    return write_report(out_dir, title or "musigen edit evaluation", metrics, [edit_table(results, ctx)],
                        listen, notes)


# ------------------------------------------------------------------------------ generation


def run_generation_system(name: str, system: GenerationSystem, eval_set: EvalSet, seed: int,
                          batch_size: int = 8) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Generate for every prompt (with its style reference); returns outputs and thought plans."""
    sr, rate = eval_set.sample_rate, int(system.sample_rate)
    duration = float(eval_set.info["duration"])
    outs: dict[str, np.ndarray] = {}
    thoughts: dict[str, Any] = {}
    items: list[GenItem] = eval_set.items
    for b in range(0, len(items), batch_size):
        batch = items[b:b + batch_size]
        refs = [conform(eval_set.audio(it.ref), sr, rate, "reference") if it.ref else None for it in batch]
        wavs = system.generate([it.prompt for it in batch], refs, duration, seed + b)
        if len(wavs) != len(batch):
            raise MusigenError(f"{name} returned {len(wavs)} clips for {len(batch)} prompts")
        plans = getattr(system, "last_thoughts", None)
        for j, (it, wav) in enumerate(zip(batch, wavs)):
            outs[it.id] = conform(wav, rate, sr, name)
            if plans is not None and j < len(plans) and plans[j] is not None:
                thoughts[it.id] = [(float(s), float(e), str(lab)) for s, e, lab in plans[j]]
    return outs, thoughts


def score_generation(eval_set: EvalSet, outputs: dict[str, np.ndarray], ctx: EvalContext) -> dict[str, Any]:
    sr = eval_set.sample_rate
    items: list[GenItem] = eval_set.items
    a_tgt = [ctx.analyze(eval_set.audio(it.target), sr) for it in items]
    a_out = [ctx.analyze(outputs[it.id], sr) for it in items]
    records, f1s = [], []
    for it, a in zip(items, a_out):
        judged = {k for k, yes in a.present.items() if yes}
        want = set(it.instruments)
        tp = len(judged & want)
        f1 = 2 * tp / max(len(judged) + len(want), 1)
        f1s.append(f1)
        records.append({"id": it.id, "instrument_f1": f1, "judged_instruments": sorted(judged),
                        "judged_genre": a.genre, "genre_ok": a.genre == it.genre})
    m: dict[str, Any] = {
        "n": len(items),
        "fad_judge": _fad([a.embeddings for a in a_tgt], [a.embeddings for a in a_out], ctx.judge_name),
        "kl_judge": kl_from_logits(np.stack([a.clip_logits for a in a_tgt]), np.stack([a.clip_logits for a in a_out]),
                                   ctx.judge_name).as_dict(),
        "instrument_f1": float(np.mean(f1s)),
        "genre_acc": float(np.mean([r["genre_ok"] for r in records])),
    }
    if ctx.clap is not None:
        wavs = [outputs[it.id] for it in items]
        m["clap"] = clap_score(ctx.clap, [it.prompt for it in items], wavs, sr, ctx.clap_note).as_dict()
        ref_emb = [np.asarray(ctx.clap.embed_audio(eval_set.audio(it.target), sr)) for it in items]
        out_emb = [np.asarray(ctx.clap.embed_audio(w, sr)) for w in wavs]
        m["fad_clap"] = _fad(ref_emb, out_emb, ctx.clap_note)
    return {"metrics": m, "items": records}


def generation_table(results: dict[str, dict[str, Any]], ctx: EvalContext) -> Table:
    cols = ["system", "n", "FAD (judge)", "KL (judge)", "instrument F1", "genre acc"]
    if ctx.clap is not None:
        cols += ["CLAP score", "FAD (CLAP)"]
    rows = []
    for system, res in results.items():
        m = res["metrics"]
        row = [system, m["n"], m["fad_judge"]["value"], m["kl_judge"]["value"], m["instrument_f1"], m["genre_acc"]]
        if ctx.clap is not None:
            row += [m["clap"]["value"], m["fad_clap"]["value"]]
        rows.append(row)
    return Table("Text-to-music generation", cols, rows)


def evaluate_generation(systems: Sequence[tuple[str, GenerationSystem]], eval_set: EvalSet,
                        out_dir: str | os.PathLike[str], ctx: EvalContext, seed: int = 0, n_listen: int = 4,
                        title: str | None = None) -> ReportPaths:
    """Score every system on a generation set and write the report (with thought timelines)."""
    if eval_set.kind != "gen":
        raise MusigenError(f"{eval_set.root} is a {eval_set.kind!r} set; `eval generate` needs a generation set")
    outputs, thoughts, results = {}, {}, {}
    for name, system in systems:
        log.info("generating with %s", name)
        outputs[name], thoughts[name] = run_generation_system(name, system, eval_set, seed)
        results[name] = score_generation(eval_set, outputs[name], ctx)
        results[name]["thoughts"] = thoughts[name]
    metrics = {"kind": "generate", "set": str(eval_set.root), "set_info": eval_set.info, "seed": seed,
               "judge": ctx.judge_name, "fad_embedder": ctx.judge_name, "clap": ctx.clap_note,
               "system_order": list(results), "systems": results}
    notes = [f"set: {eval_set.root} ({len(eval_set.items)} prompts, {eval_set.info.get('renderer')} renders)",
             f"FAD / KL embedder and classifier: {ctx.judge_name}; FAD compares outputs with the held-out audio",
             f"CLAP score: {ctx.clap_note}",
             "'reference' returns the held-out audio itself: its FAD and KL are 0 by construction"]
    sr = eval_set.sample_rate
    listen = []
    for it in eval_set.items[:n_listen]:
        tracks = [Track("held-out audio", eval_set.audio(it.target), sr, chords=it.chords)]
        if it.ref:
            tracks.append(Track("style reference", eval_set.audio(it.ref), sr))
        for name in outputs:
            tracks.append(Track(f"output: {name}", outputs[name][it.id], sr, thoughts=thoughts[name].get(it.id),
                                    is_output=True))
        listen.append(ListenItem(it.id, it.prompt, f"{it.genre} · {it.tempo:.0f} bpm · {it.key} · {it.mood}",
                                 tracks, thought_slot=True))
    return write_report(out_dir, title or "musigen generation evaluation", metrics,
                        [generation_table(results, ctx)], listen, notes)
