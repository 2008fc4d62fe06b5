"""`musigen train-demos`: the whole demo chain under one wall-time budget, resumable after any kill.

corpus -> codec -> CLAP -> thought RVQ + pre-encoded codes -> MusiCoT LM (and its no-CoT twin)
-> InstructME U-Net -> held-out evaluation -> a table beside the shipped checkpoints.
Every stage runs as its own process through the `musigen` CLI and the Lightning training
entry, so a stage is exactly what a user would run by hand; this package only schedules.
"""

from musigen.training.demos.schedule import parse_budget
from musigen.training.demos.sizes import SIZES, DemoSize

__all__ = ["SIZES", "DemoSize", "parse_budget"]
