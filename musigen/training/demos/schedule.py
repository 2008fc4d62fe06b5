"""The budget: how the wall time is split across stages, and the state that survives kills.

The stated schedule (also printed by `musigen train-demos --plan`):

- data stages (corpus, pre-encoding, edit triplets) and export take what they take;
- `reserve = min(eval_reserve_s, eval_reserve_frac x budget)` is held back for evaluation;
- each training stage gets `share x (budget - reserve - time the data stages have taken so
  far)`, at least the size's `min_stage_s`, measured in wall seconds of training (its
  ledger), so a GPU and a CPU spend the same time and the GPU simply trains further.

`state.json` records each finished stage and its wall time; a training stage's ledger
(`<stage>/ledger.json`) records its seconds. Both are written atomically, so `kill -9` at
any moment loses at most the steps since the last checkpoint.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from musigen.atomic import write_json
from musigen.errors import ConfigError
from musigen.training.demos.sizes import DemoSize

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_budget(text: str) -> float:
    """'90s', '45m', '2h30m', '36h' or plain seconds -> seconds (> 0)."""
    text = str(text).strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
        if not parts or "".join(a + b for a, b in parts) != text:
            raise ConfigError(f"budget {text!r}: use seconds or a duration such as 90m, 2h30m, 36h") from None
        seconds = sum(float(a) * _UNITS[b] for a, b in parts)
    if not seconds > 0 or seconds > 365 * 86400:
        raise ConfigError(f"budget {text!r} must be more than 0 s and at most a year")
    return seconds


@dataclass
class StageRecord:
    done: bool = False
    wall_s: float = 0.0
    note: str = ""


@dataclass
class State:
    """What `--out` holds so far; stages not listed have not finished."""

    size: str
    device: str
    stages: dict[str, StageRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, size: str, device: str) -> State:
        if not path.is_file():
            return cls(size=size, device=device)
        try:
            raw = json.loads(path.read_text())
            state = cls(size=raw["size"], device=raw["device"],
                        stages={k: StageRecord(**v) for k, v in raw["stages"].items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: not a train-demos state file ({exc}); use another --out") from exc
        if state.size != size:
            raise ConfigError(f"{path.parent} holds a {state.size!r} run; this is --size {size}: "
                              "use another --out")
        state.device = device  # a run may move between devices; the ledgers carry over
        return state

    def save(self, path: Path) -> None:
        write_json(path, {"size": self.size, "device": self.device,
                          "stages": {k: asdict(v) for k, v in self.stages.items()}})

    def record(self, stage: str) -> StageRecord:
        return self.stages.setdefault(stage, StageRecord())

    def data_wall_s(self, data_stages: tuple[str, ...]) -> float:
        return sum(self.stages[s].wall_s for s in data_stages if s in self.stages)


def reserve_s(size: DemoSize, budget_s: float) -> float:
    return min(size.eval_reserve_s, size.eval_reserve_frac * budget_s)


def allotment_s(size: DemoSize, stage: str, budget_s: float, data_spent_s: float) -> float:
    """Training seconds for `stage` under the stated schedule (0 when it has no share)."""
    train_s = max(0.0, budget_s - reserve_s(size, budget_s) - data_spent_s)
    share = size.share(stage)
    return max(share * train_s, size.min_stage_s) if share > 0 else 0.0


def plan_lines(size: DemoSize, budget_s: float, data_spent_s: float = 0.0) -> list[str]:
    """The schedule in words, for --plan and the log."""
    lines = [f"size {size.name}: budget {_duration(budget_s)}, evaluation reserve "
             f"{_duration(reserve_s(size, budget_s))}, data stages so far {_duration(data_spent_s)}"]
    for stage in ("codec", "clap", "lm", "lm_nocot", "unet"):
        share = size.share(stage)
        secs = allotment_s(size, stage, budget_s, data_spent_s)
        lines.append(f"  {stage:9s} share {share:4.2f}  {_duration(secs)}")
    return lines


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
