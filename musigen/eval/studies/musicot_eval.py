"""MusiCoT-specific measurements that `musigen eval generate` does not cover.

    musigen eval musicot --model DIR [--compare DIR2] --set data/eval_sets/gen \
        --out REPORT_DIR [--n N] [--duration S] [--seed N] [--clap pipeline|SPEC] \
        [--sampling plan_cfg=2 --sampling ref_cfg=1 ...]

For every prompt of a held-out generation set, each model writes the piece from text alone
and (where the item has a style reference and the model takes one) from text + reference,
both with the seed `seed + item index`, so every comparison is paired. Then:

1. plan adherence (:mod:`musigen.eval.metrics.plan_adherence`): the output re-analysed against its
   own plan, with another item's plan as the floor;
2. reference: CLAP cosine of output and reference, with against without the reference
   (paired), and against another item's reference as the floor;
3. copying (:mod:`musigen.eval.metrics.copy_detection`): the longest run of codes shared with the
   reference's codes; the output made without the reference is the floor.

`--compare` runs the same for a second model (the no-CoT ablation has no plan and takes no
reference, so only its text-only rows exist). Writes metrics.json and report.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musigen.atomic import write_json, write_text
from musigen.errors import ConfigError, DataError, MusigenError
from musigen.eval.metrics.clap_score import embedder_name
from musigen.eval.metrics.copy_detection import SharedRun, copy_runs, summarise_runs
from musigen.eval.metrics.plan_adherence import (
    PlanComparison,
    compare_plan,
    plan_vectors,
    reanalyse,
    summarise_plans,
    tag_texts,
)
from musigen.eval.harness.report import Table, markdown_table
from musigen.eval.harness.set_items import EvalSet, GenItem, load_set, resolve_set

log = logging.getLogger(__name__)

CONDITIONS: tuple[str, ...] = ("text", "text+ref")


@dataclass
class Generated:
    """One generation: mono audio at the model's rate, the codes it decoded and its plan."""

    audio: np.ndarray
    codes: torch.Tensor  # [K, T]
    plan: list[list[int]]  # [S, L]; empty without thoughts
    seconds: float


class _RecordingCodec:
    """Forwards to a codec and keeps the codes the pipeline decodes (its result has only audio)."""

    def __init__(self, codec: Any) -> None:
        self.codec = codec
        self.codes: torch.Tensor | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.codec, name)

    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        self.codes = codes.detach().cpu()
        return self.codec.decode(codes, length=length)


@contextmanager
def _recording(pipe: Any) -> Iterator[_RecordingCodec]:
    recorder = _RecordingCodec(pipe.codec)
    pipe.codec = recorder
    try:
        yield recorder
    finally:
        pipe.codec = recorder.codec


def generate_one(pipe: Any, prompt: str, duration: float, seed: int,
                 ref: np.ndarray | None = None, ref_sample_rate: int | None = None) -> Generated:
    """One prompt through the pipeline, keeping the generated codes as well as the audio."""
    start = time.perf_counter()
    with _recording(pipe) as rec:
        res = pipe(prompt, ref=ref, ref_sample_rate=ref_sample_rate, duration=duration, seed=seed,
                   progress=False)
    if rec.codes is None:
        raise MusigenError("the pipeline decoded no codes")
    return Generated(np.asarray(res.audio[0], np.float32), rec.codes[0], res.thoughts[0],
                     time.perf_counter() - start)


def clip_vector(embedder: Any, wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """One unit vector per clip: the normalised mean of its window embeddings (as the CLAP score)."""
    a = embedder.embed_audio(wav, sample_rate).detach().cpu().double().numpy().reshape(-1, embedder.dim)
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    m = a.mean(axis=0)
    return m / max(float(np.linalg.norm(m)), 1e-12)


def _shift(n: int) -> list[int]:
    """A derangement for the floors: item i is paired with item i+1 (None-safe for n < 2)."""
    return [(i + 1) % n for i in range(n)] if n >= 2 else []


def _stats(values: Sequence[float]) -> dict[str, Any]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "mean": None, "stderr": None}
    err = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None
    return {"n": int(v.size), "mean": float(v.mean()), "stderr": err}


def evaluate_model(pipe: Any, eval_set: EvalSet, items: Sequence[GenItem], duration: float, seed: int,
                   embedder: Any, ref_vectors: dict[str, np.ndarray]) -> dict[str, Any]:
    """Generate every item (text, and text+ref where possible) and measure 1-3 for one model."""
    sr = eval_set.sample_rate
    rate = pipe.sample_rate
    thoughts = bool(pipe.config.use_thoughts)
    gens: dict[str, dict[str, Generated]] = {c: {} for c in CONDITIONS}
    ref_codes: dict[str, torch.Tensor] = {}
    ref_thought_vecs: dict[str, torch.Tensor] = {}  # the reference in the plan's own space
    for i, it in enumerate(items):
        gens["text"][it.id] = generate_one(pipe, it.prompt, duration, seed + i)
        if it.ref:
            ref = eval_set.audio(it.ref)
            ref_codes[it.id] = pipe.codec.encode(ref, sample_rate=sr,
                                                 num_codebooks=pipe.lm.config.num_codebooks)[0].cpu()
            if thoughts:
                vecs = reanalyse(ref, sr, pipe.embedder, pipe.tokenizer).mean(0)
                ref_thought_vecs[it.id] = torch.nn.functional.normalize(vecs, dim=-1)
                gens["text+ref"][it.id] = generate_one(pipe, it.prompt, duration, seed + i, ref=ref,
                                                       ref_sample_rate=sr)
        log.info("item %d/%d done", i + 1, len(items))
    records: dict[str, dict[str, Any]] = {it.id: {"id": it.id, "seed": seed + i, "prompt": it.prompt}
                                          for i, it in enumerate(items)}
    result: dict[str, Any] = {"use_thoughts": thoughts, "frame_rate": float(pipe.frame_rate),
                              "codebooks": int(pipe.lm.config.num_codebooks)}

    # 1. plan adherence, per condition
    plan: dict[str, Any] = {}
    if thoughts:
        texts = tag_texts(pipe.embedder)
        for cond in CONDITIONS:
            ids = list(gens[cond])
            if not ids:
                continue
            audio_vecs = [reanalyse(gens[cond][k].audio, rate, pipe.embedder, pipe.tokenizer) for k in ids]
            matched: list[PlanComparison] = []
            for k, vecs in zip(ids, audio_vecs, strict=True):
                comp = compare_plan(gens[cond][k].plan, vecs, pipe.tokenizer, texts)
                matched.append(comp)
                records[k][f"plan_cosine[{cond}]"] = float(np.mean(comp.cosine))
            shuffled = [compare_plan(gens[cond][ids[j]].plan, audio_vecs[i], pipe.tokenizer, texts)
                        for i, j in enumerate(_shift(len(ids)))]
            plan[cond] = summarise_plans(matched, shuffled)
    result["plan_adherence"] = plan or None

    # 2. reference: CLAP cosine of output and reference, paired with / without it
    with_ref = [k for k in gens["text"] if k in ref_vectors]
    vec = {c: {k: clip_vector(embedder, g.audio, rate) for k, g in gens[c].items()} for c in CONDITIONS}
    cos_without = [float(vec["text"][k] @ ref_vectors[k]) for k in with_ref]
    paired = [k for k in with_ref if k in vec["text+ref"]]
    cos_with = [float(vec["text+ref"][k] @ ref_vectors[k]) for k in paired]
    diffs = [float(vec["text+ref"][k] @ ref_vectors[k] - vec["text"][k] @ ref_vectors[k]) for k in paired]
    floor = [float(vec["text+ref"][k] @ ref_vectors[paired[j]]) for k, j in zip(paired, _shift(len(paired)))]
    floor_text = [float(vec["text"][k] @ ref_vectors[with_ref[j]]) for k, j in zip(with_ref, _shift(len(with_ref)))]
    for k in with_ref:
        records[k]["ref_cosine[text]"] = float(vec["text"][k] @ ref_vectors[k])
        if k in vec["text+ref"]:
            records[k]["ref_cosine[text+ref]"] = float(vec["text+ref"][k] @ ref_vectors[k])
    result["reference"] = {
        "with_ref": _stats(cos_with), "without_ref": _stats(cos_without),
        "paired_difference": {**_stats(diffs), "with_ref_higher": int(sum(d > 0 for d in diffs))},
        "other_item_ref_floor": {"text+ref": _stats(floor), "text": _stats(floor_text)},
    }
    # 2b. the same question one step earlier: is the *plan* closer to the reference with it?
    # (the mean dequantised plan embedding vs the reference's mean window embedding)
    plan_ref: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    both = [k for k in ref_thought_vecs if k in gens["text"] and k in gens["text+ref"]]
    for k in both:
        for cond in CONDITIONS:
            mean_plan = torch.nn.functional.normalize(plan_vectors(gens[cond][k].plan, pipe.tokenizer).mean(0), dim=-1)
            value = float(mean_plan @ ref_thought_vecs[k])
            plan_ref[cond].append(value)
            records[k][f"plan_ref_cosine[{cond}]"] = value
    if both:
        pdiff = [a - b for a, b in zip(plan_ref["text+ref"], plan_ref["text"], strict=True)]
        result["reference"]["plan"] = {
            "with_ref": _stats(plan_ref["text+ref"]), "without_ref": _stats(plan_ref["text"]),
            "paired_difference": {**_stats(pdiff), "with_ref_higher": int(sum(d > 0 for d in pdiff))}}

    # 3. copying: longest run of codes shared with the reference's codes
    runs: dict[str, dict[str, list[SharedRun]]] = {c: {"all": [], "cb0": []} for c in CONDITIONS}
    for cond in CONDITIONS:
        for k, g in gens[cond].items():
            if k not in ref_codes:
                continue
            found = copy_runs(g.codes, ref_codes[k], pipe.frame_rate)
            for which, run in found.items():
                runs[cond][which].append(run)
                records[k][f"copy_run_frames[{cond},{which}]"] = run.frames
    result["copying"] = {c: {w: summarise_runs(r) for w, r in v.items()} for c, v in runs.items()}

    seconds = [g.seconds for c in CONDITIONS for g in gens[c].values()]
    result["timing"] = {"generations": len(seconds), "mean_s_per_generation": float(np.mean(seconds)),
                        "total_s": float(np.sum(seconds)), "audio_s_per_generation": duration}
    result["items"] = list(records.values())
    return result


def override_sampling(params: Any, overrides: dict[str, float]) -> Any:
    """A copy of SamplingParams `params` with `overrides`; an unknown field is a ConfigError."""
    known = {f.name for f in dataclasses.fields(params)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown sampling field(s) {unknown}; known: {sorted(known)}")
    return dataclasses.replace(params, **overrides)


def parse_sampling(pairs: Sequence[str]) -> dict[str, float]:
    """["plan_cfg=2", "top_k=50"] -> {"plan_cfg": 2.0, "top_k": 50}: ints stay ints."""
    out: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not key.strip() or math.isnan(number):
            raise ConfigError(f"--sampling takes FIELD=NUMBER, got {pair!r}")
        out[key.strip()] = int(number) if number.is_integer() and "." not in value else number
    return out


def _load_pipeline(path: str | os.PathLike[str]) -> Any:
    from musigen.musicot.pipeline import MusiCoTPipeline

    return MusiCoTPipeline.from_pretrained(path)


def run_musicot_eval(model: str | os.PathLike[str], set_dir: str | os.PathLike[str],
                     out_dir: str | os.PathLike[str], compare: str | os.PathLike[str] | None = None,
                     n: int | None = None, duration: float | None = None, seed: int = 0,
                     clap: str = "pipeline", prompt: str | None = None,
                     sampling: dict[str, float] | None = None) -> dict[str, Any]:
    """Run the measurements for `model` (and `compare`) and write metrics.json + report.md.

    `prompt` replaces every item's caption (e.g. "music"): with a caption that names no
    instruments or genre, the style reference is the only source of style, which is how to
    see whether it steers at all. `sampling` overrides fields of every model's default
    SamplingParams (e.g. {"plan_cfg": 2.0}), so settings compare without editing folders.
    """
    eval_set = load_set(resolve_set(set_dir, "gen"))
    if eval_set.kind != "gen":
        raise DataError(f"{eval_set.root} is a {eval_set.kind!r} set; MusiCoT evaluation needs a generation set")
    if n is not None and n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    items: list[GenItem] = eval_set.items[:n] if n else list(eval_set.items)
    if prompt is not None:
        if not prompt.strip():
            raise ConfigError("--prompt must be a non-empty text")
        items = [dataclasses.replace(it, prompt=prompt) for it in items]
    from musigen.musicot.sampling import SamplingParams

    override_sampling(SamplingParams(), sampling or {})  # a bad field fails before any loading
    names = [Path(model).name] + ([Path(compare).name] if compare else [])
    if len(names) == 2 and names[0] == names[1]:
        names[1] += " (compare)"
    pipes = [_load_pipeline(model)] + ([_load_pipeline(compare)] if compare else [])
    for pipe in pipes:
        pipe.config.sampling = override_sampling(pipe.config.sampling, sampling or {})
    dur = pipes[0].check_duration(duration if duration is not None else float(eval_set.info["duration"]))
    if clap == "pipeline":
        embedder = pipes[0].embedder
    else:
        from musigen.embedders.clap import load_embedder

        embedder = load_embedder(clap).eval()
    name = embedder_name(embedder)
    sr = eval_set.sample_rate
    ref_vectors = {it.id: clip_vector(embedder, eval_set.audio(it.ref), sr) for it in items if it.ref}
    models = {}
    for name_, pipe in zip(names, pipes, strict=True):
        log.info("evaluating %s on %d items", name_, len(items))
        models[name_] = evaluate_model(pipe, eval_set, items, dur, seed, embedder, ref_vectors)
    metrics = {
        "kind": "musicot", "set": str(eval_set.root), "n_items": len(items),
        "n_with_ref": len(ref_vectors), "duration": dur, "seed": seed,
        "seeding": "item i uses seed + i for every condition and every model (paired comparisons)",
        "clap_embedder": name, "plan_embedder": "each model's own embedder and thought tokenizer",
        "prompt_override": prompt, "sampling_override": dict(sampling or {}),
        "sampling": [dataclasses.asdict(p.config.sampling) for p in pipes],
        "model_order": list(models), "models": models,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    write_text(out / "report.md", render_report(metrics))
    return metrics


def report_tables(metrics: dict[str, Any]) -> list[Table]:
    """Plan adherence, reference and copying tables, one row per (model, condition)."""
    models: dict[str, Any] = metrics["models"]
    plan_rows, ref_rows, copy_rows, plan_ref_rows = [], [], [], []
    for name, m in models.items():
        for cond in CONDITIONS:
            p = (m["plan_adherence"] or {}).get(cond)
            if p is not None:
                a, b = p["matched"], p["shuffled"]
                plan_rows.append([name, cond, a["items"], a["segments"], a["cosine"], b["cosine"],
                                  p["quantisation_ceiling"], a["instrument_top1_agreement"],
                                  b["instrument_top1_agreement"], a["genre_top1_agreement"],
                                  b["genre_top1_agreement"], a["code0_agreement"], b["code0_agreement"]])
            c = m["copying"][cond]
            if c["all"]["n"]:
                copy_rows.append([name, cond, c["all"]["n"], c["all"]["max_frames"], c["all"]["max_s"],
                                  c["all"]["median_frames"], c["cb0"]["max_frames"], c["cb0"]["max_s"],
                                  c["cb0"]["median_frames"]])
        if not m["plan_adherence"]:
            plan_rows.append([name, "n/a (no plan)"] + [None] * 11)
        r = m["reference"]
        ref_rows.append([name, r["without_ref"]["n"], r["with_ref"]["mean"], r["without_ref"]["mean"],
                         r["paired_difference"]["mean"], r["paired_difference"]["stderr"],
                         f"{r['paired_difference']['with_ref_higher']}/{r['paired_difference']['n']}",
                         r["other_item_ref_floor"]["text+ref"]["mean"], r["other_item_ref_floor"]["text"]["mean"]])
        if r.get("plan"):
            p = r["plan"]
            plan_ref_rows.append([name, p["with_ref"]["n"], p["with_ref"]["mean"], p["without_ref"]["mean"],
                                  p["paired_difference"]["mean"], p["paired_difference"]["stderr"],
                                  f"{p['paired_difference']['with_ref_higher']}/{p['paired_difference']['n']}"])
    tables = [
        Table("Plan adherence (re-analysed output vs its plan; shuffled = another item's plan)",
              ["model", "condition", "items", "segments", "cosine", "cosine shuffled", "quant. ceiling",
               "instr. top-1 agree", "instr. shuffled", "genre top-1 agree", "genre shuffled",
               "code0 agree", "code0 shuffled"], plan_rows),
        Table(f"Reference: CLAP cosine of output and reference ({metrics['clap_embedder']})",
              ["model", "n", "with ref", "without ref", "paired diff", "diff stderr", "with > without",
               "floor: other ref (with)", "floor: other ref (without)"], ref_rows),
        Table("Copying: longest run of codes shared with the reference (text = no reference given: floor)",
              ["model", "condition", "n", "max frames (all K)", "max s (all K)", "median frames (all K)",
               "max frames (cb0)", "max s (cb0)", "median frames (cb0)"], copy_rows),
    ]
    if plan_ref_rows:
        tables.insert(2, Table("Reference, one step earlier: cosine of the plan (mean dequantised thought) and "
                               "the reference (mean window embedding), the model's own embedder",
                               ["model", "n", "with ref", "without ref", "paired diff", "diff stderr",
                                "with > without"], plan_ref_rows))
    return tables


def render_report(metrics: dict[str, Any]) -> str:
    lines = [
        f"# MusiCoT evaluation: {', '.join(metrics['model_order'])}", "",
        (f"- set: {metrics['set']} ({metrics['n_items']} prompts, {metrics['n_with_ref']} with a style "
         f"reference), {metrics['duration']:g} s per piece, seed {metrics['seed']}; {metrics['seeding']}"),
        (f"- CLAP embedder for the reference cosine: {metrics['clap_embedder']}; plan adherence uses "
         f"{metrics['plan_embedder']} over the plan's windows"),
        ("- plan cosine: the plan's dequantised thought embedding vs the output's raw window embedding; "
         "quant. ceiling: the output's embedding vs its own RVQ reconstruction (the best a plan can score)"),
        "- copying: any-offset longest run of identical frames (all K codebooks, and codebook 0 alone)",
    ]
    if metrics.get("prompt_override"):
        lines.append(f"- every item's caption replaced by {metrics['prompt_override']!r} (the reference "
                     "is the only source of style)")
    for name, m in metrics["models"].items():
        t = m["timing"]
        lines.append(f"- timing, {name}: {t['mean_s_per_generation']:.1f} s per {t['audio_s_per_generation']:g} s "
                     f"generation ({t['generations']} generations, {t['total_s']:.0f} s in all)")
    lines.append("")
    return "\n".join(lines) + "\n" + "\n".join(markdown_table(t) for t in report_tables(metrics))


def run_from_args(args: argparse.Namespace) -> int:
    """`musigen eval musicot`: measure, write metrics.json + report.md, print the report."""
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    metrics = run_musicot_eval(args.model, args.set_dir, args.out, compare=args.compare, n=args.n,
                               prompt=args.prompt, sampling=parse_sampling(args.sampling),
                               duration=args.duration, seed=args.seed, clap=args.clap)
    print(render_report(metrics))
    print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'report.md'}")
    return 0
