"""The seed check every pipeline applies before sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musigen.errors import ConfigError
from musigen.seeds import SEED_MAX, SEED_MIN, check_seed


@pytest.mark.parametrize("seed", [0, -5, 7, np.int64(3), SEED_MIN, SEED_MAX])
def test_every_seed_torch_takes_passes_as_an_int(seed: int) -> None:
    assert check_seed(seed) == int(seed) and type(check_seed(seed)) is int
    torch.Generator().manual_seed(check_seed(seed))  # and torch accepts it


@pytest.mark.parametrize("seed", [1.5, "3", True, None, SEED_MAX + 1, SEED_MIN - 1])
def test_anything_else_is_one_config_error(seed: object) -> None:
    with pytest.raises(ConfigError, match="seed must"):
        check_seed(seed)
