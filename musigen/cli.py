"""The `musigen` console script: parses arguments and hands off to library code.

Each command group lives in `musigen/commands/<group>.py` and exposes
`register(subparsers)`; the command modules import heavy libraries only inside their
handlers so that `musigen --help` stays fast.  Any :class:`MusigenError` becomes one
line on stderr and exit code 2; there is never a traceback for bad input.  A write that the
disk refuses (full, read-only, no permission) is one line and exit code 1; the writers
(:mod:`musigen.atomic`) leave no partial output behind.  A command that sets
``pass_through=True`` (``musigen train fit``) gets the arguments it does not declare, in
order, as ``args.rest`` and hands them to its own parser.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from musigen import __version__
from musigen.errors import MusigenError

#: Preferred order of command modules in --help; any other module in musigen.commands follows.
COMMAND_ORDER: tuple[str, ...] = (
    "generate",
    "edit",
    "analyze",
    "data",
    "encode",
    "chords",
    "codec",
    "embed",
    "eval",
    "demo",
)


#: errno values of a write that failed for reasons of the disk, not of musigen.
WRITE_ERRNOS: frozenset[int] = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO})


def _command_modules() -> list[str]:
    """Every module in musigen.commands, in help order."""
    import musigen.commands as pkg

    found = {m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")}
    ordered = [name for name in COMMAND_ORDER if name in found]
    return ordered + sorted(found - set(ordered))


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser from every command module."""
    parser = argparse.ArgumentParser(
        prog="musigen",
        description="Music generation (MusiCoT) and instruction-guided editing (InstructME).",
    )
    parser.add_argument("--version", action="version", version=f"musigen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_modules():
        module = importlib.import_module(f"musigen.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 2 bad input, 1 internal error or a
    write the disk refused)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "pass_through", False):
        args.rest = extra  # for another parser (LightningCLI), unchanged and in order
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except MusigenError as exc:
        print(f"musigen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("musigen: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence, see docstring
        if os.environ.get("MUSIGEN_DEBUG"):
            raise
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            # the disk, not the input or a bug: one line, exit 1 (writers leave no partial files)
            where = f" {exc.filename}" if exc.filename else ""
            print(f"musigen: error: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(
            f"musigen: internal error: {type(exc).__name__}: {exc} "
            "(set MUSIGEN_DEBUG=1 for a traceback and please report it)",
            file=sys.stderr,
        )
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
