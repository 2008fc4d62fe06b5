"""The MusiCoT language model: one decoder-only transformer for the plan and the audio.

Sequence (one row of the batch):

    [ref thoughts (R, condition only)] [BOS] [plan thoughts (N)] [SEP] [audio steps (S)]

The text prompt enters by cross-attention. Thought tokens have their own embedding and
output head; each audio codebook has its own embedding table (the K tables are summed per
step, as in MusicGen) and its own output head. The loss is the audio cross-entropy (mean
over codebooks, pad positions excluded) plus `thought_loss_weight` times the plan's.

Decode speed comes from keeping per-step Python work small: a fused QKV projection, a
preallocated KV cache written in place, the text's cross-attention keys/values computed
once per generation, a precomputed sinusoidal position table, all K audio heads in one
matmul, and no mask built per step (a single new query may attend to the whole cache).
Single decode positions take the leaner, bit-identical path in
:mod:`musigen.musicot.decode_step`; `run` is the reference for training and prefill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from musigen import hub
from musigen.errors import ConfigError
from musigen.musicot.patterns import DelayPattern
from musigen.musicot.plan_alignment import gather_steps, segment_means, step_segments

#: Transformer sizes per preset: (dim, layers, heads). `base` is MusicGen-small.
PRESETS: dict[str, tuple[int, int, int]] = {
    "debug": (64, 2, 4),
    "demo": (256, 6, 4),
    "base": (1024, 24, 16),
}


@dataclass
class LMConfig:
    """Sizes of the LM; saved as config.json beside the weights."""

    dim: int = 256
    num_layers: int = 6
    num_heads: int = 4
    ffn_mult: int = 4
    num_codebooks: int = 4
    codebook_size: int = 2048
    delays: list[int] = field(default_factory=list)  # empty = MusicGen's [0, 1, ..., K-1]
    thought_levels: int = 4
    thought_codebook_size: int = 256
    text_dim: int = 384  # all-MiniLM-L6-v2 token states
    max_seq_len: int = 2048
    dropout: float = 0.0
    thought_loss_weight: float = 1.0
    #: add the current plan segment to every audio step's input (musicot.plan_alignment)
    plan_aligned: bool = False
    #: FFN width; 0 = ffn_mult * dim (a converted MusicGen states its own)
    ffn_dim: int = 0
    #: MusicGen's sequence: no BOS, plan or SEP positions; the audio starts from an all-pad
    #: step (MusicGen's decoder start token). Such an LM takes no plan and no reference.
    plan_free: bool = False
    #: how the sinusoid table is computed: "musigen" (ours) or "musicgen" (the same table in
    #: MusicGen's floating-point order; ours differs by up to 1.2e-4 at position 2048)
    positions: str = "musigen"

    #: keys the shipped demo LM's config.json predates (they take their default)
    OPTIONAL_KEYS = frozenset({"plan_aligned", "ffn_dim", "plan_free", "positions"})

    def __post_init__(self) -> None:
        if not self.delays:
            self.delays = list(range(self.num_codebooks))
        self.delays = [int(d) for d in self.delays]
        if self.dim % self.num_heads:
            raise ConfigError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if len(self.delays) != self.num_codebooks:
            raise ConfigError(f"{len(self.delays)} delays for {self.num_codebooks} codebooks")
        for name in (
            "dim",
            "num_layers",
            "ffn_mult",
            "num_codebooks",
            "codebook_size",
            "thought_levels",
            "thought_codebook_size",
            "text_dim",
            "max_seq_len",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"LM config {name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0 or self.thought_loss_weight < 0:
            raise ConfigError("dropout must be in [0, 1) and thought_loss_weight >= 0")
        if self.ffn_dim < 0 or self.positions not in ("musigen", "musicgen"):
            raise ConfigError(f"need ffn_dim >= 0 and positions 'musigen' or 'musicgen', got "
                              f"{self.ffn_dim}, {self.positions!r}")
        if self.plan_free and self.plan_aligned:
            raise ConfigError("a plan_free LM cannot be plan_aligned")

    @classmethod
    def preset(cls, name: str, **overrides: object) -> LMConfig:
        """`debug` (tests, CI), `demo` (shipped CPU checkpoint) or `base` (MusicGen-small)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown LM preset {name!r}; choose one of {sorted(PRESETS)}")
        dim, layers, heads = PRESETS[name]
        sizes = {"dim": dim, "num_layers": layers, "num_heads": heads}
        return cls(**{**sizes, **overrides})  # type: ignore[arg-type]

    @property
    def ffn_width(self) -> int:
        return self.ffn_dim or self.ffn_mult * self.dim

    @property
    def thought_vocab(self) -> int:
        return self.thought_levels * self.thought_codebook_size

    @property
    def pattern(self) -> DelayPattern:
        return DelayPattern(tuple(self.delays), pad_id=self.codebook_size)


@dataclass
class Memory:
    """Cross-attention keys/values of the text condition, one pair per layer, reused every step."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor | None  # bool [B, 1, 1, Tm], True = attend; None = attend to all


class KVCache:
    """Preallocated self-attention keys/values per layer, filled in place.

    Each layer's keys and values share one tensor `kv[layer]` [2, B, H, max_len, hd], so a
    decode step writes both with one copy (`kv[layer][0]` keys, `kv[layer][1]` values).
    """

    def __init__(
        self, config: LMConfig, batch: int, max_len: int, device: torch.device, dtype: torch.dtype
    ):
        if max_len > config.max_seq_len:
            raise ConfigError(
                f"sequence of {max_len} positions exceeds the LM's max_seq_len {config.max_seq_len}"
            )
        hd = config.dim // config.num_heads
        shape = (2, batch, config.num_heads, max_len, hd)
        self.kv = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.num_layers)]
        self.length = 0
        self.max_len = max_len

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep the batch rows at index tensor `rows` (drop guidance row groups once they are
        no longer needed)."""
        self.kv = [kv.index_select(1, rows) for kv in self.kv]


def _sinusoids(length: int, dim: int, order: str = "musigen") -> torch.Tensor:
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32)
    if order == "musicgen":  # transformers' MusicgenSinusoidalPositionalEmbedding, op for op
        freqs = torch.exp(steps * -(math.log(10000) / max(half - 1, 1)))
    else:
        freqs = torch.exp(-math.log(10000.0) * steps / max(half - 1, 1))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * freqs[None, :]
    table = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    return F.pad(table, (0, dim - 2 * half))


def _weight(fan_in: int, fan_out: int) -> nn.Parameter:
    """A projection stored [in, out]: for a few rows, `x @ w` runs ~1.5x faster than F.linear."""
    return nn.Parameter(torch.randn(fan_in, fan_out) * 0.02)


class Block(nn.Module):
    """Pre-norm decoder block: causal self-attention, cross-attention to the text, GELU MLP."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        d, f = config.dim, config.ffn_width
        self.heads, self.head_dim, self.p = config.num_heads, d // config.num_heads, config.dropout
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = _weight(d, 3 * d), _weight(d, d)  # fused Q, K, V
        self.cross_q, self.cross_kv, self.cross_proj = (
            _weight(d, d),
            _weight(d, 2 * d),
            _weight(d, d),
        )
        self.fc1, self.fc2 = _weight(d, f), _weight(f, d)

    def memory_kv(self, mem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, _ = mem.shape
        k, v = (
            (mem @ self.cross_kv)
            .view(b, t, 2, self.heads, self.head_dim)
            .permute(2, 0, 3, 1, 4)
            .unbind(0)
        )
        return k, v

    @staticmethod
    def _norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        # the functional call skips nn.Module dispatch, which is a visible share of a decode step
        return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)

    def _drop(self, y: torch.Tensor) -> torch.Tensor:
        return F.dropout(y, self.p, True) if self.training and self.p > 0 else y

    def forward(
        self, x: torch.Tensor, layer: int, memory: Memory, cache: KVCache | None
    ) -> torch.Tensor:
        b, t, d = x.shape
        p = self.p if self.training else 0.0
        qkv = self._norm(x, self.norm1) @ self.qkv
        q, k, v = qkv.view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        mask = None
        causal = t > 1
        if cache is not None:
            start = cache.length
            keys, values = cache.kv[layer]
            keys.narrow(2, start, t).copy_(k)  # written in place: no per-step allocation
            values.narrow(2, start, t).copy_(v)
            k, v = keys.narrow(2, 0, start + t), values.narrow(2, 0, start + t)
            if start and t > 1:  # a chunk after cached positions: causal with an offset
                pos = torch.arange(start + t, device=x.device)
                mask, causal = pos[None, :] <= pos[start:, None], False
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        x = x + self._drop(a.transpose(1, 2).reshape(b, t, d) @ self.proj)
        q = (
            (self._norm(x, self.norm2) @ self.cross_q)
            .view(b, t, self.heads, self.head_dim)
            .transpose(1, 2)
        )
        a = F.scaled_dot_product_attention(
            q, memory.keys[layer], memory.values[layer], attn_mask=memory.mask, dropout_p=p
        )
        x = x + self._drop(a.transpose(1, 2).reshape(b, t, d) @ self.cross_proj)
        return x + self._drop(F.gelu(self._norm(x, self.norm3) @ self.fc1) @ self.fc2)


@dataclass
class LMOutput:
    """Training outputs: total loss = audio_loss + thought_loss_weight * thought_loss."""

    loss: torch.Tensor
    audio_loss: torch.Tensor
    thought_loss: torch.Tensor
    audio_logits: torch.Tensor  # [B, S, K, card], aligned with the interleaved targets
    thought_logits: torch.Tensor  # [B, N, thought_vocab]


class MusiCoTLM(hub.Pretrained, nn.Module):
    """Plan-then-audio decoder. See the module docstring for the sequence layout."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.pattern = config.pattern
        d, k, card = config.dim, config.num_codebooks, config.codebook_size
        v = config.thought_vocab
        self.bos_id, self.sep_id, self.null_id = v, v + 1, v + 2
        self.text_proj = nn.Linear(config.text_dim, d)
        self.null_text = nn.Parameter(torch.randn(1, d) * 0.02)
        self.thought_emb = nn.Embedding(v + 3, d)
        self.ref_type = nn.Parameter(torch.randn(d) * 0.02)
        self.audio_emb = nn.Parameter(
            torch.randn(k, card + 1, d) * 0.02
        )  # one table per codebook (+ pad)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(d)
        self.thought_head = _weight(d, v)
        self.audio_heads = nn.Parameter(torch.randn(d, k, card) * 0.02)  # head k is [:, k, :]
        table = _sinusoids(config.max_seq_len, d, config.positions)
        self.register_buffer("positions", table, persistent=False)
        self.register_buffer("audio_offsets", torch.arange(k) * (card + 1), persistent=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
        if config.plan_aligned:  # zero: starts as the LM without it (for fine-tunes)
            self.plan_proj = nn.Linear(d, d, bias=False)
            nn.init.zeros_(self.plan_proj.weight)

    # -- inputs ------------------------------------------------------------------------
    def prepare_memory(
        self,
        text_states: torch.Tensor | None,
        text_mask: torch.Tensor | None = None,
        drop: torch.Tensor | None = None,
        batch: int | None = None,
    ) -> Memory:
        """Project the text and compute every layer's cross-attention K/V once.

        `text_states=None` (or `drop[b]`, or an all-padding row) gives the learned null condition.
        """
        null = self.null_text.to(self.positions.dtype)
        if text_states is None:
            if batch is None:
                raise ConfigError("give text_states or a batch size for the null condition")
            mem, mask = null.expand(batch, 1, -1), None
        else:
            if text_states.dim() != 3 or text_states.shape[-1] != self.config.text_dim:
                raise ConfigError(
                    f"text_states must be [B, T, {self.config.text_dim}], "
                    f"got {tuple(text_states.shape)}"
                )
            b, t, _ = text_states.shape
            if text_mask is not None and tuple(text_mask.shape) != (b, t):
                raise ConfigError(f"text_mask must be [{b}, {t}], got {tuple(text_mask.shape)}")
            keep = (
                torch.ones(b, t, dtype=torch.bool, device=text_states.device)
                if text_mask is None
                else text_mask.bool()
            )
            null_row = ~keep.any(-1)
            if drop is not None:
                null_row = null_row | drop.bool()
            mem = self.text_proj(text_states.to(null.dtype))
            if bool(null_row.any()):
                first = torch.zeros(t, dtype=torch.bool, device=mem.device)
                first[0] = True
                mem = torch.where(null_row[:, None, None] & first[None, :, None], null, mem)
                keep = torch.where(null_row[:, None], first[None, :], keep)
            mask = None if bool(keep.all()) else keep[:, None, None, :]
        keys, values = zip(*(block.memory_kv(mem) for block in self.blocks))
        return Memory(list(keys), list(values), mask)

    def embed_thoughts(self, ids: torch.Tensor, reference: bool = False) -> torch.Tensor:
        """[B, N] thought ids (or BOS/SEP/NULL) -> [B, N, dim]; a reference gets a type vector."""
        x = self.thought_emb(ids)
        return x + self.ref_type if reference else x

    def plan_conditioning(self, plan_ids: torch.Tensor, token_segments: torch.Tensor,
                          steps: torch.Tensor, num_segments: int) -> torch.Tensor:
        """[B, N] plan ids (NULL allowed), [N] segment of each, [B or 1, n] segment of each
        audio step -> [B, n, dim], added to the inputs that predict those steps."""
        means = segment_means(self.thought_emb(plan_ids), token_segments, num_segments)
        return gather_steps(self.plan_proj(means), steps)

    def embed_special(self, token: int, batch: int) -> torch.Tensor:
        return self.thought_emb.weight[token].expand(batch, 1, -1)

    def sequence_start(self, batch: int) -> torch.Tensor:
        """What precedes the plan: BOS [B, 1, dim], or nothing [B, 0, dim] when plan_free."""
        if self.config.plan_free:
            return self.thought_emb.weight.new_zeros(batch, 0, self.config.dim)
        return self.embed_special(self.bos_id, batch)

    def audio_start(self, batch: int) -> torch.Tensor:
        """The input that predicts audio step 0 [B, 1, dim]: SEP, or (plan_free) the all-pad
        step MusicGen starts its decoder with."""
        if not self.config.plan_free:
            return self.embed_special(self.sep_id, batch)
        pad = torch.full((batch, self.config.num_codebooks, 1), self.config.codebook_size,
                         dtype=torch.long, device=self.audio_emb.device)
        return self.embed_audio(pad)

    def embed_audio(self, steps: torch.Tensor) -> torch.Tensor:
        """[B, K, S] interleaved codes (pad allowed) -> [B, S, dim], the K embeddings summed."""
        flat = self.audio_emb.view(-1, self.config.dim)
        return F.embedding(steps.transpose(1, 2) + self.audio_offsets, flat).sum(2)

    # -- trunk and heads ---------------------------------------------------------------
    def run(self, x: torch.Tensor, memory: Memory, cache: KVCache | None = None) -> torch.Tensor:
        """Transformer over x [B, T, dim] at positions cache.length.. (0 without a cache)."""
        start = 0 if cache is None else cache.length
        if start + x.shape[1] > self.config.max_seq_len:
            raise ConfigError(
                f"sequence of {start + x.shape[1]} positions exceeds "
                f"max_seq_len {self.config.max_seq_len}"
            )
        x = x + self.positions[start : start + x.shape[1]]
        if self.training and self.config.dropout > 0:
            x = F.dropout(x, self.config.dropout)
        for i, block in enumerate(self.blocks):
            x = block(x, i, memory, cache)
        if cache is not None:
            cache.length = start + x.shape[1]
        return self.norm(x)

    def thought_logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.thought_head

    def audio_logits(self, h: torch.Tensor) -> torch.Tensor:
        """[..., dim] -> [..., K, card]: all K codebook heads in one matmul."""
        k, card = self.config.num_codebooks, self.config.codebook_size
        return (h @ self.audio_heads.view(-1, k * card)).unflatten(-1, (k, card))

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        p = self.positions
        return KVCache(self.config, batch, max_len, p.device, p.dtype)

    # -- training ----------------------------------------------------------------------
    def _check_ids(self, ids: torch.Tensor, name: str, allow_null: bool = False) -> None:
        v = self.config.thought_vocab
        bad = (ids < 0) | (ids >= v)
        if allow_null:
            bad &= ids != self.null_id
        if ids.dim() != 2 or bool(bad.any()):
            extra = f" or the NULL id {self.null_id}" if allow_null else ""
            raise ConfigError(f"{name} must be [B, N] thought ids in 0..{v - 1}{extra}")

    def forward(
        self,
        codes: torch.Tensor,
        text_states: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        plan: torch.Tensor | None = None,
        ref: torch.Tensor | None = None,
        drop_text: torch.Tensor | None = None,
        drop_ref: torch.Tensor | None = None,
        drop_plan: torch.Tensor | None = None,
        token_segments: torch.Tensor | None = None,
        plan_offset: torch.Tensor | None = None,
        segment_frames: float = 0.0,
    ) -> LMOutput:
        """Teacher-forced losses for frame-aligned `codes` [B, K, T] and flat `plan` ids [B, N].

        `ref` [B, R] are reference thought ids (NULL id allowed); `drop_text`/`drop_ref` [B]
        bool replace a row's text with the null condition / its reference with NULL tokens,
        which is how the training module does condition dropout for CFG. `drop_plan` [B]
        replaces a row's plan with NULL tokens (same positions) and leaves it out of the
        thought loss: the audio then learns a no-plan mode, which plan guidance
        (`SamplingParams.plan_cfg`) contrasts with.

        A `plan_aligned` LM also needs `token_segments` [N] (the segment of each flat plan
        token, `ThoughtLayout.segment_ids`), `segment_frames` and `plan_offset` [B] (frames
        from the plan's first segment to the excerpt's first frame; default 0).
        """
        cfg = self.config
        if codes.dim() != 3 or codes.shape[1] != cfg.num_codebooks or codes.shape[-1] < 1:
            raise ConfigError(
                f"codes must be [B, {cfg.num_codebooks}, T>0], got {tuple(codes.shape)}"
            )
        if codes.min() < 0 or codes.max() >= cfg.codebook_size:
            raise ConfigError(f"audio codes must be in 0..{cfg.codebook_size - 1}")
        b = codes.shape[0]
        parts = []
        if ref is not None and ref.shape[-1] > 0:
            self._check_ids(ref, "ref", allow_null=True)
            if drop_ref is not None:
                ref = torch.where(drop_ref.bool()[:, None], torch.full_like(ref, self.null_id), ref)
            parts.append(self.embed_thoughts(ref, reference=True))
        r = parts[0].shape[1] if parts else 0
        plan = codes.new_zeros(b, 0) if plan is None else plan
        self._check_ids(plan, "plan")
        n = plan.shape[1]
        if cfg.plan_free and (n or r):
            raise ConfigError("this LM is plan_free (MusicGen's layout): it takes no plan or ref")
        plan_in, plan_target = plan, plan
        if drop_plan is not None and n:
            if tuple(drop_plan.shape) != (b,):
                raise ConfigError(f"drop_plan must be [{b}] bools, got {tuple(drop_plan.shape)}")
            dropped = drop_plan.bool()[:, None]
            plan_in = torch.where(dropped, torch.full_like(plan, self.null_id), plan)
            plan_target = plan.masked_fill(dropped, -100)
        steps = self.pattern.interleave(codes)  # [B, K, S]
        audio_in = torch.cat([self.audio_start(b),
                              self.embed_audio(steps[:, :, :-1])], 1)  # predicts steps 0..S-1
        if cfg.plan_aligned and n:
            if token_segments is None or segment_frames <= 0:
                raise ConfigError("a plan_aligned LM needs token_segments and segment_frames > 0")
            segments = int(token_segments.max()) + 1
            at = step_segments(0.0 if plan_offset is None else plan_offset, steps.shape[-1],
                               segment_frames, segments)
            audio_in = audio_in + self.plan_conditioning(plan_in, token_segments, at, segments)
        parts += [self.sequence_start(b), self.embed_thoughts(plan_in), audio_in]
        memory = self.prepare_memory(text_states, text_mask, drop_text, batch=b)
        h = self.run(torch.cat(parts, 1), memory)
        thought_logits = self.thought_logits(h[:, r : r + n])
        audio_logits = self.audio_logits(h[:, h.shape[1] - audio_in.shape[1] :])
        valid = self.pattern.valid_mask(codes.shape[-1], codes.device)  # [K, S]
        targets = steps.masked_fill(~valid, -100).transpose(1, 2)  # [B, S, K]
        per_book = F.cross_entropy(
            audio_logits.flatten(0, 1).transpose(1, 2),
            targets.flatten(0, 1),
            ignore_index=-100,
            reduction="none",
        )  # [B*S, K]
        counts = valid.sum(-1).clamp(min=1) * b
        audio_loss = (per_book.sum(0) / counts).mean()
        thought_loss = (
            F.cross_entropy(thought_logits.flatten(0, 1), plan_target.flatten(), ignore_index=-100)
            if n and bool((plan_target >= 0).any())
            else audio_loss.new_zeros(())
        )
        loss = audio_loss + cfg.thought_loss_weight * thought_loss
        return LMOutput(loss, audio_loss, thought_loss, audio_logits, thought_logits)

    # -- hub: save_pretrained / from_pretrained come from hub.Pretrained ---------------
    config_class = LMConfig
    hub_kind = "MusiCoT LM"
