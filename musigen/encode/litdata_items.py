"""What one manifest record becomes in a shard: the per-record half of `musigen encode shards`.

An :class:`ItemEncoder` holds the models one worker process needs (codec, CLAP embedder and
thought tokenizer, text encoder) and turns record ``i`` into one litdata item, a flat dict:

- always ``key`` (str, ``"%08d" % i``), ``index`` (int) and ``caption`` (str);
- ``codes``: codec codes ``[K, T]`` int16 of the mix (MusiCoT audio tokens);
- ``thoughts``: thought tokens ``[S, L]`` int16 (CLAP windows through the RVQ);
- ``text``: the caption's token states ``[Lt, D]`` float16 (MusiCoT's text condition);
- ``latents``: raw continuous codec latents ``[D, F]`` float16 of the mix;
- ``chords``: chord index per codec frame ``[F]`` int16 (recogniser, or corpus labels);
- ``edits`` (InstructME, stem manifests): ``source``/``target`` latents ``[D, F]`` float16 of
  an add/remove/extract triplet cut from the record's stems, ``chords`` of the source,
  ``instruction`` (str) and ``text`` = the instruction's token states.

Models are imported lazily, inside the worker that needs them, so that a parent process
spawning workers does not load them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musigen.errors import ConfigError

#: What `--what` may name.  `edits` makes a different kind of item (see the module doc).
WHAT_CHOICES: tuple[str, ...] = ("codes", "thoughts", "text", "latents", "chords", "edits")


def check_what(what: tuple[str, ...]) -> tuple[str, ...]:
    """Validate and order `what`; `edits` cannot share items with the per-piece parts."""
    bad = [w for w in what if w not in WHAT_CHOICES]
    if bad or not what:
        raise ConfigError(f"--what must name some of {', '.join(WHAT_CHOICES)}, got {list(what)}")
    if "edits" in what and set(what) - {"edits", "chords", "text"}:
        raise ConfigError("edits items carry their own latents, chords and text; "
                          "encode codes/thoughts/latents into a separate folder")
    if "edits" in what:
        return ("edits",)
    return tuple(w for w in WHAT_CHOICES if w in what)


class ItemEncoder:
    """The models of one worker and the record -> item function."""

    def __init__(self, what: tuple[str, ...], codec_dir: str, manifest: str,
                 embedder: str | None, tokenizer_dir: str | None, text_encoder: str,
                 text_encoder_path: str | None, chord_source: str, chord_vocab: str,
                 segment_s: float, seed: int, num_codebooks: int = 0) -> None:
        from musigen.codec import Codec
        from musigen.instructme.chord_vocabs import chord_vocab as vocab_of

        self.what = what
        self.codec = Codec.from_pretrained(codec_dir).eval()
        self.num_codebooks = num_codebooks or None  # None = the whole code stack
        self.manifest = Path(manifest)
        self.chord_source, self.vocab = chord_source, vocab_of(chord_vocab)
        self.embedder = self.tokenizer = self.text = self.triplets = None
        if "thoughts" in what:
            from musigen.encode.components import load_embedder
            from musigen.musicot.thoughts import ThoughtTokenizer

            if embedder is None or tokenizer_dir is None:
                raise ConfigError("thoughts need an embedder and a thought tokenizer")
            self.embedder = load_embedder(embedder)
            self.tokenizer = ThoughtTokenizer.from_pretrained(tokenizer_dir)
        if "text" in what or "edits" in what:
            self.text = _text_encoder(text_encoder, text_encoder_path)
        if "edits" in what:
            from musigen.data.stem_triplets import StemTripletConfig, StemTriplets

            self.triplets = StemTriplets(manifest, StemTripletConfig(
                segment_s=segment_s, sample_rate=self.codec.sample_rate), seed)

    def _text_states(self, text: str) -> torch.Tensor:
        assert self.text is not None
        enc = self.text.encode([text])
        return enc.states[0][enc.mask[0]].to(torch.float16).cpu().contiguous()

    def _chords(self, wav: np.ndarray, sr: int, frames: int,
                labels: list[Any] | None) -> torch.Tensor:
        from musigen.chords.matrix import chord_matrix
        from musigen.chords.recognize import recognize_chords

        if self.chord_source == "exact" and labels:
            chords = [(float(s), float(e), str(lab)) for s, e, lab in labels]
        else:
            chords = recognize_chords(wav, sr)
        matrix = chord_matrix(chords, self.codec.frame_rate, frames, self.vocab)
        return torch.from_numpy(matrix.argmax(1).astype(np.int16))

    @torch.inference_mode()
    def encode(self, index: int, record: dict[str, Any]) -> dict[str, Any] | None:
        """Item of record `index`, or None when the record gives none (an uneditable crop)."""
        item: dict[str, Any] = {"key": f"{index:08d}", "index": index,
                                "caption": str(record.get("caption", ""))}
        if self.triplets is not None:
            return self._edit(index, item)
        from musigen.audio import load_audio

        wav, sr = load_audio(self.manifest.parent / record["path"])
        mono = wav.mean(0)
        if "codes" in self.what:
            item["codes"] = self.codec.encode(wav, sr, num_codebooks=self.num_codebooks)[0].to(torch.int16).cpu().contiguous()
        if "thoughts" in self.what:
            from musigen.musicot.analysis import window_embeddings

            assert self.tokenizer is not None
            vecs, _ = window_embeddings(wav, sr, self.embedder, self.tokenizer)
            item["thoughts"] = self.tokenizer.encode(vecs).to(torch.int16).cpu().contiguous()
        if "text" in self.what:
            item["text"] = self._text_states(item["caption"])
        if "latents" in self.what or "chords" in self.what:
            z = self.codec.encode_latents(wav[None], sr)[0].cpu()
            if "latents" in self.what:
                item["latents"] = z.half().contiguous()
            if "chords" in self.what:
                item["chords"] = self._chords(mono, sr, int(z.shape[-1]), record.get("chords"))
        return item

    def _edit(self, index: int, item: dict[str, Any]) -> dict[str, Any] | None:
        assert self.triplets is not None
        t = self.triplets.triplet(index)
        if t is None:
            return None
        z = self.codec.encode_latents(np.stack([t.source, t.target])[:, None],
                                      t.sample_rate).cpu()
        item |= {"source": z[0].half().contiguous(), "target": z[1].half().contiguous(),
                 "chords": self._chords(t.source, t.sample_rate, int(z.shape[-1]), t.chords),
                 "instruction": t.instruction, "text": self._text_states(t.instruction)}
        return item


@functools.lru_cache(maxsize=2)
def _text_encoder(kind: str, path: str | None) -> Any:
    """Loaded once per process (an in-process rerun or a second folder reuses it)."""
    from musigen.embedders.text import load_text_encoder

    return load_text_encoder(kind, path)


def item_frames(item: dict[str, Any]) -> int:
    """Length of an item in codec frames (what crops are limited by)."""
    for key in ("codes", "latents", "source", "chords"):
        if key in item:
            return int(item[key].shape[-1])
    return 0


def item_latents(item: dict[str, Any]) -> torch.Tensor | None:
    """The latents `[D, F]` an item contributes to the folder's normalisation statistics."""
    if "source" in item:
        return torch.cat([item["source"], item["target"]], -1).double()
    if "latents" in item:
        return item["latents"].double()
    return None
