"""The evaluation harness: held-out sets, the systems under test and their baselines, the
runner, scoring of edits, generations and codecs, and the reports they write."""
