"""Argument parsing for each `musigen` command group; no library logic lives here."""
