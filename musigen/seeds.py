"""User-given random seeds: the one check every pipeline applies before sampling.

torch's generators take a 64-bit seed; anything else (a float, a bool, a string, a number
past 64 bits) used to surface as torch's own ValueError deep in sampling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musigen.errors import ConfigError

#: The range `torch.Generator.manual_seed` accepts.
SEED_MIN: int = -(2**63)
SEED_MAX: int = 2**64 - 1


def check_seed(seed: Any) -> int:
    """`seed` as a Python int, or a one-line ConfigError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if not SEED_MIN <= int(seed) <= SEED_MAX:
        raise ConfigError(f"seed must fit in 64 bits ({SEED_MIN} to {SEED_MAX}), got {seed}")
    return int(seed)
