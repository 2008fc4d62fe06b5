"""MusiCoT-specific measurements: copy runs, plan adherence, and the CLI end to end (tiny models)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from musicot_tiny import SR, tiny_pipeline, tone

from musigen.cli import main as musigen_main
from musigen.errors import ConfigError
from musigen.eval.metrics.copy_detection import copy_runs, longest_shared_run, summarise_runs
from musigen.eval.metrics.plan_adherence import compare_plan, summarise_plans, tag_texts
from musigen.eval.studies.musicot_eval import generate_one
from musigen.musicot.pipeline import MusiCoTPipeline


def main(argv: list[str]) -> int:
    """`musigen eval musicot ARGS`."""
    return musigen_main(["eval", "musicot", *argv])


@pytest.fixture(scope="module")
def pipe() -> MusiCoTPipeline:
    return tiny_pipeline()


def _codes(k: int, t: int, seed: int, size: int = 1024) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, size, (k, t))


def test_longest_run_of_a_copy_a_shifted_copy_and_unrelated_codes() -> None:
    a = _codes(4, 300, 0)
    whole = longest_shared_run(a, a, frame_rate=50.0)
    assert (whole.frames, whole.seconds, whole.out_start, whole.ref_start) == (300, 6.0, 0, 0)
    # a delayed copy is still a copy: found at its offset, as long as the overlap
    shifted = np.concatenate([_codes(4, 40, 1), a[:, :200]], axis=1)
    run = longest_shared_run(shifted, a, 50.0)
    assert (run.frames, run.out_start, run.ref_start) == (200, 40, 0)
    assert longest_shared_run(_codes(4, 300, 2), a, 50.0).frames <= 1  # unrelated: chance only
    # a 37-frame excerpt from the middle of the reference pasted into unrelated codes
    pasted = _codes(4, 300, 3)
    pasted[:, 100:137] = a[:, 250:287]
    run = longest_shared_run(pasted, a, 50.0)
    assert (run.frames, run.out_start, run.ref_start) == (37, 100, 250)


def test_codebook0_run_is_looser_than_all_codebooks() -> None:
    a = _codes(4, 120, 4, size=8)
    b = a.copy()
    b[1:, 60] = (b[1:, 60] + 1) % 8  # frame 60 differs in the fine codebooks only
    runs = copy_runs(torch.as_tensor(b)[None], torch.as_tensor(a)[None], frame_rate=50.0)
    assert runs["cb0"].frames == 120 and runs["all"].frames == 60
    summary = summarise_runs([runs["all"], runs["cb0"]])
    assert summary["max_frames"] == 120 and summary["median_frames"] == 90 and summary["max_s"] == 2.4
    with pytest.raises(ConfigError):
        longest_shared_run(a, a[:3], 50.0)


def test_plan_against_itself_is_perfect_and_beats_a_shuffled_plan(pipe: MusiCoTPipeline) -> None:
    tok, texts = pipe.tokenizer, tag_texts(pipe.embedder)
    clips = [tone(3.0, f, seed=i) for i, f in enumerate((110.0, 440.0, 880.0))]
    vecs = [pipe.embedder.embed_audio(c, SR, window_s=1.0) for c in clips]
    plans = [tok.encode(v) for v in vecs]
    self_match = compare_plan(plans[0], tok.decode(plans[0], normalize=True), tok, texts)
    assert self_match.cosine == pytest.approx([1.0] * 3, abs=1e-5)
    assert all(self_match.code_agree) and all(all(v) for v in self_match.tag_agree.values())
    # the audio each plan was encoded from matches it better than another clip's plan
    matched = [compare_plan(p, v, tok, texts) for p, v in zip(plans, vecs, strict=True)]
    shuffled = [compare_plan(plans[(i + 1) % 3], vecs[i], tok, texts) for i in range(3)]
    summary = summarise_plans(matched, shuffled)
    assert summary["matched"]["segments"] == 9
    assert summary["matched"]["cosine"] == pytest.approx(summary["quantisation_ceiling"], abs=1e-5)
    assert summary["matched"]["code0_agreement"] == 1.0
    assert summary["matched"]["cosine"] > summary["shuffled"]["cosine"]


def test_generate_one_keeps_the_decoded_codes(pipe: MusiCoTPipeline) -> None:
    g = generate_one(pipe, "calm piano", duration=0.6, seed=5)
    assert g.codes.shape == (pipe.codec.num_codebooks, round(0.6 * pipe.frame_rate))
    redecoded = pipe.codec.decode(g.codes[None], length=g.audio.shape[-1]).float().mean(1)[0].numpy()
    np.testing.assert_allclose(redecoded, g.audio, atol=1e-6)  # these are the codes behind the audio
    assert len(g.plan) == 1 and pipe.codec.__class__.__name__ == "Codec"  # the codec is put back
    assert longest_shared_run(g.codes, g.codes, pipe.frame_rate).frames == g.codes.shape[-1]


@pytest.fixture(scope="module")
def gen_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sets")
    assert musigen_main(["eval", "make-sets", "--out", str(root), "--n-gen", "2", "--n-edit", "1",
                         "--duration", "2", "--fluidsynth", "no", "--no-progress"]) == 0
    return root / "gen"


def test_cli_end_to_end_with_a_no_cot_comparison(pipe: MusiCoTPipeline, gen_set: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cot = pipe.save_pretrained(tmp_path / "cot")
    nocot = shutil.copytree(cot, tmp_path / "nocot")  # the same components, marked as the no-CoT ablation
    config = json.loads((nocot / "pipeline.json").read_text())
    (nocot / "pipeline.json").write_text(json.dumps({**config, "use_thoughts": False}))
    out = tmp_path / "report"
    assert main(["--model", str(cot), "--compare", str(nocot), "--set", str(gen_set), "--out", str(out),
                 "--duration", "1.5", "--seed", "7"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_items"] == m["n_with_ref"] == 2 and m["model_order"] == ["cot", "nocot"]
    assert m["clap_embedder"].startswith("musigen_clap:")
    cot_m, nocot_m = m["models"]["cot"], m["models"]["nocot"]
    assert [r["seed"] for r in cot_m["items"]] == [7, 8] == [r["seed"] for r in nocot_m["items"]]
    plan = cot_m["plan_adherence"]
    for cond in ("text", "text+ref"):
        assert plan[cond]["matched"]["items"] == plan[cond]["shuffled"]["items"] == 2
        assert plan[cond]["matched"]["segments"] == 4  # 1.5 s in 1 s windows -> 2 per item
        assert -1 <= plan[cond]["matched"]["cosine"] <= plan[cond]["quantisation_ceiling"] + 1e-6 <= 1 + 1e-6
    assert nocot_m["plan_adherence"] is None  # the ablation has no plan
    ref = cot_m["reference"]
    assert ref["with_ref"]["n"] == ref["without_ref"]["n"] == ref["paired_difference"]["n"] == 2
    assert ref["paired_difference"]["mean"] == pytest.approx(ref["with_ref"]["mean"] - ref["without_ref"]["mean"])
    assert nocot_m["reference"]["with_ref"]["n"] == 0 and nocot_m["reference"]["without_ref"]["n"] == 2
    plan_ref = ref["plan"]  # the plan's own pull toward the reference, paired
    assert plan_ref["with_ref"]["n"] == plan_ref["paired_difference"]["n"] == 2
    assert plan_ref["paired_difference"]["mean"] == pytest.approx(
        plan_ref["with_ref"]["mean"] - plan_ref["without_ref"]["mean"])
    assert -1 <= plan_ref["with_ref"]["mean"] <= 1 and "plan" not in nocot_m["reference"]
    frames = round(1.5 * cot_m["frame_rate"])
    for model, conds in ((cot_m, ("text", "text+ref")), (nocot_m, ("text",))):
        for cond in conds:
            c = model["copying"][cond]
            assert c["all"]["n"] == 2 and 0 <= c["all"]["max_frames"] <= c["cb0"]["max_frames"] <= frames
    assert nocot_m["copying"]["text+ref"]["all"]["n"] == 0
    table = (out / "report.md").read_text()
    assert "| cot | text+ref |" in table and "| nocot | n/a (no plan) |" in table and "Copying" in table
    assert "one step earlier" in table
    assert "wrote" in capsys.readouterr().out
    # the same seeds give the same figures: the measurement is reproducible
    again = tmp_path / "again"
    assert main(["--model", str(cot), "--set", str(gen_set), "--out", str(again), "--duration", "1.5",
                 "--seed", "7", "--n", "1"]) == 0
    first = json.loads((again / "metrics.json").read_text())["models"]["cot"]["items"][0]
    assert first == cot_m["items"][0]
    # reference-only steering: every caption replaced by a style-free one
    generic = tmp_path / "generic"
    assert main(["--model", str(cot), "--set", str(gen_set), "--out", str(generic), "--duration", "1.5",
                 "--seed", "7", "--n", "1", "--prompt", "music"]) == 0
    g = json.loads((generic / "metrics.json").read_text())
    assert g["prompt_override"] == "music" and g["models"]["cot"]["items"][0]["prompt"] == "music"
    assert "replaced by 'music'" in (generic / "report.md").read_text()
    assert main(["--model", str(cot), "--set", str(gen_set), "--out", str(generic), "--prompt", " "]) == 2
    # sampling overrides reach the pipeline and change the output under the same seed
    guided = tmp_path / "guided"
    assert main(["--model", str(cot), "--set", str(gen_set), "--out", str(guided), "--duration", "1.5",
                 "--seed", "7", "--n", "1", "--sampling", "audio_cfg=9", "--sampling", "top_k=3"]) == 0
    gm = json.loads((guided / "metrics.json").read_text())
    assert gm["sampling_override"] == {"audio_cfg": 9, "top_k": 3}
    assert gm["sampling"][0]["audio_cfg"] == 9 and gm["sampling"][0]["top_k"] == 3
    assert gm["models"]["cot"]["items"][0] != first


def test_cli_bad_input_is_one_line(tmp_path: Path, gen_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", str(tmp_path / "nope"), "--set", str(gen_set), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope" in err and "\n" not in err
    assert main(["--model", str(tmp_path), "--set", str(tmp_path / "noset"), "--out", str(tmp_path / "o")]) == 2
    for bad in ("plan_cfg", "plan_cfg=x", "nonsense=1", "plan_cfg=-1"):
        capsys.readouterr()
        assert main(["--model", str(tmp_path), "--set", str(gen_set), "--out", str(tmp_path / "o"),
                     "--sampling", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("musigen: error:") and "\n" not in err
        assert bad.split("=")[0] in err or "FIELD=NUMBER" in err  # names the bad setting
