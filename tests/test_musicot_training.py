"""MusiCoT pre-encoding, training module, data module and the debug recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from musigen.encode.musicot_shards import PreencodeConfig, preencode
from musigen.errors import CheckpointError, ConfigError, DataError
from musigen.musicot.long_form import segments_for_span
from musigen.training.musicot_datamodule import (
    MusiCoTShards,
    PhaseBatchSampler,
    collate,
)
from musigen.training.musicot_module import MusiCoTModule

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "musicot" / "debug.yaml"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musicot_tiny import preencoded_corpus

    return preencoded_corpus(tmp_path_factory.mktemp("musicot_data"), n=6)


def test_preencode_index_and_resume(data_dir: Path) -> None:
    index = json.loads((data_dir / "index.json").read_text())
    assert len(index["entries"]) == 6 and index["num_codebooks"] == 2
    assert sorted({e["shard"] for e in index["entries"]}) == [
        "shard_00000.safetensors", "shard_00001.safetensors"]
    e = index["entries"][0]
    assert e["segments"] == 3 and e["frames"] == 400  # 8 s: the 0.5 s tail < window/4 is dropped
    fid = index["fidelity"]
    assert len(fid) == 2 and fid[1] >= fid[0] > 0  # more levels, closer to the CLAP vector
    before = (data_dir / "shard_00000.safetensors").stat().st_mtime_ns
    preencode(PreencodeConfig(**index["config"]), progress=False)  # a rerun skips finished shards
    assert (data_dir / "shard_00000.safetensors").stat().st_mtime_ns == before


def test_preencode_at_a_lower_bandwidth_keeps_the_first_codebooks(data_dir: Path, tmp_path: Path) -> None:
    """`num_codebooks` stores the first K codes of the stack (what an LM of K codebooks models)."""
    from safetensors.torch import load_file

    index = json.loads((data_dir / "index.json").read_text())
    cfg = PreencodeConfig(**(index["config"] | {"out": str(tmp_path / "k1"), "num_codebooks": 1,
                                                 "limit": 2, "tokenizer": str(data_dir / "thoughts")}))
    out = preencode(cfg, progress=False)
    low = json.loads((out / "index.json").read_text())
    assert low["num_codebooks"] == 1
    full = load_file(str(data_dir / "shard_00000.safetensors"))["p000000.codes"]
    first = load_file(str(out / "shard_00000.safetensors"))["p000000.codes"]
    assert first.shape == (1, full.shape[-1]) and torch.equal(first[0], full[0])


def test_examples_follow_the_span_rule_and_reference_is_elsewhere(data_dir: Path) -> None:
    ds = MusiCoTShards(data_dir, crop_s=2.5, ref_segments=1, ref_levels=1, seed=0)
    assert ds.plan_length(True) == 1 and ds.plan_length(False) == 2
    for aligned in (True, False):
        for i in range(len(ds)):
            item = ds[(i, aligned)]
            assert item["codes"].shape == (2, ds.crop)
            assert item["plan"].shape == (ds.plan_length(aligned) * 2,)
            assert item["ref"].shape == (1,) and int(item["ref"][0]) < 8  # coarse level only
    # the reference is never one of the plan's own segments
    _, thoughts, _, _ = ds.items[0]
    for _ in range(10):
        item = ds[(0, False)]
        plan_codes = ds.layout.unflatten(item["plan"])
        s0 = next(s for s in range(thoughts.shape[0] - 1)
                  if torch.equal(thoughts[s : s + 2], plan_codes))
        ref_seg = [s for s in range(thoughts.shape[0]) if not s0 <= s < s0 + 2]
        assert int(item["ref"][0]) in {int(thoughts[s, 0]) for s in ref_seg}
    sampler = PhaseBatchSampler(len(ds), 4, seed=0)
    batch = collate([ds[j] for j in next(iter(sampler))])
    assert batch["text_states"].shape[0] == 4 and batch["text_mask"].any(1).all()
    assert segments_for_span(0, ds.crop, ds.segment_frames, 4) == (0, 1)


def _fixed_batch(data_dir: Path) -> dict[str, torch.Tensor]:
    ds = MusiCoTShards(data_dir, crop_s=2.5, ref_segments=1, ref_levels=1, seed=7)
    return collate([ds[(i, False)] for i in range(len(ds))])


@torch.no_grad()
def _eval_loss(module: MusiCoTModule, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    module.eval()
    out = module._loss(batch, train=False)
    return float(out.audio_loss), float(out.thought_loss)


def test_no_cot_ablation_has_no_plan_loss(data_dir: Path) -> None:
    batch = _fixed_batch(data_dir)
    torch.manual_seed(0)
    cot = MusiCoTModule(str(data_dir))
    torch.manual_seed(0)
    plain = MusiCoTModule(str(data_dir), no_cot=True)
    a_cot, t_cot = _eval_loss(cot, batch)
    a_plain, t_plain = _eval_loss(plain, batch)
    assert t_cot > 0 and t_plain == 0.0
    assert a_cot != a_plain  # the plan tokens are in the context of the audio


def test_plan_dropout_drops_plans_in_training_only(data_dir: Path) -> None:
    """plan_dropout=1: every training row loses its plan (no thought loss, another audio
    loss); validation never drops, so it scores as the plain module does."""
    batch = _fixed_batch(data_dir)
    torch.manual_seed(0)
    plain = MusiCoTModule(str(data_dir), text_dropout=0.0, ref_dropout=0.0)
    torch.manual_seed(0)
    dropping = MusiCoTModule(str(data_dir), text_dropout=0.0, ref_dropout=0.0, plan_dropout=1.0)
    assert _eval_loss(plain, batch) == _eval_loss(dropping, batch)
    with torch.no_grad():
        kept, dropped = plain._loss(batch, train=True), dropping._loss(batch, train=True)
    assert float(dropped.thought_loss) == 0.0 < float(kept.thought_loss)
    assert float(dropped.audio_loss) != float(kept.audio_loss)
    with pytest.raises(ConfigError, match="plan_dropout"):
        MusiCoTModule(str(data_dir), plan_dropout=1.5)


def test_plan_aligned_module_reads_the_batch_bookkeeping(data_dir: Path) -> None:
    """The data carries each excerpt's offset into its plan; an aligned LM starts (zero
    projection) with the plain LM's losses and trains its projection."""
    batch = _fixed_batch(data_dir)
    assert batch["plan_offset"].shape == (batch["codes"].shape[0],)
    assert batch["token_segments"].shape == batch["plan"].shape
    torch.manual_seed(0)
    plain = MusiCoTModule(str(data_dir))
    torch.manual_seed(0)
    aligned = MusiCoTModule(str(data_dir), plan_aligned=True)
    assert _eval_loss(plain, batch) == pytest.approx(_eval_loss(aligned, batch), abs=1e-5)
    aligned.train()
    aligned._loss(batch, train=True).loss.backward()
    assert float(aligned.lm.plan_proj.weight.grad.abs().sum()) > 0


def test_debug_recipe_lowers_the_loss_and_exports(data_dir: Path, tmp_path: Path) -> None:
    from musigen.musicot.pipeline import MusiCoTPipeline
    from musigen.training.cli import main

    batch = _fixed_batch(data_dir)
    torch.manual_seed(0)
    before = _eval_loss(MusiCoTModule(str(data_dir), preset="debug", max_seq_len=512), batch)
    export = tmp_path / "export"
    cli = main(["fit", "--config", str(RECIPE),
                f"--model.init_args.data_dir={data_dir}", f"--data.init_args.train_dir={data_dir}",
                f"--model.init_args.export_dir={export}",
                f"--trainer.default_root_dir={tmp_path / 'runs'}",
                "--data.init_args.ref_segments=3", "--data.init_args.ref_levels=2"])
    after = _eval_loss(cli.model, batch)
    assert after[0] < before[0] - 0.2 and after[1] < before[1]
    torch.set_num_threads(1)  # the CLI set it too; keep the fixture's promise
    pipe = MusiCoTPipeline.from_pretrained(export)
    out = pipe("a calm piano piece", duration=3.0, seed=0, progress=False)
    assert out.audio.shape == (1, 48000) and np.isfinite(out.audio).all()
    assert len(out.thoughts[0]) == pipe.tokenizer.num_segments(3.0) == 1  # 0.5 s tail dropped
    # inference takes the reference as the LM was trained on it (3 segments x 2 levels)
    assert (pipe.config.ref_levels, pipe.config.max_ref_segments) == (2, 3)

    # init_from: a fine-tune starts from the exported weights, not from random ones
    torch.manual_seed(1)
    tuned = MusiCoTModule(str(data_dir), preset="debug", max_seq_len=512, init_from=str(export))
    exported = pipe.lm.state_dict()
    for key, value in tuned.lm.state_dict().items():
        assert torch.allclose(value, exported[key].float()), key
    assert _eval_loss(tuned, batch)[0] < before[0] - 0.2
    # a plain export into a plan-aligned LM: the same weights, the new projection at zero
    grown = MusiCoTModule(str(data_dir), preset="debug", max_seq_len=512, init_from=str(export),
                          plan_aligned=True)
    assert float(grown.lm.plan_proj.weight.abs().sum()) == 0.0
    assert _eval_loss(grown, batch) == pytest.approx(_eval_loss(tuned, batch), abs=1e-5)
    with pytest.raises(ConfigError, match="init_from"):
        MusiCoTModule(str(data_dir), preset="demo", init_from=str(export))  # other sizes
    with pytest.raises(CheckpointError):
        MusiCoTModule(str(data_dir), preset="debug", init_from=str(tmp_path / "nowhere"))


def test_batch_sampler_shards_by_rank_with_equal_counts_and_shared_phases() -> None:
    full = list(PhaseBatchSampler(37, 4, seed=3))
    ranks = [list(PhaseBatchSampler(37, 4, seed=3, rank=r, num_replicas=3)) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) == 3  # 9 batches over 3 ranks
    seen = [i for r in ranks for batch in r for i, _ in batch]
    assert len(seen) == len(set(seen)) == 36  # disjoint
    # the ranks interleave the one-process batch list, phases included
    assert [b for r in range(3) for b in ranks[r]] == sorted(full[:9], key=lambda b: full.index(b) % 3)
    assert all(len({a for _, a in batch}) == 1 for batch in full)
    with pytest.raises(DataError):
        PhaseBatchSampler(37, 4, rank=3, num_replicas=3)
