"""`musigen encode musicot | instructme | shards`: the pre-encoders as subcommands.

Each writes a folder its training data module reads; bad input is one line and exit 2.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from musigen.cli import main
from musigen.encode.index import read_index


def test_musicot_flags_are_the_config_fields() -> None:
    """Every PreencodeConfig field is a flag with the same default, so none is unreachable."""
    from musigen.commands.encode import _MUSICOT_FLAGS
    from musigen.encode.musicot_shards import PreencodeConfig

    fields = {f.name: f.default for f in dataclasses.fields(PreencodeConfig)}
    flags = {name: default for name, _, default, *_ in _MUSICOT_FLAGS}
    assert set(fields) == set(flags) | {"manifest", "out"}
    assert all(fields[name] == default for name, default in flags.items())


def test_encode_musicot_writes_a_musicot_folder(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.data.synth.corpus import build_corpus
    from musigen.encode.musicot_shards import FORMAT

    manifest = build_corpus(tmp_path / "corpus", n=2, duration=6.0, seed=0, progress=False)
    out = tmp_path / "musicot"
    argv = ["encode", "musicot", "--manifest", str(manifest), "--out", str(out), "--codec",
            "random:tiny", "--embedder", "random:tiny", "--levels", "2", "--codebook-size", "8",
            "--shard-size", "1"]
    assert main(argv) == 0
    index = read_index(out, FORMAT)
    assert len(index["entries"]) == 2 and index["thought_levels"] == 2
    assert "2 pieces" in capsys.readouterr().out
    assert main(argv[:3] + [str(tmp_path / "missing.jsonl")] + argv[4:]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("musigen: error:") and len(err.splitlines()) == 1


def test_encode_instructme_writes_an_edit_folder(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.encode.edit_shards import FORMAT

    out = tmp_path / "edits"
    argv = ["encode", "instructme", "--out", str(out), "--n", "2", "--duration", "2",
            "--codec", "random:tiny", "--chord-source", "exact", "--shard-size", "2"]
    assert main(argv) == 0
    index = read_index(out, FORMAT)
    assert index["count"] == len(index["items"]) >= 2 and index["latent_dim"] == 16
    assert index["chord_source"] == "exact" and len(index["shards"]) >= 1
    capsys.readouterr()  # the progress bar
    assert main(argv[:-2] + ["--shard-size", "0"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_read_index_names_what_is_missing_or_foreign(tmp_path: Path) -> None:
    from musigen.encode.edit_shards import FORMAT
    from musigen.errors import DataError

    with pytest.raises(DataError, match="missing index.json"):
        read_index(tmp_path, FORMAT)
    (tmp_path / "index.json").write_text('{"format": "musigen-musicot-shards/1"}')
    assert read_index(tmp_path)["format"] == "musigen-musicot-shards/1"  # any known format
    with pytest.raises(DataError, match="is not a musigen-instructme-shards-v1 index"):
        read_index(tmp_path, FORMAT)


def test_data_encode_is_the_shards_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`musigen data encode` (its earlier name) takes the same flags as `musigen encode shards`."""
    for argv in (["encode", "shards", "--help"], ["data", "encode", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
    first, second = capsys.readouterr().out.split("usage:")[1:]
    assert "--what" in first and first.split("options:")[1] == second.split("options:")[1]
