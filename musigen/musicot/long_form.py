"""Long-form MusiCoT generation: plan the whole piece, then write audio window by window.

The LM's context bounds one window. The plan is drawn once for the whole duration; each
window follows the plan segments that overlap its frames and continues from the previous
window's tail, so there are no seams where a window starts cold. Training crops use the same
segment rule (:func:`segments_for_span`), so a window sees the plan slice it was trained on.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from musigen.errors import ConfigError
from musigen.musicot.lm import MusiCoTLM
from musigen.musicot.sampling import GenerationOutput, SamplingParams, generate
from musigen.musicot.thoughts import ThoughtLayout


def segments_for_span(
    start_frame: int, end_frame: int, segment_frames: float, num_segments: int
) -> tuple[int, int]:
    """Plan segments [s0, s1) overlapping audio frames [start, end); training uses the same rule."""
    if segment_frames <= 0 or end_frame <= start_frame:
        raise ConfigError(
            f"need segment_frames > 0 and a non-empty span, got {segment_frames}, "
            f"{start_frame}..{end_frame}"
        )
    s0 = min(int(start_frame // segment_frames), num_segments - 1)
    s1 = min(max(int(-(-end_frame // segment_frames)), s0 + 1), num_segments)
    return s0, s1



@torch.inference_mode()
def generate_long(
    model: MusiCoTLM,
    *,
    num_frames: int,
    window_frames: int,
    context_frames: int,
    segment_frames: float = 0.0,
    text_states: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
    batch_size: int | None = None,
    layout: ThoughtLayout | None = None,
    num_segments: int = 0,
    plan: torch.Tensor | None = None,
    ref: torch.Tensor | None = None,
    params: SamplingParams | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    progress: bool = False,
) -> GenerationOutput:
    """Plan the whole piece first, then write audio window by window.

    Each window holds at most `window_frames` frames: the last `context_frames` frames
    already written (the previous window's tail, given as a prefix the model continues)
    followed by new frames. It follows the plan segments that overlap its frames
    (:func:`segments_for_span`, `segment_frames` audio frames per plan segment).
    """
    if not 0 <= context_frames < window_frames:
        raise ConfigError(
            f"need 0 <= context_frames < window_frames, got {context_frames}, {window_frames}"
        )
    if num_frames < 1:
        raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
    device = model.positions.device
    if generator is None and seed is not None:
        generator = torch.Generator(device).manual_seed(int(seed))
    common = dict(
        text_states=text_states,
        text_mask=text_mask,
        batch_size=batch_size,
        layout=layout,
        ref=ref,
        params=params,
        generator=generator,
        use_cache=use_cache,
    )
    if plan is None and num_segments > 0:
        plan = generate(
            model, num_frames=0, num_segments=num_segments, progress=progress, **common
        ).plan  # type: ignore[arg-type]
    has_plan = plan is not None and plan.shape[1] > 0
    if has_plan and segment_frames <= 0:
        raise ConfigError("segment_frames must be > 0 to follow a plan")
    pieces: list[torch.Tensor] = []
    done = 0
    codes: torch.Tensor | None = None
    windows = tqdm(total=num_frames, disable=not progress, desc="windows", leave=False)
    while done < num_frames:
        ctx = min(context_frames, done)
        new = min(window_frames - ctx, num_frames - done)
        tail = None if ctx == 0 or codes is None else codes[:, :, done - ctx : done]
        window_plan = None
        if has_plan:
            n_seg = plan.shape[1]  # type: ignore[union-attr]
            s0, s1 = segments_for_span(done - ctx, done + new, segment_frames, n_seg)
            window_plan = plan[:, s0:s1]  # type: ignore[index]
        offset = 0.0
        if has_plan:
            offset = (done - ctx) - s0 * segment_frames
        out = generate(
            model,
            num_frames=new,
            plan=window_plan,
            prefix_codes=tail,
            plan_offset=offset,
            segment_frames=segment_frames,
            **common,  # type: ignore[arg-type]
        )
        pieces.append(out.codes)
        codes = torch.cat(pieces, -1)
        done += new
        windows.update(new)
    windows.close()
    assert codes is not None
    final_plan = (
        plan
        if plan is not None
        else torch.zeros(
            codes.shape[0], 0, model.config.thought_levels, dtype=torch.long, device=device
        )
    )
    return GenerationOutput(final_plan, codes)
