"""Pre-encoded MusiCoT examples as a torch Dataset (written by :mod:`musigen.encode.musicot_shards`).

One example is an excerpt of `crop_s` seconds of a piece: its audio codes, the plan
segments that overlap it (:func:`segments_for_span`, the rule long-form generation uses),
the caption's text states and a *reference*: the coarse thoughts of `ref_segments` other
segments of the same piece, so the model learns style and not copying.

Plans over an excerpt have one of two lengths: ``crop/segment`` when the excerpt starts on a
segment boundary (a piece's first window) or one more when it does not (later long-form
windows). A batch sampler picks one phase per batch, so both are trained and rows agree.

Why not in `training/`: the held-out studies (`musigen eval reference-use`) read the same
examples, and eval and training do not import each other.  Nothing here knows Lightning.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from musigen.encode.index import read_index
from musigen.encode.musicot_shards import FORMAT
from musigen.errors import DataError
from musigen.musicot.long_form import segments_for_span
from musigen.musicot.thoughts import ThoughtLayout


class PhaseBatchSampler(Sampler[list[tuple[int, bool]]]):
    """Shuffled batches of (index, aligned) with one shared phase per batch.

    Under data parallelism every rank draws the same shuffled batch list (same seed and
    epoch) and keeps every `num_replicas`-th batch from its `rank`: ranks see disjoint data
    and the same number of batches, so no rank waits at a collective for another.
    """

    def __init__(self, size: int, batch_size: int, seed: int = 0, rank: int = 0,
                 num_replicas: int = 1) -> None:
        if not 0 <= rank < num_replicas:
            raise DataError(f"rank {rank} is not in 0..{num_replicas - 1}")
        self.size, self.batch_size, self.seed, self.epoch = size, batch_size, seed, 0
        self.rank, self.num_replicas = rank, num_replicas

    def _all_batches(self) -> int:
        return max(self.num_replicas, self.size // self.batch_size)

    def __len__(self) -> int:
        return self._all_batches() // self.num_replicas

    def __iter__(self):
        rng = random.Random(self.seed + self.epoch)
        self.epoch += 1
        n = self._all_batches()
        reps = 1 + self.batch_size // max(self.size, 1)  # (the one-process order of old runs)
        while reps * self.size < n * self.batch_size:
            reps += 1
        order = list(range(self.size)) * reps
        rng.shuffle(order)
        for b in range(len(self) * self.num_replicas):
            aligned = rng.random() < 0.5  # drawn for every batch, so ranks stay in step
            if b % self.num_replicas == self.rank:
                yield [(i, aligned) for i in order[b * self.batch_size : (b + 1) * self.batch_size]]


class MusiCoTShards(Dataset):
    """Excerpts from a pre-encoded folder; every piece is held in memory (demo scale)."""

    def __init__(self, data_dir: str | Path, crop_s: float, ref_segments: int, ref_levels: int,
                 seed: int = 0) -> None:
        from safetensors.torch import load_file

        root = Path(data_dir)
        self.index = read_index(root, FORMAT)
        ix = self.index
        self.segment_frames = ix["segment_s"] * ix["frame_rate"]
        self.crop = round(crop_s * ix["frame_rate"])
        self.layout = ThoughtLayout(ix["thought_levels"], ix["thought_codebook_size"])
        self.ref_segments, self.ref_levels = ref_segments, ref_levels
        self.rng = random.Random(seed)
        shards: dict[str, dict[str, torch.Tensor]] = {}
        self.items = []
        for e in ix["entries"]:
            usable = min(e["frames"], int(e["segments"] * self.segment_frames))
            if usable < self.crop:
                continue  # shorter than one excerpt
            if e["shard"] not in shards:
                shards[e["shard"]] = load_file(str(root / e["shard"]))
            t = shards[e["shard"]]
            self.items.append((t[f"{e['key']}.codes"].long(), t[f"{e['key']}.thoughts"].long(),
                               t[f"{e['key']}.text"].float(), usable))
        if not self.items:
            raise DataError(f"no piece in {root} is longer than an excerpt of {crop_s} s")

    def __len__(self) -> int:
        return len(self.items)

    def plan_length(self, aligned: bool) -> int:
        n = segments_for_span(0, self.crop, self.segment_frames, 10**9)
        return n[1] - n[0] + (0 if aligned else 1)

    def __getitem__(self, item: tuple[int, bool]) -> dict[str, torch.Tensor]:
        index, aligned = item
        codes, thoughts, text, usable = self.items[index]
        seg = self.segment_frames
        n_plan = self.plan_length(aligned)
        for _ in range(20):  # find a start whose plan has the batch's length
            if aligned:
                max_seg = int((usable - self.crop) // seg)
                start = round(self.rng.randint(0, max_seg) * seg)
            else:
                start = self.rng.randint(0, usable - self.crop)
            s0, s1 = segments_for_span(start, start + self.crop, seg, thoughts.shape[0])
            if s1 - s0 == n_plan:
                break
        else:  # rare (a very short piece): pad the plan with its neighbour segment
            s1 = min(s0 + n_plan, thoughts.shape[0])
            s0 = max(0, s1 - n_plan)
        plan = self.layout.flatten(thoughts[s0:s1])
        others = [s for s in range(thoughts.shape[0]) if not s0 <= s < s1]
        ref = torch.full((self.ref_segments * self.ref_levels,), -1, dtype=torch.long)
        if len(others) >= 1 and self.ref_segments:
            first = self.rng.randint(0, max(0, len(others) - self.ref_segments))
            chosen = others[first : first + self.ref_segments]
            flat = self.layout.flatten(thoughts[chosen][:, : self.ref_levels])
            ref[: flat.shape[0]] = flat  # short pieces: the rest stays NULL (-1)
        return {"codes": codes[:, start : start + self.crop], "plan": plan, "ref": ref,
                "text": text, "plan_offset": torch.tensor(float(start - s0 * seg)),
                "token_segments": self.layout.segment_ids(s1 - s0),
                "segment_frames": torch.tensor(float(seg))}


def collate(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack rows; pad text states to the longest caption with a mask."""
    t = max(b["text"].shape[0] for b in batch)
    d = batch[0]["text"].shape[1]
    states = torch.zeros(len(batch), t, d)
    mask = torch.zeros(len(batch), t, dtype=torch.bool)
    for i, b in enumerate(batch):
        states[i, : b["text"].shape[0]] = b["text"]
        mask[i, : b["text"].shape[0]] = True
    return {"codes": torch.stack([b["codes"] for b in batch]),
            "plan": torch.stack([b["plan"] for b in batch]),
            "ref": torch.stack([b["ref"] for b in batch]),
            **{k: torch.stack([b[k] for b in batch])
               for k in ("plan_offset", "token_segments", "segment_frames") if k in batch[0]},
            "text_states": states, "text_mask": mask}
