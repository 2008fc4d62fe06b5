"""Thought tokenizer: the RVQ learns the embedding space; flattening and windows are exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from musigen.errors import CheckpointError, ConfigError
from musigen.musicot.thoughts import ThoughtConfig, ThoughtLayout, ThoughtTokenizer, kmeans

D = 32


def compositional(n: int, seed: int) -> torch.Tensor:
    """Unit vectors built from three nested factors, like a genre + instrument + mood mix."""
    g = torch.Generator().manual_seed(1234)  # the factors are shared by every split
    a, b, c = (torch.randn(12, D, generator=g) * s for s in (1.0, 0.5, 0.25))
    g = torch.Generator().manual_seed(seed)
    i, j, k = (torch.randint(12, (n,), generator=g) for _ in range(3))
    x = a[i] + b[j] + c[k] + 0.02 * torch.randn(n, D, generator=g)
    return torch.nn.functional.normalize(x, dim=-1)


@pytest.fixture(scope="module")
def fitted() -> ThoughtTokenizer:
    config = ThoughtConfig(
        embed_dim=D, levels=4, codebook_size=24, kmeans_iters=20, refine_passes=6
    )
    return ThoughtTokenizer.fit(compositional(1500, seed=1), config)


def test_more_levels_give_higher_fidelity(fitted: ThoughtTokenizer) -> None:
    fid = fitted.fidelity(compositional(500, seed=2))  # held out
    assert len(fid) == 4
    assert all(later > earlier for earlier, later in zip(fid, fid[1:]))
    assert fid[-1] > fid[0] + 0.05
    assert fid[-1] > 0.97


def test_trained_rvq_beats_random_codebooks(fitted: ThoughtTokenizer) -> None:
    held_out = compositional(500, seed=3)
    trained = fitted.fidelity(held_out)
    random = ThoughtTokenizer(fitted.config).fidelity(held_out)
    assert all(t > r + 0.1 for t, r in zip(trained, random))


def test_refinement_never_hurts_training_error() -> None:
    x = compositional(800, seed=4)
    base = dict(embed_dim=D, levels=3, codebook_size=16, kmeans_iters=5)
    plain = ThoughtTokenizer.fit(x, ThoughtConfig(**base, refine_passes=0))
    refined = ThoughtTokenizer.fit(x, ThoughtConfig(**base, refine_passes=5))
    assert refined.rvq.mse(x) <= plain.rvq.mse(x)


def test_kmeans_finds_separated_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centers = torch.eye(D)[:5] * 10
    x = centers.repeat_interleave(40, 0) + 0.1 * torch.randn(200, D, generator=g)
    found = kmeans(x, 5, iters=10, generator=g)
    nearest = torch.cdist(centers, found).min(-1).values
    assert nearest.max() < 0.5


def test_coarse_levels_are_a_prefix_and_decode_sums_levels(fitted: ThoughtTokenizer) -> None:
    x = compositional(10, seed=5)
    full = fitted.encode(x)
    assert full.shape == (10, 4)
    assert torch.equal(fitted.encode(x, num_levels=2), full[:, :2])
    books = fitted.rvq.codebooks
    by_hand = sum(books[level][full[:, level]] for level in range(4))
    assert torch.allclose(fitted.decode(full), by_hand, atol=1e-6)


@pytest.mark.parametrize("order", ["coarse_to_fine", "segment_major"])
def test_flatten_round_trip_and_order(order: str) -> None:
    layout = ThoughtLayout(levels=3, codebook_size=10, order=order)
    codes = torch.randint(0, 10, (2, 5, 3))
    flat = layout.flatten(codes)
    assert flat.shape == (2, 15)
    assert torch.equal(layout.unflatten(flat), codes)
    levels = layout.level_ids(5)
    assert torch.equal(flat // 10, levels.expand(2, -1))  # ids carry their level
    if order == "coarse_to_fine":  # all level-0 tokens come first: a prefix is a coarser plan
        assert levels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    else:
        assert levels.tolist() == [0, 1, 2] * 5
    # a reference may use only the coarsest levels
    assert torch.equal(
        layout.unflatten(layout.flatten(codes[..., :1]), num_levels=1), codes[..., :1]
    )


def test_windows_cover_the_piece() -> None:
    tok = ThoughtTokenizer(ThoughtConfig(embed_dim=D, window_s=10.0, hop_s=10.0, min_last_s=1.0))
    assert tok.window_bounds(250, 10) == [(0, 100), (100, 200), (200, 250)]
    assert tok.num_segments(25.0) == 3
    assert tok.num_segments(20.5) == 2  # a 0.5 s tail is too short to be its own thought
    assert tok.num_segments(3.0) == 1
    overlap = ThoughtTokenizer(ThoughtConfig(embed_dim=D, window_s=4.0, hop_s=2.0))
    assert overlap.window_bounds(80, 10) == [(0, 40), (20, 60), (40, 80)]


def test_save_and_load_round_trip(fitted: ThoughtTokenizer, tmp_path: Path) -> None:
    fitted.save_pretrained(tmp_path / "tok")
    loaded = ThoughtTokenizer.from_pretrained(tmp_path / "tok")
    x = compositional(20, seed=6)
    assert torch.equal(loaded.encode(x), fitted.encode(x))
    assert loaded.config == fitted.config


def test_bad_inputs_and_checkpoints(fitted: ThoughtTokenizer, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        ThoughtTokenizer.from_pretrained(tmp_path / "missing")
    bad = compositional(3, seed=7)
    bad[1, 0] = float("nan")
    with pytest.raises(ConfigError):
        fitted.encode(bad)
    with pytest.raises(ConfigError):
        fitted.encode(torch.randn(3, D + 1))
    with pytest.raises(ConfigError):
        fitted.decode(torch.full((2, 4), 24))
    with pytest.raises(ConfigError):
        ThoughtConfig(embed_dim=D, order="random")
    small = ThoughtTokenizer(ThoughtConfig(embed_dim=D, codebook_size=8))
    small.save_pretrained(tmp_path / "small")
    import json

    cfg_path = tmp_path / "small" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["codebook_size"] = 16
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError):
        ThoughtTokenizer.from_pretrained(tmp_path / "small")
