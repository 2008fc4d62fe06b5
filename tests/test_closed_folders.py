"""A model folder can only load what lies inside it, only from safetensors, and only offline
unless the user opts in; a codes file cannot choose the codec that decodes it.

Every case is a one-line MusigenError (exit 2 from the CLI), raised before anything outside
the folder is read and without any network attempt.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from musigen import hub
from musigen.cli import main
from musigen.errors import CheckpointError, DataError, MusigenError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from demo_tiny import save_tiny_models

    torch.set_num_threads(1)
    musicot, instructme = save_tiny_models(tmp_path_factory.mktemp("models"))
    return {"musicot": musicot, "instructme": instructme}


def _copy(saved: dict[str, Path], kind: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved[kind], tmp_path / kind))


def _edit_json(folder: Path, **changes: object) -> None:
    path = folder / "pipeline.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _load(kind: str, folder: Path) -> object:
    if kind == "musicot":
        from musigen.musicot.pipeline import MusiCoTPipeline

        return MusiCoTPipeline.from_pretrained(folder)
    from musigen.instructme.pipeline import InstructMEPipeline

    return InstructMEPipeline.from_pretrained(folder)


def _one_line(exc: pytest.ExceptionInfo[BaseException], *words: str) -> None:
    text = str(exc.value)
    assert "\n" not in text and len(text) < 400, text
    for word in words:
        assert word in text, text


# -- paths a config names stay inside its folder ---------------------------------------------


@pytest.mark.parametrize("kind,key,value", [
    ("musicot", "lm", "../../lm"),
    ("musicot", "lm", "/etc"),
    ("musicot", "embedder", "~/embedder"),
    ("musicot", "thoughts", "thoughts/../../x"),
    ("musicot", "text_encoder_path", "../text_encoder"),
    ("musicot", "codec", "../../codec_demo"),
    ("instructme", "latent_stats", "../../../../etc/passwd"),
    ("instructme", "unet", "/tmp"),
    ("instructme", "chord_model", "../chords"),
])
def test_config_paths_leaving_the_folder_are_refused(
        saved: dict[str, Path], tmp_path: Path, kind: str, key: str, value: str) -> None:
    folder = _copy(saved, kind, tmp_path)
    _edit_json(folder, **{key: value})
    with pytest.raises(CheckpointError) as exc:
        _load(kind, folder)
    _one_line(exc, key, "inside")


def test_a_symlink_out_of_the_folder_is_refused(saved: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(saved, "musicot", tmp_path)
    outside = Path(shutil.move(folder / "lm", tmp_path / "elsewhere_lm"))
    os.symlink(outside, folder / "lm")
    with pytest.raises(CheckpointError) as exc:
        _load("musicot", folder)
    _one_line(exc, "lm", "outside")
    # a weights file inside a component that links out is refused too
    os.unlink(folder / "lm")
    shutil.copytree(outside, folder / "lm")
    (folder / "lm" / "model.safetensors").unlink()
    os.symlink(outside / "model.safetensors", folder / "lm" / "model.safetensors")
    with pytest.raises(CheckpointError) as exc:
        _load("musicot", folder)
    _one_line(exc, "outside")


def test_symlinks_inside_the_folder_still_load(saved: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(saved, "musicot", tmp_path)
    shutil.move(folder / "lm", folder / "lm_v2")
    os.symlink("lm_v2", folder / "lm")
    assert _load("musicot", folder) is not None


def test_inside_helper() -> None:
    root = Path("/some/folder")
    assert hub.inside(root, "lm") == root / "lm"
    assert hub.inside(root, "a/b.safetensors") == root / "a" / "b.safetensors"
    for bad in ("", "..", "../x", "a/../../x", "/abs", "~/x"):
        with pytest.raises(CheckpointError):
            hub.inside(root, bad)
    with pytest.raises(CheckpointError) as exc:
        hub.inside(root, "../" + "x" * 100_000)
    _one_line(exc, "\u2026")


# -- offline by default ----------------------------------------------------------------------


def _no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) every reach for the hub; returns the list of attempts."""
    import huggingface_hub
    import transformers.utils.hub as th

    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(str(args[:1]))
        raise OSError("offline (test)")

    for module in (huggingface_hub, th):
        for name in ("hf_hub_download", "snapshot_download"):
            monkeypatch.setattr(module, name, refuse, raising=False)
    monkeypatch.delenv(hub.ALLOW_HUB_ENV, raising=False)
    return attempts


@pytest.mark.parametrize("kind,changes", [
    ("musicot", {"codec": "facebook/encodec_32khz"}),
    ("musicot", {"codec": "encodec_32khz"}),
    ("instructme", {"codec": "someone/some-codec"}),
    # t5's default source is the hub id t5-base
    ("instructme", {"text_encoder_kind": "t5", "text_encoder_path": None}),
])
def test_a_hub_id_in_a_config_fails_at_once_without_the_network(
        saved: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        kind: str, changes: dict[str, object]) -> None:
    attempts = _no_network(monkeypatch)
    folder = _copy(saved, kind, tmp_path)
    _edit_json(folder, **changes)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as exc:
        _load(kind, folder)
    assert time.perf_counter() - start < 10  # the loads before it, not 25-30 s of retries
    _one_line(exc, "downloads are off", hub.ALLOW_HUB_ENV)
    assert attempts == []


@pytest.mark.parametrize("load", ["codec", "clap", "text"])
def test_hub_ids_need_the_opt_in(monkeypatch: pytest.MonkeyPatch, load: str) -> None:
    from musigen.codec import Codec
    from musigen.embedders.clap import load_embedder
    from musigen.embedders.text import load_text_encoder

    attempts = _no_network(monkeypatch)
    calls = {"codec": lambda: Codec.from_pretrained("someone/codec"),
             "clap": lambda: load_embedder("laion/larger_clap_music"),
             "text": lambda: load_text_encoder("t5")}
    with pytest.raises(CheckpointError) as exc:
        calls[load]()
    _one_line(exc, "downloads are off")
    assert attempts == []
    # opted in, the name goes on to the hub (refused here, so it fails there instead)
    monkeypatch.setenv(hub.ALLOW_HUB_ENV, "1")
    with pytest.raises(MusigenError) as exc:
        calls[load]()
    assert "downloads are off" not in str(exc.value) and attempts


def test_generate_with_a_hub_id_is_one_line_and_quick(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    attempts = _no_network(monkeypatch)
    start = time.perf_counter()
    code = main(["generate", "--prompt", "jazz", "--model", "someone/musicot", "--out",
                 str(tmp_path / "x.wav")])
    assert code == 2 and time.perf_counter() - start < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and attempts == [], err


# -- weights only from safetensors -----------------------------------------------------------


def _pickle(state: dict[str, torch.Tensor], folder: Path) -> None:
    """Leave `folder` with the same weights as a pickled pytorch_model.bin only."""
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def test_a_pickled_text_encoder_is_never_unpickled(
        saved: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from musigen.embedders.text import load_text_encoder

    folder = _copy(saved, "instructme", tmp_path)
    text_dir = folder / "text_encoder"
    assert (text_dir / "model.safetensors").is_file()
    from safetensors.torch import load_file

    _pickle(load_file(str(text_dir / "model.safetensors")), text_dir)
    assert (text_dir / "pytorch_model.bin").is_file()

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail("torch.load was called on a pickle")

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(CheckpointError) as exc:
        load_text_encoder("minilm", text_dir)
    _one_line(exc, "text encoder")
    with pytest.raises(CheckpointError):
        _load("instructme", folder)


def test_a_pickled_codec_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from musicot_tiny import tiny_codec

    from musigen.codec import Codec

    folder = tiny_codec().save_pretrained(tmp_path / "codec")
    from safetensors.torch import load_file

    _pickle(load_file(str(folder / "model.safetensors")), folder)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(CheckpointError) as exc:
        Codec.from_pretrained(folder)
    _one_line(exc, "safetensors")


# -- a codes file does not choose its codec --------------------------------------------------


@pytest.fixture()
def foreign_codes(tmp_path: Path) -> tuple[Path, Path]:
    """(codes file naming a codec folder that is not the shipped one, that folder)."""
    from musicot_tiny import tiny_codec

    from musigen.codec_files import save_codes

    codec = tiny_codec()
    folder = codec.save_pretrained(tmp_path / "their_codec")
    codes = torch.randint(0, codec.cardinality, (codec.num_codebooks, 10))
    path = save_codes(tmp_path / "c.safetensors", codes, codec, 10 * codec.hop_length, str(folder))
    return path, folder


def test_decode_refuses_a_codec_the_file_names(
        foreign_codes: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from musigen.codec import Codec

    codes, folder = foreign_codes
    real = Codec.from_pretrained.__func__  # type: ignore[attr-defined]
    loaded: list[str] = []

    def spy(cls: type, name: object, **kwargs: object) -> object:
        loaded.append(str(name))
        return real(cls, name, **kwargs)

    monkeypatch.setattr(Codec, "from_pretrained", classmethod(spy))
    out = tmp_path / "out.wav"
    assert main(["codec", "decode", str(codes), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model" in err[0], err
    assert loaded == [] and not out.exists()
    assert main(["codec", "decode", str(codes), "--model", str(folder), "--out", str(out)]) == 0
    assert out.is_file() and loaded == [str(folder)]


def test_the_shipped_codec_needs_no_confirmation() -> None:
    from musigen.codec import DEMO_CODEC_DIR
    from musigen.codec_files import recorded_codec

    assert recorded_codec("c.safetensors", {"model": "demo"}) == "demo"
    assert recorded_codec("c.safetensors", {}) == "demo"
    assert recorded_codec("c.safetensors", {"model": str(DEMO_CODEC_DIR)}) == "demo"
    for other in ("facebook/encodec_32khz", "/tmp/x", str(DEMO_CODEC_DIR / ".." / "judge")):
        with pytest.raises(DataError, match="--model"):
            recorded_codec("c.safetensors", {"model": other})
