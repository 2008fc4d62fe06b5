"""The instrument judge: a multi-label instrument + genre classifier over log-mel.

Evaluation needs an ear that says which instruments sound in a clip (instruction accuracy),
a label posterior (KL) and an embedding (FAD).  The judge is trained on the corpus, whose
stem-activity labels are exact, so it can be trusted on that domain; it is a plain
``nn.Module`` saved in the hub format, and knows nothing of Lightning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from musigen import hub
from musigen.checkpoints import expected_checkpoint, find_checkpoint, missing_message
from musigen.errors import AudioError, CheckpointError, EmptyAudioError, NonFiniteAudioError
from musigen.judge.calibration import judged_state
from musigen.vocab import GENRES, INSTRUMENTS


@dataclass
class JudgeConfig:
    """Front end, network widths and the label sets, saved as `config.json`."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 64
    fmin: float = 30.0
    fmax: float = 8000.0
    channels: list[int] = field(default_factory=lambda: [24, 48, 96, 128])
    embedding_dim: int = 128
    dropout: float = 0.2
    window_s: float = 3.0
    hop_s: float = 1.0
    instruments: list[str] = field(default_factory=lambda: list(INSTRUMENTS))
    genres: list[str] = field(default_factory=lambda: list(GENRES))
    #: Per-instrument decision thresholds on clip presence (the max over windows, which runs
    #: above a window's probability); an instrument not listed uses 0.5.  Fitted on a dev
    #: split by `musigen eval calibrate-judge`.
    thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.thresholds) - set(self.instruments))
        bad = [k for k, v in self.thresholds.items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v < 1.0]
        if unknown or bad:
            raise CheckpointError(f"judge thresholds must be in (0, 1) for known instruments; "
                                  f"unknown {unknown}, out of range {bad}")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))


@dataclass
class JudgeOutput:
    instrument_logits: torch.Tensor  # [B, I]
    genre_logits: torch.Tensor  # [B, G]
    embedding: torch.Tensor  # [B, E], the penultimate layer (FAD features)


@dataclass
class JudgeAnalysis:
    """Per-window and clip-level judgements of one clip."""

    window_starts: np.ndarray  # [N] seconds
    instrument_probs: np.ndarray  # [N, I]
    genre_probs: np.ndarray  # [N, G]
    embeddings: np.ndarray  # [N, E]
    logits: np.ndarray  # [N, I + G], instrument then genre
    instruments: list[str]
    genres: list[str]
    thresholds: dict[str, float] = field(default_factory=dict)  # the judge's; missing = 0.5

    @property
    def presence(self) -> dict[str, float]:
        """Clip-level probability that each instrument sounds somewhere: max over windows."""
        return {k: float(v) for k, v in zip(self.instruments, self.instrument_probs.max(axis=0))}

    @property
    def present(self) -> dict[str, bool]:
        """The judge's verdict per instrument: clip presence against its threshold."""
        return judged_state(self.presence, self.thresholds)

    @property
    def genre(self) -> str:
        return self.genres[int(self.genre_probs.mean(axis=0).argmax())]

    @property
    def clip_logits(self) -> np.ndarray:
        """Clip-level logits [I + G]: the mean over windows (KL input)."""
        return self.logits.mean(axis=0)


class LogMel(nn.Module):
    """Waveform [B, T] -> natural-log mel power [B, n_mels, frames]; filters rebuilt from config."""

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__()
        import librosa

        fb = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                                 fmin=config.fmin, fmax=config.fmax)
        self.register_buffer("mel_fb", torch.from_numpy(fb).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        self.n_fft, self.hop = config.n_fft, config.hop_length

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wav, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        power = spec.real.square() + spec.imag.square()
        return torch.log(torch.matmul(self.mel_fb, power) + 1e-5)


class InstrumentJudge(hub.Pretrained, nn.Module):
    """CNN over log-mel with an instrument head (sigmoid) and a genre head (softmax)."""

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__()
        self.config = config
        self.frontend = LogMel(config)
        self.input_norm = nn.BatchNorm2d(1)
        blocks: list[nn.Module] = []
        c_in = 1
        for c in config.channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.AvgPool2d(2)]
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.embed = nn.Sequential(nn.Linear(2 * c_in, config.embedding_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(config.dropout)
        self.instrument_head = nn.Linear(config.embedding_dim, len(config.instruments))
        self.genre_head = nn.Linear(config.embedding_dim, len(config.genres))

    @property
    def name(self) -> str:
        return getattr(self, "_source", "musigen-judge (untrained)")

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform [B, T] at the judge's rate -> log-mel [B, n_mels, frames]."""
        return self.frontend(wav)

    def forward(self, mel: torch.Tensor) -> JudgeOutput:
        """Log-mel [B, n_mels, frames] -> logits and embedding."""
        x = self.blocks(self.input_norm(mel.unsqueeze(1)))  # [B, C, F', T']
        x = x.mean(dim=2)  # over frequency
        pooled = torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=-1)
        emb = self.embed(pooled)
        h = self.dropout(emb)
        return JudgeOutput(self.instrument_head(h), self.genre_head(h), emb)

    # ----- inference on clips -------------------------------------------------------------

    def _prepare(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        x = np.asarray(wav, dtype=np.float32)
        if x.ndim == 2:
            x = x.mean(axis=0)
        if x.ndim != 1:
            raise AudioError(f"judge input must be [samples] or [channels, samples], got shape {x.shape}")
        if x.size == 0:
            raise EmptyAudioError("judge input has zero samples")
        if not np.all(np.isfinite(x)):
            raise NonFiniteAudioError("judge input contains NaN or Inf")
        if sample_rate != self.config.sample_rate:
            import soxr

            x = soxr.resample(x, sample_rate, self.config.sample_rate).astype(np.float32)
        return x

    def window_starts(self, n_samples: int) -> list[int]:
        """Start samples of the analysis windows (at least one; the last one ends at the clip end)."""
        win, hop = self.config.window_samples, int(round(self.config.hop_s * self.config.sample_rate))
        if n_samples <= win:
            return [0]
        starts = list(range(0, n_samples - win + 1, hop))
        if starts[-1] + win < n_samples:
            starts.append(n_samples - win)
        return starts

    @torch.no_grad()
    def analyze(self, wav: np.ndarray, sample_rate: int, batch_size: int = 16) -> JudgeAnalysis:
        """Judge every window of a clip of any length (short clips are zero-padded)."""
        x = self._prepare(wav, sample_rate)
        win = self.config.window_samples
        if x.shape[0] < win:
            x = np.pad(x, (0, win - x.shape[0]))
        starts = self.window_starts(x.shape[0])
        was_training = self.training
        self.eval()
        try:
            outs = []
            for i in range(0, len(starts), batch_size):
                batch = torch.from_numpy(np.stack([x[s:s + win] for s in starts[i:i + batch_size]]))
                outs.append(self(self.features(batch)))
        finally:
            self.train(was_training)
        inst = torch.cat([o.instrument_logits for o in outs])
        gen = torch.cat([o.genre_logits for o in outs])
        return JudgeAnalysis(
            window_starts=np.array(starts, dtype=np.float64) / self.config.sample_rate,
            instrument_probs=torch.sigmoid(inst).numpy(),
            genre_probs=torch.softmax(gen, dim=-1).numpy(),
            embeddings=torch.cat([o.embedding for o in outs]).numpy(),
            logits=torch.cat([inst, gen], dim=-1).numpy(),
            instruments=list(self.config.instruments),
            genres=list(self.config.genres),
            thresholds=dict(self.config.thresholds),
        )

    def embed_audio(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """One penultimate-layer vector per window, [N, E] (the FAD embedder interface)."""
        return self.analyze(wav, sr).embeddings

    # ----- hub format ----------------------------------------------------------------------

    # save_pretrained / from_pretrained come from hub.Pretrained (fp16 weights by default:
    # the judge is shipped)
    config_class = JudgeConfig
    hub_kind = "judge"
    save_dtype = torch.float16

    @classmethod
    def _from_folder(cls, path: Path, *, device: str | torch.device | None,
                     dtype: torch.dtype | None) -> InstrumentJudge:
        model = super()._from_folder(path, device=device, dtype=dtype)
        model._source = f"musigen-judge:{path.name}"
        return model


#: The judge every evaluation uses unless told otherwise: the judge
#: trained on clean *and* codec round-tripped audio (`recipes/judge/demo_codec.yaml`): as
#: good on clean audio as the clean-only `judge` (held-out mAP 0.971 against 0.970) and far
#: better on codec outputs, which is what every model here writes (0.904 against 0.755
#: through the demo codec's latents). Older tables used the clean-only `judge`.
DEFAULT_JUDGE = "judge_codec"


def default_judge_dir() -> Path:
    """The shipped default judge `judge_codec`, found as every default checkpoint is
    (:mod:`musigen.checkpoints`); when missing, the first place it was looked for."""
    return expected_checkpoint(DEFAULT_JUDGE)


def load_judge(directory: str | os.PathLike[str] | None = None) -> InstrumentJudge:
    """Load the judge from a folder (the shipped one by default) with a clear error if absent."""
    if directory is None and find_checkpoint(DEFAULT_JUDGE) is None:
        raise CheckpointError(f"{missing_message(DEFAULT_JUDGE)}, or pass --judge DIR")
    path = Path(directory) if directory is not None else default_judge_dir()
    if not (path / hub.CONFIG_NAME).is_file():
        raise CheckpointError(
            f"no instrument judge at {path}; train one with `musigen train "
            f"fit --config recipes/judge/demo.yaml` or pass --judge DIR"
        )
    return InstrumentJudge.from_pretrained(path)
