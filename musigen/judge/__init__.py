"""The instrument judge: a small instrument + genre classifier that evaluation listens with.

- :mod:`musigen.judge.model`: the model (`InstrumentJudge`, `load_judge`);
- :mod:`musigen.judge.data`: its training and measurement windows from a corpus manifest;
- :mod:`musigen.judge.calibration`: per-instrument decision thresholds.

It knows nothing of Lightning (`musigen.training.judge_module` trains it) nor of eval.
"""
