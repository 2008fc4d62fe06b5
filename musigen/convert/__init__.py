"""Converters from other projects' checkpoints into musigen pipeline folders."""
