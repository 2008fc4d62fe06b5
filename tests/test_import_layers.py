"""The package's layering (each layer imports only the layers below it) holds.

The contracts live in pyproject.toml under [tool.importlinter]; `lint-imports` checks them
statically, so a function-level import breaks them as surely as a module-level one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> list[str]:
    """The lint-imports command of this interpreter's environment."""
    found = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(found).is_file():
        pytest.fail("lint-imports is missing: install the dev extra (pip install -e '.[dev]')")
    return [found, "--no-cache"]


def test_import_contracts_are_kept() -> None:
    result = subprocess.run(_lint_imports(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_every_contract_names_the_layers_of_the_design() -> None:
    """The config keeps the four contracts the design asks for (none silently dropped)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    ids = {c["id"] for c in config["contracts"]}
    assert ids >= {"layers", "training-eval", "data-no-models", "no-lightning-below-training"}
    layers = next(c for c in config["contracts"] if c["id"] == "layers")["layers"]
    order = [layer.replace(":", "|").split("|") for layer in layers]
    rank = {name.strip(): i for i, names in enumerate(order) for name in names}
    assert rank["commands"] < rank["training"] == rank["eval"] < rank["encode"] < rank["musicot"]
    assert rank["musicot"] == rank["instructme"] == rank["judge"] < rank["embedders"]
    assert rank["embedders"] == rank["chords"] == rank["data"] < rank["edits"] == rank["hub"]
