"""Default checkpoints: one search order ($MUSIGEN_CHECKPOINTS, then the source checkout), and
an installed wheel that has neither says in one line where the checkpoints come from."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import musigen.checkpoints as ckpts
from musigen.errors import CheckpointError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """As if the package were installed: no source checkout beside it, no variable."""
    monkeypatch.setattr(ckpts, "PACKAGE_PARENT", tmp_path / "site-packages")
    monkeypatch.delenv(ckpts.CHECKPOINTS_ENV, raising=False)
    return tmp_path


def test_search_order_variable_then_source_checkout(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ckpts.CHECKPOINTS_ENV, raising=False)
    shipped = ckpts.default_checkpoint("codec_demo")
    assert shipped == ROOT / "checkpoints" / "codec_demo"
    monkeypatch.setenv(ckpts.CHECKPOINTS_ENV, str(tmp_path))
    assert ckpts.default_checkpoint("codec_demo") == shipped  # not under the variable: next place
    (tmp_path / "codec_demo").mkdir()
    assert ckpts.default_checkpoint("codec_demo") == tmp_path / "codec_demo"  # the variable wins
    assert ckpts.candidates("x") == [tmp_path / "x", ROOT / "checkpoints" / "x"]


def test_missing_everywhere_is_one_line_naming_both_places(installed: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CheckpointError) as info:
        ckpts.default_checkpoint("musicot_demo", "pass --model DIR")
    text = str(info.value)
    assert "\n" not in text and "'musicot_demo'" in text and text.endswith("or pass --model DIR")
    assert "MUSIGEN_CHECKPOINTS is not set" in text and "checkpoints/ folder" in text
    monkeypatch.setenv(ckpts.CHECKPOINTS_ENV, str(installed / "mine"))
    assert f"not in $MUSIGEN_CHECKPOINTS={installed / 'mine'}" in ckpts.missing_message("x")
    assert ckpts.expected_checkpoint("x") == installed / "mine" / "x"


def test_the_demo_codec_preset_follows_the_variable(installed: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The codec preset "demo" (what the demo pipelines name) is found like every default."""
    from musigen.codec import Codec
    from musigen.encode.components import random_codec

    with pytest.raises(CheckpointError, match="'codec_demo' not found.*MUSIGEN_CHECKPOINTS"):
        Codec.from_pretrained("demo")
    random_codec("tiny").save_pretrained(installed / "mine" / "codec_demo")
    monkeypatch.setenv(ckpts.CHECKPOINTS_ENV, str(installed / "mine"))
    assert Codec.from_pretrained("demo").latent_dim == 16


def test_an_installed_wheel_names_where_the_checkpoints_come_from(tmp_path: Path) -> None:
    """Build the wheel (from a copy of the source, so the checkout is untouched), install it
    without dependencies into a folder, and run the README's first command from elsewhere."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "musigen", src / "musigen",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k not in ("MUSIGEN_CHECKPOINTS", "PYTHONPATH")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "wheel"), str(src)], check=True, env=env, capture_output=True)
    wheel = next((tmp_path / "wheel").glob("musigen-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, env=env, capture_output=True)
    assert not (tmp_path / "site" / "checkpoints").exists()

    work = tmp_path / "elsewhere"
    work.mkdir()
    env["PYTHONPATH"] = str(tmp_path / "site")
    where = subprocess.run([sys.executable, "-c", "import musigen; print(musigen.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(tmp_path / "site")), where.stdout
    cli = [sys.executable, "-m", "musigen.cli"]
    gen = subprocess.run([*cli, "generate", "--prompt", "an energetic funk groove", "--duration",
                          "10", "--seed", "0", "--out", "demo.wav"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert gen.returncode == 2, gen.stderr
    lines = gen.stderr.strip().splitlines()
    assert len(lines) == 1 and "'musicot_demo' not found" in lines[0], gen.stderr
    assert "MUSIGEN_CHECKPOINTS" in lines[0] and "checkpoints/ folder" in lines[0]
    assert not list(work.iterdir())
