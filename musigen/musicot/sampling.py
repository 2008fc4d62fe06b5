"""Autoregressive sampling for the MusiCoT LM: plan first, then audio (one window; long
pieces: :mod:`musigen.musicot.long_form`).

Classifier-free guidance runs the conditional and unconditional rows in one batch (rows
[0, B) have the text and reference, rows [B, 2B) have neither) and mixes their logits as
`uncond + scale * (cond - uncond)`. Both halves are fed the same sampled tokens, so the
unconditional half sees the same plan. Thoughts and audio have separate temperature, CFG
scale, top-k and top-p (MusiCoT's dual settings). If guidance is only on for the plan,
the unconditional half is dropped from the KV cache once the audio starts.

Reference guidance (ours; the paper does not say how the reference is weighted): with a
caption *and* a reference, a third group of rows [2B, 3B) sees the reference without the
caption, and the plan's logits become ``u + thought_cfg * (c - u) + ref_cfg * (r - u)``
(compositional CFG). A caption already names instruments and genre, so an LM trained on
captioned pieces leans on it and reads a reference only weakly next to it; `ref_cfg` > 0
adds the reference's own pull. 0 (the default) is plain CFG. The third group is dropped
once the plan is written; the audio follows the plan.

Plan guidance (ours): an LM trained with plan dropout (`MusiCoTModule.plan_dropout`) knows
the audio without a plan too. With `plan_cfg` > 0 a last group of rows keeps the caption and
the reference but sees NULL tokens where the plan is, and the audio logits become
``guided + plan_cfg * (c - no_plan)``: the audio is pushed toward what its plan (and so the
reference that shaped the plan) adds beyond the caption. 0 (the default) turns it off; an LM
trained without plan dropout has never seen a NULL plan, so leave it at 0 there.

Reference guidance on the audio (ours): with a reference and `ref_audio_cfg` > 0, one more
group of rows keeps the caption and the plan but sees NULL tokens where the reference is, and
the audio logits become ``guided + ref_audio_cfg * (c - no_ref)``. It pushes the sound itself
toward what the reference adds, where `ref_cfg` only pushes the plan. An LM trained with
reference dropout (the shipped recipes: 0.3) knows both rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from musigen.errors import ConfigError
from musigen.musicot.decode_step import StepDecoder
from musigen.musicot.lm import KVCache, Memory, MusiCoTLM
from musigen.musicot.plan_alignment import step_segments
from musigen.musicot.sampling_params import SamplingParams  # re-exported: the public home of the settings
from musigen.musicot.thoughts import ThoughtLayout


@dataclass
class GenerationOutput:
    plan: torch.Tensor  # [B, S, L] thought codes per segment and level (S = 0 without a plan)
    codes: torch.Tensor  # [B, K, T] the newly generated frames (a given prefix is not repeated)


def sample_logits(
    logits: torch.Tensor,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """[N, V] logits -> [N] token ids. Samples within the top-k, then within the top-p nucleus."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float()  # sample in fp32 even from a bf16 model
    if temperature != 1.0:  # dividing by 1 changes nothing, so skip the op
        logits = logits / temperature
    vocab = logits.shape[-1]
    if 0 < top_k < vocab:
        values, index = torch.topk(
            logits, top_k, dim=-1, sorted=0 < top_p < 1
        )  # top-p needs them sorted
    elif 0 < top_p < 1:
        values, index = torch.sort(logits, dim=-1, descending=True)
    else:
        return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)
    probs = torch.softmax(values, -1)
    if 0 < top_p < 1:
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest prefix reaching top_p
        probs = torch.softmax(values.masked_fill(drop, float("-inf")), -1)
    choice = torch.multinomial(probs, 1, generator=generator)
    return index.gather(-1, choice).squeeze(-1)


def guide(logits: torch.Tensor, rows: int, scale: float, ref_scale: float = 0.0) -> torch.Tensor:
    """Mix the conditional rows [:rows] and unconditional rows [rows:2*rows] of a doubled
    batch; a tripled batch adds `ref_scale` times its reference-only rows [2*rows:] minus
    the unconditional ones."""
    cond = logits[:rows]
    if logits.shape[0] == rows:
        return cond
    uncond = logits[rows : 2 * rows]
    out = cond if scale == 1.0 else uncond + scale * (cond - uncond)
    if logits.shape[0] > 2 * rows and ref_scale:
        out = out + ref_scale * (logits[2 * rows :] - uncond)
    return out


class _Decoder:
    """Feeds embeddings to the LM, with the KV cache or (for comparison) full recomputation.

    With the cache and an eval-mode model, single positions go through the one-position
    fast path (:class:`StepDecoder`, bit-identical to `run`); prefixes go through `run`.
    """

    def __init__(self, model: MusiCoTLM, memory: Memory, cache: KVCache | None) -> None:
        self.model, self.memory, self.cache = model, memory, cache
        self.history: torch.Tensor | None = None
        self.fast = StepDecoder(model) if cache is not None and not model.training else None

    def feed(self, parts: list[torch.Tensor]) -> torch.Tensor:
        x = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        if self.cache is not None:
            if self.fast is not None and x.shape[1] == 1:
                return self.fast.step(x[:, 0], self.memory, self.cache)
            return self.model.run(x, self.memory, self.cache)[:, -1]
        self.history = x if self.history is None else torch.cat([self.history, x], 1)
        return self.model.run(self.history, self.memory)[:, -1]

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep the batch rows at index tensor `rows`."""
        m = self.memory
        self.memory = Memory(
            [k.index_select(0, rows) for k in m.keys],
            [v.index_select(0, rows) for v in m.values],
            None if m.mask is None else m.mask.index_select(0, rows),
        )
        if self.cache is not None:
            self.cache.keep_rows(rows)
        if self.history is not None:
            self.history = self.history.index_select(0, rows)


def _plan_rows(ids: torch.Tensor, kinds: list[str], null_id: int) -> torch.Tensor:
    """Plan ids [b, n] for every row group: the no-plan group gets NULL tokens instead."""
    return torch.cat([torch.full_like(ids, null_id) if k == "noplan" else ids for k in kinds])


def _batch_of(*tensors: torch.Tensor | None, default: int | None) -> int:
    sizes = {t.shape[0] for t in tensors if t is not None}
    if default is not None:
        sizes.add(default)
    if len(sizes) > 1:
        raise ConfigError(f"inputs disagree on the batch size: {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def _check_layout(model: MusiCoTLM, layout: ThoughtLayout | None) -> ThoughtLayout:
    cfg = model.config
    if layout is None:
        raise ConfigError("a thought layout is needed to generate or read thought tokens")
    if (layout.levels, layout.codebook_size) != (cfg.thought_levels, cfg.thought_codebook_size):
        raise ConfigError(
            f"thought layout {layout.levels}x{layout.codebook_size} does not match the LM's "
            f"{cfg.thought_levels}x{cfg.thought_codebook_size}"
        )
    return layout


@dataclass
class _Run:
    """What one :func:`generate` call carries from its setup through the plan and audio loops.

    The batch holds `len(kinds)` row groups of `b` rows each; `kinds[g]` names group g
    ("cond", "uncond", "ref", "noplan", "noref"; see the module docstring).
    """

    model: MusiCoTLM
    params: SamplingParams
    generator: torch.Generator | None
    layout: ThoughtLayout | None
    device: torch.device
    b: int
    kinds: list[str]
    plan_groups: int  # the leading groups whose thought logits guide the plan
    guide_audio: bool  # the unconditional group also guides the audio
    to_plan: bool  # a no-plan group guides the audio (plan_cfg)
    to_ref: bool  # a no-reference group guides the audio (ref_audio_cfg)
    dec: _Decoder
    pending: list[torch.Tensor]  # embeddings to feed before the next logits
    bar: tqdm
    num_segments: int
    n_plan: int  # plan tokens (segments x levels)
    gen_plan: bool  # sample the plan (False: follow the given one, or none)
    plan_ids: torch.Tensor | None  # the given plan's flat ids [B, n_plan]
    prefix_codes: torch.Tensor | None
    prefix_len: int
    num_frames: int
    n_steps: int  # delay-pattern steps of prefix + new frames

    @property
    def rows(self) -> int:
        return len(self.kinds) * self.b


def _setup(
    model: MusiCoTLM,
    *,
    num_frames: int,
    text_states: torch.Tensor | None,
    text_mask: torch.Tensor | None,
    batch_size: int | None,
    layout: ThoughtLayout | None,
    num_segments: int,
    plan: torch.Tensor | None,
    ref: torch.Tensor | None,
    prefix_codes: torch.Tensor | None,
    params: SamplingParams,
    seed: int | None,
    generator: torch.Generator | None,
    use_cache: bool,
    progress: bool,
) -> _Run:
    """Check the inputs, choose the row groups guidance needs, and feed nothing yet: the
    reference and BOS wait in `pending` for the first logits."""
    cfg = model.config
    device = model.positions.device
    if num_frames < 0 or num_segments < 0:
        raise ConfigError("num_frames and num_segments must be >= 0")
    if generator is None and seed is not None:
        generator = torch.Generator(device).manual_seed(int(seed))
    if ref is not None and ref.dim() == 2:
        ref = ref[None]
    b = _batch_of(
        text_states,
        plan,
        prefix_codes,
        None if ref is None or ref.shape[0] == 1 else ref,
        default=batch_size,
    )
    thoughts = plan is not None or num_segments > 0 or ref is not None
    if thoughts and cfg.plan_free:
        raise ConfigError("this LM is plan_free (MusicGen's layout): it takes no plan, "
                          "plan segments or reference")
    layout = _check_layout(model, layout) if thoughts else layout
    for name, codes in (("ref", ref), ("plan", plan)):
        if codes is not None and (
            codes.dim() != 3
            or (codes.numel() and (codes.min() < 0 or codes.max() >= cfg.thought_codebook_size))
        ):
            raise ConfigError(
                f"{name} must be [B, S, levels] thought codes in 0..{cfg.thought_codebook_size - 1}"
            )
    ref_ids = None
    if ref is not None and ref.shape[1] > 0:
        ref_ids = layout.flatten(ref.to(device)).expand(b, -1)  # type: ignore[union-attr]
    plan_ids = None
    if plan is not None:
        if plan.dim() != 3 or plan.shape[-1] != cfg.thought_levels:
            raise ConfigError(
                f"plan must be [B, S, {cfg.thought_levels}] thought codes, got {tuple(plan.shape)}"
            )
        plan_ids = layout.flatten(plan.to(device))  # type: ignore[union-attr]
        num_segments = plan.shape[1]
    n_plan = num_segments * cfg.thought_levels
    gen_plan = plan is None and n_plan > 0
    prefix_len = 0 if prefix_codes is None else prefix_codes.shape[-1]
    if (
        prefix_codes is not None
        and prefix_codes.numel()
        and (prefix_codes.min() < 0 or prefix_codes.max() >= cfg.codebook_size)
    ):
        raise ConfigError(f"prefix codes must be in 0..{cfg.codebook_size - 1}")
    audio = num_frames > 0
    n_steps = model.pattern.steps_for(prefix_len + num_frames) if audio else 0
    n_ref = 0 if ref_ids is None else ref_ids.shape[1]
    start = 0 if cfg.plan_free else 1  # BOS
    total = n_ref + start + n_plan + (n_steps if audio else 0)  # the last step is never fed back

    has_cond = text_states is not None or ref_ids is not None
    guide_ref = gen_plan and ref_ids is not None and text_states is not None and params.ref_cfg > 0
    guide_plan = has_cond and gen_plan and (params.thought_cfg != 1.0 or guide_ref)
    guide_audio = has_cond and audio and params.audio_cfg != 1.0
    to_plan = audio and n_plan > 0 and params.plan_cfg > 0
    to_ref = audio and ref_ids is not None and params.ref_audio_cfg > 0
    # row groups of b rows each: text + ref, neither, ref only, text + ref without the plan,
    # text + plan without the ref (the last two guide only the audio, so they come last)
    kinds = ["cond"] + ["uncond"] * (guide_plan or guide_audio) + ["ref"] * guide_ref
    kinds += ["noplan"] * to_plan + ["noref"] * to_ref
    groups, plan_groups = len(kinds), len(kinds) - to_plan - to_ref
    rows = groups * b
    drop = torch.tensor([k in ("uncond", "ref") for k in kinds], device=device)
    drop = drop.repeat_interleave(b)  # text: the cond, no-plan and no-reference groups keep it
    if text_states is not None and rows > b:
        text_states = text_states.to(device).repeat(groups, 1, 1)
        text_mask = None if text_mask is None else text_mask.to(device).repeat(groups, 1)
    memory = model.prepare_memory(
        None if text_states is None else text_states.to(device),
        None if text_mask is None else text_mask.to(device),
        drop,
        batch=rows,
    )
    cache = model.new_cache(rows, total) if use_cache else None
    dec = _Decoder(model, memory, cache)

    pending: list[torch.Tensor] = []
    if ref_ids is not None:
        if rows > b:  # the unconditional and no-reference groups lose the reference
            nulls = torch.full_like(ref_ids, model.null_id)
            ref_ids = torch.cat([nulls if k in ("uncond", "noref") else ref_ids for k in kinds])
        pending.append(model.embed_thoughts(ref_ids, reference=True))
    pending.append(model.sequence_start(rows))
    bar = tqdm(
        total=(n_plan if gen_plan else 0) + n_steps,
        disable=not progress,
        desc="MusiCoT",
        leave=False,
    )
    return _Run(
        model, params, generator, layout, device, b, kinds, plan_groups, bool(guide_audio),
        bool(to_plan), bool(to_ref), dec, pending, bar, num_segments, n_plan, gen_plan,
        plan_ids, prefix_codes, prefix_len, num_frames, n_steps,
    )


def _write_plan(run: _Run) -> torch.Tensor | None:
    """Sample the plan token by token (or queue the given one): its flat ids [b, n_plan]."""
    model, params, b = run.model, run.params, run.b
    if not run.gen_plan:
        if run.n_plan:
            ids = run.plan_ids.expand(b, -1)  # type: ignore[union-attr]
            run.pending.append(model.embed_thoughts(_plan_rows(ids, run.kinds, model.null_id)))
        return run.plan_ids
    plan_ids = torch.empty(b, run.n_plan, dtype=torch.long, device=run.device)
    levels = run.layout.level_ids(run.num_segments).tolist()  # type: ignore[union-attr]
    size = model.config.thought_codebook_size
    for i in range(run.n_plan):
        h = run.dec.feed(run.pending)
        logits = guide(
            model.thought_logits(h[: run.plan_groups * b]), b, params.thought_cfg, params.ref_cfg
        )
        lo = levels[i] * size
        tok = lo + sample_logits(
            logits[:, lo : lo + size],
            params.thought_temperature,
            params.thought_top_k,
            params.thought_top_p,
            run.generator,
        )
        plan_ids[:, i] = tok
        run.pending = [model.embed_thoughts(_plan_rows(tok[:, None], run.kinds, model.null_id))]
        run.bar.update(1)
    return plan_ids


def _write_audio(
    run: _Run, plan_ids: torch.Tensor | None, plan_offset: float, segment_frames: float
) -> torch.Tensor:
    """Sample the audio steps after the plan: the new frames' codes [b, K, num_frames]."""
    model, params, b, kinds = run.model, run.params, run.b, run.kinds
    cfg, pattern, device, dec = model.config, model.pattern, run.device, run.dec
    n_plan, n_steps, pending = run.n_plan, run.n_steps, run.pending
    # the reference-only rows guide the plan only, and without audio guidance the
    # unconditional rows go too
    audio_kinds = [k for k in kinds if k == "cond" or (k == "uncond" and run.guide_audio)
                   or k in ("noplan", "noref")]
    rows = run.rows
    if audio_kinds != kinds:
        index = torch.cat([torch.arange(b, device=device) + kinds.index(k) * b
                           for k in audio_kinds])
        dec.keep_rows(index)
        pending = [p.index_select(0, index) for p in pending]
        rows = len(audio_kinds) * b
    cond = None  # [rows, n_steps, dim]: each step's plan segment, for a plan_aligned LM
    if cfg.plan_aligned and n_plan:
        if segment_frames <= 0:
            raise ConfigError("a plan_aligned LM needs segment_frames > 0 to follow a plan")
        at = step_segments(plan_offset, n_steps, segment_frames, run.num_segments).to(device)
        assert plan_ids is not None  # n_plan > 0: sampled or given
        cond = model.plan_conditioning(
            _plan_rows(plan_ids.expand(b, -1), audio_kinds, model.null_id),
            run.layout.segment_ids(run.num_segments).to(device),  # type: ignore[union-attr]
            at,
            run.num_segments,
        )
    values, known = pattern.template(b, run.prefix_len + run.num_frames, run.prefix_codes, device)
    step_known = known.all(0).all(0).tolist()
    some_known = known.any(0).any(0).tolist()
    first = step_known.index(False) if False in step_known else n_steps
    out = values.clone()
    block = model.audio_start(rows)  # SEP (or the pad step) predicts step 0, step i predicts i+1
    if first:
        block = torch.cat([block, model.embed_audio(values[:, :, :first].repeat(rows // b, 1, 1))], 1)
    pending.append(block if cond is None else block + cond[:, : first + 1])
    run.bar.update(first)
    k, card = cfg.num_codebooks, cfg.codebook_size
    fast = dec.fast
    for s in range(first, n_steps):
        h = dec.feed(pending)
        logits = fast.audio_logits(h) if fast is not None else model.audio_logits(h)
        mixed = guide(logits[: (1 + run.guide_audio) * b], b, params.audio_cfg)
        if run.to_plan:
            at = audio_kinds.index("noplan") * b
            mixed = mixed + params.plan_cfg * (logits[:b] - logits[at : at + b])
        if run.to_ref:
            at = audio_kinds.index("noref") * b
            mixed = mixed + params.ref_audio_cfg * (logits[:b] - logits[at : at + b])
        logits = mixed.reshape(b * k, card)
        tok = sample_logits(
            logits, params.audio_temperature, params.top_k, params.top_p, run.generator
        ).view(b, k)
        if some_known[s]:
            tok = torch.where(known[:, :, s], values[:, :, s], tok)
        out[:, :, s] = tok
        if s + 1 < n_steps:
            fed = tok.repeat(rows // b, 1)
            x = fast.embed_audio(fed)[:, None] if fast is not None else model.embed_audio(fed[:, :, None])
            pending = [x if cond is None else x + cond[:, s + 1 : s + 2]]
        run.bar.update(1)
    return pattern.deinterleave(out)[:, :, run.prefix_len:]


@torch.inference_mode()
def generate(
    model: MusiCoTLM,
    *,
    num_frames: int,
    text_states: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
    batch_size: int | None = None,
    layout: ThoughtLayout | None = None,
    num_segments: int = 0,
    plan: torch.Tensor | None = None,
    ref: torch.Tensor | None = None,
    prefix_codes: torch.Tensor | None = None,
    params: SamplingParams | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    progress: bool = False,
    plan_offset: float = 0.0,
    segment_frames: float = 0.0,
) -> GenerationOutput:
    """Sample a plan of `num_segments` segments (or follow the given `plan` [B, S, L]), then
    `num_frames` audio frames continuing `prefix_codes` [B, K, P].

    `ref` [B or 1, R, n] holds reference thought codes (n <= L coarsest levels), placed as
    a prefix. `seed` builds a fresh generator, so the same seed gives the same output.
    A `plan_aligned` LM also needs `segment_frames` (audio frames per plan segment) and
    `plan_offset` (frames from the plan's first segment to the first frame, prefix included).
    """
    run = _setup(
        model, num_frames=num_frames, text_states=text_states, text_mask=text_mask,
        batch_size=batch_size, layout=layout, num_segments=num_segments, plan=plan, ref=ref,
        prefix_codes=prefix_codes, params=params or SamplingParams(), seed=seed,
        generator=generator, use_cache=use_cache, progress=progress,
    )
    plan_ids = _write_plan(run)
    cfg = model.config
    out_plan = (
        run.layout.unflatten(plan_ids)  # type: ignore[union-attr]
        if run.n_plan
        else torch.zeros(run.b, 0, cfg.thought_levels, dtype=torch.long, device=run.device)
    )
    if not num_frames:
        codes = torch.zeros(run.b, cfg.num_codebooks, 0, dtype=torch.long, device=run.device)
    else:
        codes = _write_audio(run, plan_ids, plan_offset, segment_frames)
    run.bar.close()
    return GenerationOutput(out_plan, codes)
