"""Fault tolerance: SIGKILL a training run mid-epoch, resume with `--ckpt_path last`.

Three runs of the MusiCoT `debug` recipe on a small streamed folder (`write_fake_shards`),
with condition dropout off so that training is a pure function of the data:

- a reference run of 9 steps (checkpoints at 3, 6, 9), uninterrupted;
- the same run, killed with SIGKILL from outside at step 5, after the step-3 checkpoint;
- its resumption from `last`.

The resumed run must start at step 3, train on exactly the batches the reference trained on
at steps 3..8 (none re-seen, none skipped: the streaming position is in the checkpoint),
and end with the reference's Adam state (step counts and moments) and weights.  Then a
truncated checkpoint must give a one-line CheckpointError from the training CLI and from the
exporters, not a torch traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from musigen.errors import CheckpointError
from test_ddp import streaming_overrides, tensor_digest, write_fake_shards

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "musicot" / "debug.yaml"
LOG_ENV, PAUSE_ENV = "MUSIGEN_TEST_BATCH_LOG", "MUSIGEN_TEST_PAUSE_AT"


class BatchLog(L.Callback):
    """Appends (global step, batch digest) per training batch to a file (survives SIGKILL);
    pauses at step $MUSIGEN_TEST_PAUSE_AT, after writing `<log>.paused`, to be killed there."""

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        log = Path(os.environ[LOG_ENV])
        if os.environ.get(PAUSE_ENV) and trainer.global_step == int(os.environ[PAUSE_ENV]):
            log.with_suffix(".paused").write_text(str(trainer.global_step))
            time.sleep(300)  # the test kills us here
        with log.open("a") as f:
            f.write(json.dumps([trainer.global_step, tensor_digest(batch)[:16]]) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_log(path: Path) -> list[tuple[int, str]]:
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]  # type: ignore[misc]


def fit_args(data: Path, run_dir: Path) -> list[str]:
    """The debug recipe on streamed data, deterministic, checkpoints every 3 steps."""
    return ["fit", "--config", str(RECIPE), "--num_threads", "1", *streaming_overrides(data),
            "--data.init_args.batch_size=2", "--trainer.max_steps=9", "--trainer.max_time=null",
            "--model.init_args.text_dropout=0.0", "--model.init_args.ref_dropout=0.0",
            "--trainer.enable_checkpointing=true", f"--trainer.default_root_dir={run_dir}",
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            f"--trainer.callbacks.dirpath={run_dir / 'checkpoints'}",
            "--trainer.callbacks.every_n_train_steps=3", "--trainer.callbacks.save_last=true",
            "--trainer.callbacks.save_top_k=-1",
            "--trainer.callbacks+=test_fault_resume.BatchLog"]


def env_for(log: Path, pause_at: int | None = None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **{LOG_ENV: str(log)})
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    env.pop(PAUSE_ENV, None)
    if pause_at is not None:
        env[PAUSE_ENV] = str(pause_at)
    return env


def train(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "musigen.training", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def adam_state(ckpt: dict[str, Any]) -> tuple[list[int], dict[str, torch.Tensor]]:
    state = ckpt["optimizer_states"][0]["state"]
    steps = sorted({int(s["step"]) for s in state.values()})
    moments = {f"{i}.{k}": s[k] for i, s in state.items() for k in ("exp_avg", "exp_avg_sq")}
    return steps, moments


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reference run, killed run and resumed run (module-scoped: they are the slow part)."""
    tmp = tmp_path_factory.mktemp("fault")
    data = write_fake_shards(tmp / "data", pieces=24)  # 12 batches of 2 per epoch
    ref_dir, run_dir = tmp / "reference", tmp / "run"
    ref_log, killed_log, resumed_log = tmp / "reference.jsonl", tmp / "killed.jsonl", tmp / "resumed.jsonl"

    ref = train(fit_args(data, ref_dir), env_for(ref_log))
    assert ref.returncode == 0, ref.stderr[-4000:]

    cmd = [sys.executable, "-m", "musigen.training", *fit_args(data, run_dir)]
    proc = subprocess.Popen(cmd, env=env_for(killed_log, pause_at=5), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    paused = killed_log.with_suffix(".paused")
    deadline = time.time() + 240
    while not paused.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert paused.exists(), f"the run never reached step 5: {proc.communicate()[1][-3000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    resumed = train([*fit_args(data, run_dir), "--ckpt_path", "last"], env_for(resumed_log))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    return {"data": data, "reference": ref_dir, "run": run_dir, "ref_log": ref_log,
            "killed_log": killed_log, "resumed_log": resumed_log}


def test_killed_run_resumes_where_it_stopped(runs: dict[str, Path]) -> None:
    reference = read_log(runs["ref_log"])
    killed, resumed = read_log(runs["killed_log"]), read_log(runs["resumed_log"])
    assert [s for s, _ in reference] == list(range(9))
    assert [s for s, _ in killed] == list(range(5))  # killed before step 5 trained
    # the global step continues from the checkpoint (step 3), not from 0 or from the kill
    assert [s for s, _ in resumed] == [3, 4, 5, 6, 7, 8]
    # the data position continues: the very batches of the reference, none re-seen or skipped
    assert resumed == reference[3:]
    assert killed == reference[:5]
    assert len({d for _, d in reference}) == 9  # the batches do differ from step to step


def test_optimizer_state_and_weights_continue(runs: dict[str, Path]) -> None:
    ref = torch.load(runs["reference"] / "checkpoints" / "last.ckpt", weights_only=True)
    mid = torch.load(runs["run"] / "checkpoints" / "epoch=0-step=3.ckpt", weights_only=True)
    end = torch.load(runs["run"] / "checkpoints" / "last.ckpt", weights_only=True)
    assert (mid["global_step"], end["global_step"], ref["global_step"]) == (3, 9, 9)
    mid_steps, _ = adam_state(mid)
    end_steps, end_moments = adam_state(end)
    ref_steps, ref_moments = adam_state(ref)
    assert mid_steps == [3] and end_steps == ref_steps == [9]  # Adam counted on, not restarted
    for key, value in ref_moments.items():
        torch.testing.assert_close(end_moments[key], value, rtol=1e-5, atol=1e-7, msg=key)
    for key, value in ref["state_dict"].items():
        torch.testing.assert_close(end["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert end["lr_schedulers"][0]["last_epoch"] == ref["lr_schedulers"][0]["last_epoch"] == 9


def truncated_copy(runs: dict[str, Path], tmp_path: Path) -> Path:
    good = (runs["run"] / "checkpoints" / "last.ckpt").read_bytes()
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(good[: len(good) // 2])
    return bad


def test_truncated_checkpoint_is_one_clear_line_from_the_training_cli(
        runs: dict[str, Path], tmp_path: Path) -> None:
    bad = truncated_copy(runs, tmp_path)
    proc = train([*fit_args(runs["data"], tmp_path / "again"), "--ckpt_path", str(bad)],
                 env_for(tmp_path / "log.jsonl"))
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert lines == [f"musigen.training: error: training checkpoint {bad} is truncated or corrupt "
                     f"({bad.stat().st_size} bytes, no complete archive directory); resume from "
                     "an earlier checkpoint"]
    assert "Traceback" not in proc.stderr


def test_truncated_last_checkpoint_from_the_training_cli(runs: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`--ckpt_path last` resolves to a truncated last.ckpt: CheckpointError before any step."""
    from musigen.training.cli import main

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    truncated_copy(runs, tmp_path).rename(run_dir / "checkpoints" / "last.ckpt")
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "log.jsonl"))
    before = torch.get_num_threads()
    try:
        with pytest.raises(CheckpointError, match="last.ckpt is truncated or corrupt"):
            main([*fit_args(runs["data"], run_dir), "--ckpt_path", "last"])
    finally:
        torch.set_num_threads(before)
    assert not (tmp_path / "log.jsonl").exists()  # not a single step was trained


def test_truncated_last_checkpoint_through_lightning_loader(runs: dict[str, Path],
                                                            tmp_path: Path) -> None:
    """`last` is resolved by Lightning; its loader (SafeCheckpointIO) gives the same error."""
    from musigen.training.checkpoint_io import SafeCheckpointIO

    bad = truncated_copy(runs, tmp_path)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        SafeCheckpointIO().load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        SafeCheckpointIO().load_checkpoint(tmp_path / "missing.ckpt")
    loaded = SafeCheckpointIO().load_checkpoint(runs["run"] / "checkpoints" / "last.ckpt")
    assert loaded["global_step"] == 9


@pytest.mark.parametrize("exporter", ["codec", "instructme", "clap"])
def test_truncated_checkpoint_in_exporters(runs: dict[str, Path], tmp_path: Path,
                                           exporter: str, capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.cli import main

    bad = truncated_copy(runs, tmp_path)
    code = main(["export", exporter, str(bad), str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "cannot read training checkpoint" in err and str(bad) in err
    assert not (tmp_path / "out").exists()
