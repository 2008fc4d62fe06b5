"""The one reader of an encoded folder's `index.json`, shared by every format.

Each format writes its index last, so a folder with a readable index of a known format is
complete; a folder without one is unfinished (or not an encoded folder at all).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from musigen.errors import DataError

INDEX_NAME = "index.json"

#: The `format` strings of every encoded folder musigen writes, with what each one holds.
FORMATS: dict[str, str] = {
    "musigen-musicot-shards/1": "pre-encoded MusiCoT data (`musigen encode musicot`)",
    "musigen-instructme-shards-v1": "pre-encoded edit data (`musigen encode instructme`)",
    "musigen-litdata-shards/1": "encoded litdata shards (`musigen encode shards`)",
}


def read_index(directory: str | os.PathLike[str], fmt: str | None = None) -> dict[str, Any]:
    """The index of a complete encoded folder: of format `fmt`, or of any known one if None.

    Raises DataError when the index is missing (the encode is unfinished or the path is
    wrong), corrupt, or of another format.
    """
    if fmt is not None and fmt not in FORMATS:
        raise DataError(f"unknown encoded format {fmt!r}; known: {', '.join(FORMATS)}")
    what = FORMATS[fmt] if fmt is not None else "encoded data"
    path = Path(directory) / INDEX_NAME
    if not path.is_file():
        raise DataError(f"no {what} in {Path(directory)} (missing {INDEX_NAME}; the encode "
                        "is unfinished or the path is wrong)")
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"corrupt {path}: {exc}") from None
    found = index.get("format") if isinstance(index, dict) else None
    if found not in FORMATS or (fmt is not None and found != fmt):
        raise DataError(f"{path} is not a {fmt or ' / '.join(FORMATS)} index")
    return index
