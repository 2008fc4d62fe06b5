"""The sizes `musigen train-demos` knows: what each stage builds and how the budget is shared.

`debug` runs the whole chain in a few minutes on a CPU (the test suite does). `demo` makes
the shipped checkpoints: its scale is chosen for what one CPU core buys in a few tens of
hours (docs/training.md has the measurements behind it). Recipes hold the model
hyperparameters; a size only names them and adds the data and the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from musigen.errors import ConfigError

#: The training stages, in the order they run, and the data stage each one needs first.
TRAIN_STAGES: tuple[str, ...] = ("codec", "clap", "lm", "lm_nocot", "unet")


@dataclass(frozen=True)
class DemoSize:
    """Everything size-dependent in the chain. Shares are fractions of the training time."""

    name: str
    corpus_n: int
    corpus_s: float
    val_n: int
    corpus_seed: int
    val_seed: int
    #: recipes (relative to recipes/) per stage; a stage with no share copies the shipped
    #: checkpoint named by its `reuse` (found like every default checkpoint)
    codec_recipe: str
    clap_recipe: str
    lm_recipe: str
    unet_recipes: tuple[str, ...]
    codec_reuse: str | None = None
    clap_reuse: str | None = None
    thought_levels: int = 4
    thought_codebook_size: int = 64
    thought_window_s: float = 2.5
    lm_codebooks: int = 4
    edit_n: int = 1200
    edit_val_n: int = 64
    edit_duration_s: float = 6.0
    eval_gen: int = 40
    eval_edit: int = 20
    eval_duration_s: float = 10.0
    #: seconds held back for export and evaluation (at most this fraction of the budget)
    eval_reserve_s: float = 3600.0
    eval_reserve_frac: float = 0.1
    #: also evaluate the repository's shipped checkpoints on the same sets, for the table
    compare_shipped: bool = True
    #: the LM, its twin and the U-Net take turns in slices of this many seconds, so a run
    #: stopped early (a session that ends) has improved every model, not just the first
    slice_s: float | None = None
    #: a training stage with a share never gets less than this, even when the data stages
    #: took the whole budget (a slow machine must still finish the chain)
    min_stage_s: float = 0.0
    #: training steps between checkpoints (a kill loses at most this many)
    checkpoint_every: int = 100
    #: seconds between writes of a stage's ledger
    ledger_every_s: float = 15.0
    shares: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.shares) - set(TRAIN_STAGES)
        if unknown:
            raise ConfigError(f"size {self.name}: unknown stages in shares: {sorted(unknown)}")
        if any(v < 0 for v in self.shares.values()) or not 0.99 < sum(self.shares.values()) < 1.01:
            raise ConfigError(f"size {self.name}: shares must be >= 0 and sum to 1")

    def share(self, stage: str) -> float:
        return float(self.shares.get(stage, 0.0))


SIZES: dict[str, DemoSize] = {
    "debug": DemoSize(
        name="debug", corpus_n=24, corpus_s=6.0, val_n=4, corpus_seed=0, val_seed=900000,
        codec_recipe="codec/debug.yaml", clap_recipe="clap/debug.yaml",
        lm_recipe="musicot/debug.yaml", unet_recipes=("instructme/debug.yaml",),
        thought_levels=2, thought_codebook_size=8, thought_window_s=2.0, lm_codebooks=2,
        edit_n=8, edit_val_n=4, edit_duration_s=3.0, eval_gen=2, eval_edit=1, eval_duration_s=3.0,
        eval_reserve_s=120.0, eval_reserve_frac=0.5, compare_shipped=False, min_stage_s=10.0,
        checkpoint_every=5, ledger_every_s=1.0,
        shares={"codec": 0.1, "clap": 0.1, "lm": 0.4, "lm_nocot": 0.1, "unet": 0.3},
    ),
    # The LM gets two thirds of the models' time: it is what the demo lacked most. The codec
    # and CLAP start from the shipped ones (their curves had flattened), so they get none
    # unless --retrain names them. The no-CoT twin gets a tenth: it is compared with the
    # MusiCoT LM's snapshot after the same seconds, not with its final weights.
    "demo": DemoSize(
        name="demo", corpus_n=2000, corpus_s=20.0, val_n=64, corpus_seed=100000, val_seed=5100000,
        codec_recipe="codec/demo.yaml", clap_recipe="clap/demo.yaml",
        lm_recipe="musicot/demo.yaml", unet_recipes=("instructme/demo.yaml", "instructme/demo_concat.yaml"),
        codec_reuse="codec_demo", clap_reuse="clap_demo",
        edit_n=1200, edit_val_n=64, eval_gen=40, eval_edit=20, slice_s=2 * 3600.0,
        shares={"lm": 0.6, "lm_nocot": 0.07, "unet": 0.33},
    ),
}


def get_size(name: str) -> DemoSize:
    if name not in SIZES:
        raise ConfigError(f"unknown size {name!r}; choose one of {sorted(SIZES)}")
    return SIZES[name]
