"""A small TOML writer for topology documents (the standard library only reads TOML).

It covers what topology files use: tables, arrays of tables (nested too), inline tables,
strings, integers, floats, booleans and arrays. Anything else is refused, not guessed.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _emit(lines: list[str], path: list[str], table: dict[str, Any]) -> None:
    nested: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, dict) or _is_table_array(value):
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in nested:
        header = ".".join(_key(p) for p in (*path, key))
        if isinstance(value, dict):
            lines.extend(("", f"[{header}]"))
            _emit(lines, [*path, key], value)
        else:
            for item in value:
                lines.extend(("", f"[[{header}]]"))
                _emit(lines, [*path, key], item)


def dumps(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    _emit(lines, [], doc)
    return "\n".join(lines).lstrip("\n") + "\n"
