"""InstructME editing pipeline: audio + instruction(s) -> edited audio, round by round.

Per round: the codec encodes the current audio to latents (normalised with the model's own
statistics), the chord recogniser reads the chords of that *source* audio into a chord
matrix at the latent frame rate, the text encoder reads the instruction, and the U-Net
samples the edited latent with two-scale classifier-free guidance on a diffusers
scheduler; the codec decodes it, and the output becomes the next round's source.

The chunk transformer makes the U-Net's cost linear in length, so a whole piece (60 s and
more) is edited in one call, without windows or seams.

A pipeline folder (``save_pretrained``/``from_pretrained``)::

    pipeline.json              components by name/path, diffusion config, default EditParams
    codec/                     the codec (config.json + model.safetensors)
    unet/                      the U-Net (config.json + model.safetensors)
    latent_stats.safetensors   per-channel latent mean/std the U-Net was trained with
    text_encoder/              only for a non-default text encoder (MiniLM is packaged)
    chords/                    the chord recogniser (config.json + model.safetensors, fp16)

The chord recogniser is a component like the others: the chords it reads are the U-Net's
condition, so a pipeline edits the same wherever its folder is (an installed package has no
source tree to find ``checkpoints/chords`` in).  A folder without it is refused with an error
naming the missing component; ``"chord_method": "templates"`` is the explicit way to run
without one.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musigen import hub
from musigen.checkpoints import expected_checkpoint
from musigen.chords.model import ChordRecognizer
from musigen.errors import CheckpointError, ConfigError
from musigen.instructme.diffusion import (
    DiffusionConfig,
    EditConditions,
    EditDiffusion,
    match_source_statistics,
)
from musigen.instructme.edit_params import EditParams
from musigen.instructme.chord_vocabs import chord_vocab
from musigen.edits import EditOp, parse_instructions, split_section
from musigen.instructme.edit_range import (
    CROSSFADE_S,
    MARGIN_S,
    EditRange,
    context_window,
    span_samples,
    splice,
)
from musigen.instructme.latent_stats import STATS_NAME, LatentStats
from musigen.instructme.unet import InstructMEUNet
from musigen.pipeline_parts import (
    load_codec_part,
    save_codec_part,
    save_text_encoder_part,
    text_encoder_dir,
)
from musigen.instructme.output_modes import combine

FORMAT = "musigen-instructme-pipeline-v1"
#: Tasks that `auto` renders as source_delta.  Measured ceiling (the exact target through the
#: demo codec, 48 held-out triplets, SI-SDR dB decoded -> source_delta): add 3.5 -> 13.6,
#: remove 2.9 -> 14.9, replace 3.8 -> 10.3, but extract 2.2 -> -0.9 and remix 4.3 -> 3.1
#: (when most of the mix changes, the source's own codec error is what the delta keeps).
DELTA_TASKS: frozenset[str] = frozenset({"add", "remove", "replace"})
PIPELINE_NAME = "pipeline.json"
#: The shipped demo pipeline (what `musigen edit` uses without --model): a folder of
#: checkpoints/, found through musigen.checkpoints.
DEMO_NAME = "instructme_demo"


def demo_dir() -> Path:
    """Where the demo pipeline is, or would be looked for first when it is missing."""
    return expected_checkpoint(DEMO_NAME)


#: How a pipeline reads the chords of its source (see InstructMEPipelineConfig.chord_method).
CHORD_METHODS: tuple[str, ...] = ("model", "templates")


def chord_model_dir(directory: str | os.PathLike[str]) -> Path:
    """The chord recogniser folder of the pipeline in `directory` (CheckpointError if none)."""
    path = Path(directory)
    config = hub.load_config(path, InstructMEPipelineConfig, PIPELINE_NAME)
    if config.chord_model is None:
        raise CheckpointError(f"the InstructME pipeline {path} has no chord model "
                              "(its chord_method is 'templates')")
    return _require_chord_model(path, config.chord_model)


def _require_chord_model(path: Path, name: str) -> Path:
    folder = hub.inside(path, name, "chord_model")
    if not (folder / "model.safetensors").is_file():
        raise CheckpointError(
            f"the InstructME pipeline {path} lacks its chord model component {name}/ (folders "
            "from before the recogniser became a component do not have it): copy a chord model "
            "folder there, e.g. the repository's checkpoints/chords, or set \"chord_method\": "
            f"\"templates\" in its {PIPELINE_NAME}")
    return folder


def round_output(task: str) -> str:
    """What `auto` output renders a round of `task` as."""
    return "source_delta" if task in DELTA_TASKS else "decoded"


@dataclass
class InstructMEPipelineConfig:
    """The contents of ``pipeline.json``; paths are relative to the pipeline folder."""

    format: str = FORMAT
    codec: str = "codec"  # a folder in the pipeline, or a codec preset / hub id
    text_encoder_kind: str = "minilm"
    text_encoder_path: str | None = None  # a folder in the pipeline; None = packaged default
    unet: str = "unet"
    latent_stats: str = STATS_NAME
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    chord_vocab: str = "majmin"
    #: "model": the pipeline's own recogniser (the `chord_model` component); "templates":
    #: the no-training template recogniser, and no component.  Older files say "auto",
    #: read as "model".
    chord_method: str = "model"
    #: the chord recogniser's folder in the pipeline (None with chord_method "templates")
    chord_model: str | None = "chords"
    #: the sampling defaults of a call (steps, scheduler, guidance, start, output, seed, ...)
    params: EditParams = field(default_factory=EditParams)

    #: keys older pipeline.json files lack; they take the defaults above (an absent chord
    #: model folder is then reported by name when the pipeline loads)
    OPTIONAL_KEYS = frozenset({"chord_model"})
    #: the EditParams fields that older pipeline.json files kept at the top level
    FLAT_PARAMS = ("steps", "guidance_text", "guidance_source", "sampler", "output",
                   "strength", "match_source_stats", "start")

    @classmethod
    def upgrade_saved(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Read the older layout (sampling settings at the top level) as `params`."""
        flat = {k: data[k] for k in cls.FLAT_PARAMS if k in data}
        if not flat:
            return data
        if "params" in data:
            raise ConfigError("sampling settings both in params and at the top level: "
                              f"{sorted(flat)}")
        rest = {k: v for k, v in data.items() if k not in flat}
        return {**rest, "params": flat}

    def __post_init__(self) -> None:
        if isinstance(self.params, dict):
            self.params = EditParams(**self.params)
        if not isinstance(self.params, EditParams):
            raise ConfigError(f"params must be EditParams, got {type(self.params).__name__}")
        if isinstance(self.diffusion, dict):
            self.diffusion = DiffusionConfig(**self.diffusion)
        if self.format != FORMAT:
            raise ConfigError(f"not an InstructME pipeline config (format {self.format!r})")
        chord_vocab(self.chord_vocab)
        if self.chord_method == "auto":
            self.chord_method = "model"
        if self.chord_method not in CHORD_METHODS:
            raise ConfigError(f"chord_method must be one of {', '.join(CHORD_METHODS)}, "
                              f"got {self.chord_method!r}")
        if self.chord_method == "templates":
            self.chord_model = None
        elif not self.chord_model:
            raise ConfigError("chord_method 'model' needs chord_model, the recogniser's folder")


@dataclass
class EditResult:
    """What one call returns.  Audio is float32 ``[channels, samples]`` at `sample_rate`."""

    audio: np.ndarray
    sample_rate: int
    rounds: list[np.ndarray]  # each round's output; rounds[-1] is `audio`
    chords: list[list[tuple[float, float, str]]]  # chords read off each round's source
    ops: list[EditOp]
    instructions: list[str]
    parameters: dict[str, Any]  # steps, guidance, sampler, seed (for provenance)


class InstructMEPipeline(hub.Pretrained):
    """Codec + text encoder + U-Net + latent statistics + chord recogniser + scheduler settings.

    `chord_model` is the learned recogniser whose chords condition the U-Net; it is required
    unless the config's chord_method is "templates".
    """

    def __init__(self, codec: Any, text_encoder: Any, unet: InstructMEUNet, stats: LatentStats,
                 config: InstructMEPipelineConfig | None = None,
                 codec_source: str | None = None,
                 chord_model: ChordRecognizer | None = None) -> None:
        self.config = config or InstructMEPipelineConfig()
        if self.config.chord_method == "model" and chord_model is None:
            raise ConfigError(
                "an InstructME pipeline needs its chord_model (a musigen.chords.ChordRecognizer, "
                "e.g. ChordRecognizer.from_pretrained('checkpoints/chords')), or a config with "
                "chord_method='templates'")
        #: the learned chord recogniser (None when chord_method is "templates")
        self.chord_model = chord_model if self.config.chord_method == "model" else None
        self.codec, self.text_encoder, self.stats = codec, text_encoder, stats
        self.unet = unet.eval()
        #: a preset or hub id the codec came from; it is then recorded instead of copied
        self.codec_source = codec_source
        self.diffusion = EditDiffusion(self.config.diffusion)
        self.vocab = chord_vocab(self.config.chord_vocab)
        u = unet.config
        problems = []
        if u.latent_channels != codec.latent_dim or stats.dim != codec.latent_dim:
            problems.append(f"latent size: codec {codec.latent_dim}, U-Net {u.latent_channels}, "
                            f"statistics {stats.dim}")
        if u.text_dim != text_encoder.dim:
            problems.append(f"text width: encoder {text_encoder.dim}, U-Net {u.text_dim}")
        if u.use_chords and u.chord_dim != len(self.vocab):
            problems.append(f"chord vocabulary: {len(self.vocab)} labels, U-Net {u.chord_dim}")
        if problems:
            raise CheckpointError(
                "InstructME components do not fit together: " + "; ".join(problems)
            )

    # ------------------------------------------------------------------ hub format
    # from_pretrained(dir, *, device, dtype) / save_pretrained(dir) -> Path: hub.Pretrained
    # runs these hooks; each component loads and saves through its own from/save_pretrained.
    config_class = InstructMEPipelineConfig
    hub_kind = "InstructME"

    @classmethod
    def _resolve(cls, directory: str | os.PathLike[str]) -> Path:
        path = Path(directory).expanduser()
        if not path.is_dir():
            hint = (" (the demo model has not been trained/exported yet; pass --model DIR)"
                    if path.resolve() == demo_dir().resolve() else "")
            raise CheckpointError(f"InstructME model folder not found: {path}{hint}")
        return path

    @classmethod
    def _from_folder(cls, path: Path, *, device: str | torch.device | None,
                     dtype: torch.dtype | None) -> InstructMEPipeline:
        """Anything missing or mismatched is a CheckpointError."""
        from musigen.embedders.text import load_text_encoder

        config = hub.load_config(path, InstructMEPipelineConfig, PIPELINE_NAME)
        # every path pipeline.json names must lie inside this folder (checked before loading)
        unet_dir = hub.inside(path, config.unet, "unet")
        stats_file = hub.inside(path, config.latent_stats, "latent_stats")
        text_dir = text_encoder_dir(path, config.text_encoder_path)
        codec, codec_source = load_codec_part(path, config.codec, device, dtype)
        text = load_text_encoder(config.text_encoder_kind, text_dir, device=device, dtype=dtype)
        unet = InstructMEUNet.from_pretrained(unet_dir, device=device, dtype=dtype)
        stats = LatentStats.load(stats_file)
        chords = None
        if config.chord_method == "model":
            assert config.chord_model is not None  # __post_init__
            chords = ChordRecognizer.from_pretrained(_require_chord_model(path, config.chord_model))
        return cls(codec, text, unet, stats, config,
                   codec_source=codec_source, chord_model=chords)

    def _save_files(self, path: Path, dtype: torch.dtype | None) -> None:
        """Every component, then ``pipeline.json`` (last, so a folder with it is complete)."""
        (path / PIPELINE_NAME).unlink(missing_ok=True)
        config = dataclasses.replace(self.config)
        config.codec = save_codec_part(path, self.codec, self.codec_source, dtype)
        self.unet.save_pretrained(path / config.unet, dtype=dtype)
        self.stats.save(path / config.latent_stats)
        config.text_encoder_kind = self.text_encoder.kind
        config.text_encoder_path = save_text_encoder_part(path, self.text_encoder)
        if self.chord_model is not None:
            config.chord_model = config.chord_model or "chords"
            self.chord_model.save_pretrained(path / config.chord_model)  # fp16, as shipped
        hub.save_config(path, config, PIPELINE_NAME)

    def to(self, device: str | torch.device | None = None,
           dtype: torch.dtype | None = None) -> InstructMEPipeline:
        for part in (self.codec, self.text_encoder, self.unet):
            hub.place(part, device, dtype)
        return self

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    # ------------------------------------------------------------------ editing
    def _prepare(self, audio: Any, sample_rate: int) -> np.ndarray:
        """Validated mono float32 ``[samples]`` at the codec's rate."""
        from musigen.audio import check_audio, require_duration, resample

        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        arr = check_audio(np.asarray(audio, dtype=np.float32), sample_rate)
        mono = arr.mean(axis=0)
        require_duration(mono, sample_rate)
        if sample_rate != self.sample_rate:
            mono = np.asarray(resample(mono[None], sample_rate, self.sample_rate))[0]
        return np.ascontiguousarray(mono, dtype=np.float32)

    @torch.no_grad()
    def _round(self, wav: np.ndarray, instruction: str, params: EditParams, output: str,
               generator: torch.Generator, progress: bool
               ) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
        """One edit of `wav`; `output` is this round's mode (`auto` already resolved)."""
        from musigen.chords import chord_matrix, recognize_chords

        device = self.codec.device
        z = self.codec.encode_latents(torch.from_numpy(wav)[None, None])
        frames = z.shape[-1]
        with warnings.catch_warnings():  # librosa's CQT warns about low octaves of short clips
            warnings.filterwarnings("ignore", category=UserWarning, module="librosa")
            chords = recognize_chords(wav, self.sample_rate, method=self.config.chord_method,
                                      model=self.chord_model)
        cm = torch.from_numpy(chord_matrix(chords, self.codec.frame_rate, frames, self.vocab))
        text = self.text_encoder.encode([instruction])
        cond = EditConditions(self.stats.normalize(z), text.states.to(device),
                              text.mask.to(device), cm[None].to(device))
        p = params
        x = self.diffusion.sample(self.unet, cond, p.steps, p.guidance_text, p.guidance_source,
                                  p.sampler, generator, progress, p.strength, p.start)
        if p.match_source_stats:
            x = match_source_statistics(x, cond.source)
        out = self.codec.decode_latents(self.stats.denormalize(x), length=wav.size)
        edited = out[0, 0].float().cpu().numpy()
        if output != "decoded":
            same = self.codec.decode_latents(z, length=wav.size)[0, 0].float().cpu().numpy()
            edited = combine(output, wav, edited, same)
        return edited, chords

    def __call__(self, *args: Any, threads: int | None = None, **kwargs: Any) -> EditResult:
        """Edit at `threads` intra-op threads (restored afterwards); arguments: :meth:`_edit_call`.

        None means :data:`musigen.threads.EDIT_THREADS` (one: measured faster than every
        core on the 2-core machine, docs/speed.md), not torch's default of all cores.
        """
        from musigen.limits import check_threads
        from musigen.threads import EDIT_THREADS, use_threads

        with use_threads(EDIT_THREADS if threads is None else check_threads(threads)):
            return self._edit_call(*args, **kwargs)

    def _edit_call(
        self,
        audio: np.ndarray | torch.Tensor,
        sample_rate: int,
        instruction: str | list[str],
        params: EditParams | None = None,
        *,
        progress: bool = False,
        ranges: EditRange | list[EditRange | None] | None = None,
        sections: list[tuple[float, float, str]] | None = None,
        **overrides: Any,
    ) -> EditResult:
        """Edit `audio` ([samples] or [channels, samples] at `sample_rate`).

        A list of instructions is applied round by round, each to the previous output.
        Instructions are validated first (an unknown instrument or genre raises
        VocabularyError, an empty one InstructionError).  `params` defaults to the
        pipeline's own (``config.params``); keyword overrides of single fields
        (``steps=4, seed=1, ...``; None = unset) are applied on top of either.
        The same seed gives the same output.

        `ranges` limits rounds to part of the piece: one EditRange for every round, or one
        per round (None: the whole file).  An instruction ending "in the chorus" limits its
        own round.  Outside a round's spans the output equals that round's input sample for
        sample (see `musigen.instructme.edit_range`).  Section spans come from `sections`
        ((start, end, label) in seconds of the input) or else from analysing the input
        (`musigen.structure.sections`); every round uses the input's sections.
        """
        ops = parse_instructions(instruction)
        texts = [instruction] if isinstance(instruction, str) else list(instruction)
        if params is not None and not isinstance(params, EditParams):
            raise ConfigError(f"params must be EditParams, got {type(params).__name__}")
        p = (params or self.config.params).replace(**overrides)
        wanted = self._round_ranges(ranges, ops)
        wav = self._prepare(audio, sample_rate)
        duration = wav.size / self.sample_rate
        if sections is None and any(r is not None and r.section for r in wanted):
            from musigen.structure.sections import find_sections

            sections = [s.as_tuple() for s in find_sections(wav, self.sample_rate)]
        round_spans = [None if r is None else r.spans(duration, sections) for r in wanted]
        generator = torch.Generator().manual_seed(p.seed)
        rounds, chords, modes = [], [], []
        for text, op, spans in zip(texts, ops, round_spans):
            mode = p.output if p.output != "auto" else round_output(op.task)
            modes.append(mode)
            model_text = split_section(text)[0] if op.section else text
            if spans is None:
                wav, used = self._round(wav, model_text, p, mode, generator, progress)
            else:
                wav, used = self._range_round(wav, spans, model_text, p, mode, generator,
                                              progress)
            rounds.append(wav[None].copy())
            chords.append(used)
        records = [None if r is None else {**r.to_dict(), "spans": [[s, e] for s, e in sp]}
                   for r, sp in zip(wanted, round_spans)]
        extra: dict[str, Any] = {}
        if any(r is not None for r in records):
            extra = {"round_ranges": records, "range_margin_s": MARGIN_S,
                     "crossfade_s": CROSSFADE_S, "crossfade": "equal-power, inside the range"}
            if sections is not None:
                extra["sections"] = [[s, e, lab] for s, e, lab in sections]
        return EditResult(
            audio=rounds[-1], sample_rate=self.sample_rate, rounds=rounds, chords=chords,
            ops=ops, instructions=texts,
            parameters={"steps": p.steps, "guidance_text": p.guidance_text,
                        "guidance_source": p.guidance_source, "sampler": p.sampler,
                        "seed": p.seed, "output": p.output, "round_outputs": modes,
                        "strength": p.strength, "match_source_stats": p.match_source_stats,
                        "start": p.start, "chord_method": self.config.chord_method, **extra},
        )

    @staticmethod
    def _round_ranges(ranges: EditRange | list[EditRange | None] | None,
                      ops: list[EditOp]) -> list[EditRange | None]:
        """One EditRange (or None: whole file) per round, from `ranges` and the ops' sections."""
        if ranges is None or isinstance(ranges, EditRange):
            given: list[EditRange | None] = [ranges] * len(ops)
        else:
            given = list(ranges)
            if len(given) != len(ops):
                raise ConfigError(f"{len(given)} ranges for {len(ops)} instructions; give one "
                                  "per round (None for a whole-file round)")
        out: list[EditRange | None] = []
        for r, op in zip(given, ops):
            if r is not None and not isinstance(r, EditRange):
                raise ConfigError(f"a range must be an EditRange or None, got {type(r).__name__}")
            if r is not None and r.is_whole:
                r = None
            if op.section is not None:
                if r is not None:
                    raise ConfigError(f"the instruction '{op.canonical_text()}' names a section; "
                                      "do not give a range or --section for it as well")
                r = EditRange(section=op.section)
            out.append(r)
        return out

    def _range_round(self, wav: np.ndarray, spans: list[tuple[float, float]],
                     instruction: str, params: EditParams, output: str,
                     generator: torch.Generator, progress: bool
                     ) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
        """One round limited to `spans`: each span's context window is edited and spliced."""
        sr, out, chords = self.sample_rate, wav, []
        fade = int(round(CROSSFADE_S * sr))
        for span in spans:
            a, b = context_window(span, wav.size, sr)
            edited, used = self._round(np.ascontiguousarray(wav[a:b]), instruction, params,
                                       output, generator, progress)
            out = splice(out, edited, a, span_samples(span, wav.size, sr), fade)
            chords.extend((s + a / sr, e + a / sr, lab) for s, e, lab in used)
        return out, chords

    def edit(self, wav: np.ndarray, sample_rate: int, instructions: list[str],
             seed: int) -> np.ndarray:
        """The evaluation harness' EditSystem protocol: mono output at `self.sample_rate`."""
        return self(wav, sample_rate, list(instructions), seed=seed).audio[0]

