"""Check a config file's JSON against its dataclass before the dataclass is built.

A dataclass takes whatever it is given: ``"dim": "256"`` used to reach ``dim % num_heads``
and fail as "not all arguments converted during string formatting", and a nested section
(``sampling``, ``diffusion``, ``params``) missing a key quietly took its default.  Here each
value is checked against the field's annotation (int, float, bool, str, lists, optionals and
nested dataclasses), and every level refuses unknown and missing keys, so a bad file is one
line naming the key, the expected type and (shortened) what the file holds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any

from musigen.errors import CheckpointError, shorten

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_PLURALS = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _show(value: Any) -> str:
    try:
        return shorten(json.dumps(value), 60)
    except (TypeError, ValueError):
        return shorten(value, 60)


def _matches(value: Any, hint: Any) -> bool:
    """True when `value` (parsed JSON) fits the annotation `hint` (unknown kinds pass)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value))
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return len(args) != 1 or all(_matches(v, args[0]) for v in value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(value, (dict, hint))
    return True


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"a list of {_PLURALS.get(args[0], 'values')}" if len(args) == 1 else "a list"
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return "an object"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def check_config_data(cls: type, data: dict[str, Any], where: str, prefix: str = "") -> None:
    """Raise a one-line CheckpointError when `data` does not fit dataclass `cls`.

    Unknown keys and absent keys (other than ``cls.OPTIONAL_KEYS``: fields added after a
    checkpoint shipped) are errors at every level; values must have the annotated types
    (a float must be finite).  Nested dataclass sections are checked the same way.
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise CheckpointError(f"{where} has keys that {cls.__name__} does not know: "
                              f"{[prefix + k for k in unknown]}")
    optional = getattr(cls, "OPTIONAL_KEYS", frozenset())
    missing = sorted(fields - set(data) - set(optional))
    if missing:
        raise CheckpointError(f"{where} lacks keys that {cls.__name__} needs: "
                              f"{[prefix + k for k in missing]}")
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that cannot be resolved: skip the types
        return
    for key, value in data.items():
        hint = hints.get(key, Any)
        if not _matches(value, hint):
            raise CheckpointError(f"{where}: {prefix}{key} must be {_describe(hint)}, "
                                  f"got {_show(value)}")
        if isinstance(value, dict) and isinstance(hint, type) and dataclasses.is_dataclass(hint):
            check_config_data(hint, value, where, f"{prefix}{key}.")
