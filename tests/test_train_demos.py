"""`musigen train-demos --size debug`: the whole chain runs, survives kill -9, and its exports work.

The run is killed (SIGKILL to its whole process group) while the MusiCoT LM trains, then the
same command resumes it: the LM continues from its checkpoint and ledger instead of starting
again, and the finished run's pipeline folders load, generate and edit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from musigen.errors import ConfigError
from musigen.training.demos.schedule import State, allotment_s, parse_budget
from musigen.training.demos.sizes import SIZES
from musigen.training.stage_budget import Ledger, cooldown_factor

BUDGET = "240s"


def _command(out: Path) -> list[str]:
    return [sys.executable, "-m", "musigen.cli", "train-demos", "--size", "debug", "--budget", BUDGET,
            "--out", str(out)]


def test_budget_parsing_and_schedule() -> None:
    assert parse_budget("90") == 90 and parse_budget("2h30m") == 9000 and parse_budget("36h") == 129600
    for bad in ("", "0", "-5", "3x", "1h 2m", "nan"):
        with pytest.raises(ConfigError):
            parse_budget(bad)
    demo = SIZES["demo"]
    budget = parse_budget("36h")
    lm, unet = allotment_s(demo, "lm", budget, 0.0), allotment_s(demo, "unet", budget, 0.0)
    assert lm >= 20 * 3600 and unet >= 10 * 3600  # the core-hours the demo needs
    assert allotment_s(demo, "codec", budget, 0.0) == 0.0  # reused from checkpoints/
    # time the data stages took comes off the training time
    assert allotment_s(demo, "lm", budget, 3600.0) < lm


def test_cooldown_factor() -> None:
    assert cooldown_factor(0.5, 0.2, 0.1) == 1.0
    assert cooldown_factor(0.9, 0.2, 0.1) == pytest.approx(0.55)
    assert cooldown_factor(1.5, 0.2, 0.1) == pytest.approx(0.1)


def test_state_refuses_another_size(tmp_path: Path) -> None:
    State(size="debug", device="cpu").save(tmp_path / "state.json")
    with pytest.raises(ConfigError, match="debug"):
        State.load(tmp_path / "state.json", "demo", "cpu")


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    for extra in (["--budget", "soon"], ["--budget", "1h", "--size", "huge"], ["--budget", "1h", "--workers", "0"]):
        proc = subprocess.run([sys.executable, "-m", "musigen.cli", "train-demos", "--out", str(tmp_path / "r"),
                               *extra], capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


def test_debug_chain_survives_kill_and_exports_work(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(_command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    ledger_path = out / "lm" / "ledger.json"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ledger_path.is_file() and (out / "lm" / "checkpoints" / "last.ckpt").is_file():
                seen = Ledger.read(ledger_path)
                if seen.steps > 0 and not seen.done:
                    break
            time.sleep(0.5)
        assert proc.poll() is None, "the run ended before the LM had a checkpoint"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = Ledger.read(ledger_path)
    assert not killed.done and killed.steps > 0
    state = json.loads((out / "state.json").read_text())
    assert state["stages"]["corpus"]["done"] and not state["stages"].get("lm", {}).get("done")

    done = subprocess.run(_command(out), capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "lm: " in done.stdout and "(resuming from" in done.stdout
    final = Ledger.read(ledger_path)
    assert final.done and final.steps > killed.steps and final.spent_s >= killed.spent_s
    state = json.loads((out / "state.json").read_text())
    assert all(rec["done"] for rec in state["stages"].values()) and "eval" in state["stages"]
    report = (out / "report.md").read_text()
    assert "this run: MusiCoT" in report and "this run: InstructME" in report

    # a third call has nothing left to do
    again = subprocess.run(_command(out), capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "start" not in again.stdout

    import numpy as np

    from musigen.instructme.pipeline import InstructMEPipeline
    from musigen.musicot.pipeline import MusiCoTPipeline

    gen = MusiCoTPipeline.from_pretrained(str(out / "export" / "musicot"))
    res = gen("drums and bass", duration=1.0, seed=0)
    audio = np.asarray(res.audio[0])
    assert audio.size > 0 and np.isfinite(audio).all() and np.abs(audio).max() > 0
    twin = MusiCoTPipeline.from_pretrained(str(out / "export" / "musicot_nocot"))
    assert np.isfinite(np.asarray(twin("drums", duration=1.0, seed=0).audio[0])).all()
    edit = InstructMEPipeline.from_pretrained(str(out / "export" / "instructme"))
    edited = edit(audio, res.sample_rate, ["remove drums"], steps=2, seed=0)
    assert np.isfinite(np.asarray(edited.audio)).all()


def test_a_damaged_last_checkpoint_falls_back_to_the_newest_intact_one(tmp_path: Path) -> None:
    import torch

    from musigen.training.demos.stages import resume_checkpoint

    assert resume_checkpoint(tmp_path) is None
    for step in (5, 10):
        torch.save({"global_step": step}, tmp_path / f"step-{step:07d}.ckpt")
    (tmp_path / "last.ckpt").write_bytes(b"PK\x03\x04 cut short")
    assert resume_checkpoint(tmp_path) == tmp_path / "step-0000010.ckpt"
    torch.save({"global_step": 12}, tmp_path / "last.ckpt")
    assert resume_checkpoint(tmp_path) == tmp_path / "last.ckpt"


def test_curves_pair_losses_with_the_hours_spent(tmp_path: Path) -> None:
    from musigen.training.demos.curves import read_points, write_curves

    logs = tmp_path / "lm" / "logs" / "version_0"
    logs.mkdir(parents=True)
    rows = ["epoch,step,train/audio_loss,train/loss,val/loss,val/audio_loss,budget/spent_h"]
    for step in range(10, 210, 10):
        rows.append(f"0,{step},{7 - step / 100},{12 - step / 50},,,{step / 100}")
    rows.append("0,199,,,8.5,5.25,")
    (logs / "metrics.csv").write_text("\n".join(rows) + "\n")
    Ledger(spent_s=7200.0, steps=200, done=False).write(tmp_path / "lm" / "ledger.json")
    points = read_points(tmp_path / "lm")
    val = [p for p in points if p.val_loss is not None]
    assert [p.step for p in val] == [199] and val[0].hours == pytest.approx(199 * 7200 / 3600 / 200)
    assert points[0].hours == pytest.approx(0.1) and points[0].train_audio == pytest.approx(6.9)
    md, png = write_curves(tmp_path)
    text = md.read_text()
    assert "## lm" in text and "| 199 |" in text and "8.5000" in text and "5.2500" in text
    assert png is None or png.stat().st_size > 0
