"""EditParams: every InstructME sampling setting in one validated dataclass.

The pipeline saves its defaults as one in ``pipeline.json``; the pipeline call, the CLI, the
demo app and the evaluation sweeps all build one, so a setting is named, checked and
documented once.  The module imports no torch or diffusers: the CLI checks its flags with
it before the seconds-long model imports.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from musigen.errors import ConfigError
from musigen.seeds import check_seed

#: diffusers schedulers an edit can sample with.
SAMPLERS: tuple[str, ...] = ("dpmsolver++", "ddim")
#: How an edit's sampling starts: fresh noise (the paper), or the DDIM-inverted source.
STARTS: tuple[str, ...] = ("noise", "inversion")
#: How a round's waveform is formed (see `musigen.instructme.output_modes`).
MODES: tuple[str, ...] = ("decoded", "source_delta", "masked_delta")
#: The output modes a call may ask for: a mode, or "auto" (chosen per round from its task).
OUTPUTS: tuple[str, ...] = (*MODES, "auto")
#: More steps than the training schedule has timesteps cannot be sampled.
MAX_STEPS = 1000
#: Guidance scales beyond this are a typo (useful scales are 0-10).
MAX_GUIDANCE = 100.0


def check_strength(strength: object) -> float:
    """`strength` if it is in (0, 1], else a ConfigError (0 would skip every step)."""
    if (isinstance(strength, bool) or not isinstance(strength, numbers.Real)
            or not (math.isfinite(strength) and 0 < strength <= 1)):
        raise ConfigError(f"strength must be in (0, 1], got {strength!r}")
    return float(strength)


def check_start(start: object) -> str:
    """`start` if it is one of STARTS, else a ConfigError naming them."""
    if start not in STARTS:
        raise ConfigError(f"unknown start {start!r}; known: {', '.join(STARTS)}")
    return str(start)


def check_output(mode: object) -> str:
    """`mode` if it is one of OUTPUTS, else a ConfigError naming them."""
    if mode not in OUTPUTS:
        raise ConfigError(f"unknown output mode {mode!r}; known: {', '.join(OUTPUTS)}")
    return str(mode)


def check_match(value: object) -> bool:
    """`value` if it is a bool, else a ConfigError (no truthy stand-ins such as 1 or "yes")."""
    if not isinstance(value, bool):
        raise ConfigError(f"match_source_stats must be true or false, got {value!r}")
    return value


def check_sampler(sampler: object) -> str:
    """`sampler` if it is one of SAMPLERS, else a ConfigError naming them."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
    return str(sampler)


def check_steps(steps: object) -> int:
    """`steps` as an int in [1, MAX_STEPS], else a ConfigError."""
    if (isinstance(steps, bool) or not isinstance(steps, numbers.Integral)
            or not 1 <= steps <= MAX_STEPS):
        raise ConfigError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")
    return int(steps)


def check_guidance(name: str, scale: object) -> float:
    """A finite guidance scale in [0, MAX_GUIDANCE] (1 = no guidance), else a ConfigError."""
    if (isinstance(scale, bool) or not isinstance(scale, numbers.Real)
            or not (math.isfinite(scale) and 0 <= scale <= MAX_GUIDANCE)):
        raise ConfigError(f"{name} must be a number in [0, {MAX_GUIDANCE:g}], got {scale!r}")
    return float(scale)


@dataclass
class EditParams:
    """How one InstructME edit samples; every field is checked on construction.

    The demo model's `pipeline.json` chooses its own (25 DDIM steps, text scale 1.25,
    source scale 1.0, inversion start, masked_delta output).
    """

    #: diffusers scheduler steps per round.
    steps: int = 25
    #: the diffusers scheduler: "dpmsolver++" or "ddim".
    sampler: str = "dpmsolver++"
    #: classifier-free guidance toward the instruction (1 = none).
    guidance_text: float = 3.0
    #: classifier-free guidance toward the source (1 = none).
    guidance_source: float = 1.5
    #: 1: sample from pure noise (the paper). < 1: start from the noised source (SDEdit),
    #: trading how much the edit can change for how much of the source survives.
    strength: float = 1.0
    #: "noise": sample from fresh noise (the paper; SDEdit's random noise when strength < 1).
    #: "inversion": start from the DDIM-inverted source, so that only the instruction moves
    #: the result (see `musigen.instructme.inversion`).  Ours.
    start: str = "noise"
    #: "decoded": the edited latents, decoded. "source_delta": the input plus what the edit
    #: changed, decode(edited) - decode(source latents): what the edit leaves alone keeps the
    #: input's full fidelity instead of the codec's round trip (ours; the paper decodes).
    #: "masked_delta": as source_delta, but the input's codec error comes back only where the
    #: edit kept the energy (`musigen.instructme.output_modes`). "auto": source_delta for
    #: the rounds whose task adds, removes or replaces, decoded otherwise.
    output: str = "decoded"
    #: True: match the sampled latents' per-channel mean and std to the source's before
    #: decoding (undoes the CFG overshoot that made edits louder; see
    #: `diffusion.match_source_statistics`).  Ours; the paper decodes the sample as is.
    match_source_stats: bool = False
    #: the random seed; the same seed gives the same edit.
    seed: int = 0

    #: sampling defaults, not the model: a pipeline.json (and the older flat layout, which
    #: kept any subset at the top level) may set some and leave the rest to these defaults
    OPTIONAL_KEYS = frozenset({"steps", "sampler", "guidance_text", "guidance_source",
                               "strength", "start", "output", "match_source_stats", "seed"})

    def __post_init__(self) -> None:
        self.steps = check_steps(self.steps)
        self.sampler = check_sampler(self.sampler)
        self.guidance_text = check_guidance("guidance_text", self.guidance_text)
        self.guidance_source = check_guidance("guidance_source", self.guidance_source)
        self.strength = check_strength(self.strength)
        self.start = check_start(self.start)
        self.output = check_output(self.output)
        self.match_source_stats = check_match(self.match_source_stats)
        self.seed = check_seed(self.seed)

    def replace(self, **overrides: Any) -> EditParams:
        """A copy with the given fields changed; `None` values are ignored (unset flags)."""
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown edit parameters: {', '.join(unknown)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **given) if given else self
