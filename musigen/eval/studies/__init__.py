"""Sweeps and one-off analyses, each behind a `musigen eval ...` subcommand.

Modules here import only the standard library at module level where they register
arguments, so `musigen --help` stays fast; the work imports what it needs.
"""
