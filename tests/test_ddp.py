"""DDP on CPU: two gloo processes under torchrun train the MusiCoT `debug` recipe and agree.

The run goes through the same entry point and launcher a cluster uses (`torchrun ... -m
musigen.training fit --config recipes/musicot/debug.yaml`), on a small pre-encoded folder
written here with random tokens (the data path is tested elsewhere; this test is about the
distribution).  Each rank records what it saw and a hash of its final weights; the test
checks that the ranks trained on different batches (so agreement is not trivial) and still
ended with bit-identical weights, which only gradient all-reduce can give.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "musicot" / "debug.yaml"
RECORD_ENV = "MUSIGEN_TEST_RECORD_DIR"


def write_fake_shards(root: Path, pieces: int = 16, frames: int = 375, per_chunk: int = 2,
                      seed: int = 0) -> Path:
    """A `musigen encode shards`-style MusiCoT folder (litdata chunks + index.json) of random
    tokens: 2 x 32 codes at 50 Hz, 2 x 8 thoughts per 2.5 s, 16-wide text states.

    Several small chunks, because litdata gives each rank its own chunks.
    """
    from litdata.streaming.writer import BinaryWriter

    from musigen.encode.litdata_shards import FORMAT

    g = torch.Generator().manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    writer = BinaryWriter(str(root), chunk_size=per_chunk)
    for i in range(pieces):
        writer.add_item(i, {
            "key": f"p{i:06d}",
            "codes": torch.randint(0, 32, (2, frames), generator=g).to(torch.int16),
            "thoughts": torch.randint(0, 8, (frames // 125, 2), generator=g).to(torch.int16),
            "text": torch.randn(5 + i % 3, 16, generator=g).to(torch.float16),
        })
    writer.done()
    litdata_index = root / "0.index.json"
    index = json.loads(litdata_index.read_text())
    litdata_index.unlink()
    meta = {"format": FORMAT, "what": ["codes", "thoughts", "text"], "count": pieces,
            "min_frames": frames, "sample_rate": 16000, "frame_rate": 50.0, "num_codebooks": 2,
            "codebook_size": 32, "text_dim": 16, "thought_levels": 2, "thought_codebook_size": 8,
            "segment_s": 2.5}
    (root / "index.json").write_text(json.dumps({**index, **meta}))
    return root


#: Command-line overrides that train the debug recipe on a `write_fake_shards` folder.
def streaming_overrides(data: Path) -> list[str]:
    return [f"--model.init_args.data_dir={data}",
            "--data.class_path=musigen.training.streaming_datamodule.StreamingShardDataModule",
            f"--data.init_args.train_dir={data}", "--data.init_args.task=musicot"]


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class RankRecorder(L.Callback):
    """Writes, per rank, the batches it trained on and a hash of its final weights."""

    def __init__(self) -> None:
        self.batches: list[str] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.batches.append(tensor_digest({"codes": batch["codes"]})[:16])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        out = Path(os.environ[RECORD_ENV])
        out.mkdir(parents=True, exist_ok=True)
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size,
                  "step": trainer.global_step, "batches": self.batches,
                  "weights": tensor_digest(pl_module.state_dict())}
        (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def torchrun(args: list[str], record_dir: Path, nproc: int = 2, timeout: float = 240) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **{RECORD_ENV: str(record_dir)})
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "musigen.training", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


def test_ddp_two_cpu_ranks_agree(tmp_path: Path) -> None:
    data = write_fake_shards(tmp_path / "data")
    records = tmp_path / "records"
    torchrun(["fit", "--config", str(RECIPE), "--num_threads", "1",
              "--trainer.devices", "2", "--trainer.strategy", "ddp_find_unused_parameters_true",
              "--trainer.max_steps", "4",
              f"--trainer.default_root_dir={tmp_path / 'run'}",
              *streaming_overrides(data), "--trainer.callbacks+=test_ddp.RankRecorder"], records)
    ranks = [json.loads((records / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["step"] for r in ranks] == [4, 4]
    # each rank trained on its own share of the data ...
    assert all(len(r["batches"]) == 4 for r in ranks)
    assert ranks[0]["batches"] != ranks[1]["batches"]
    # ... and the gradient all-reduce kept the replicas identical
    assert ranks[0]["weights"] == ranks[1]["weights"]
