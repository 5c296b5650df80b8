"""Typed changes as columns: what a compare-and-set writes is the fields of its change value
that are set (None means "left as it is"). One rule for transactions and disputes."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def field_names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    """The field names of a change class, computed once per class (the hot path reads them)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def set_columns(value: DataclassInstance, names: tuple[str, ...]) -> dict[str, object]:
    """The fields of ``value`` named in ``names`` that are set (not None)."""
    return {name: v for name in names if (v := getattr(value, name)) is not None}
