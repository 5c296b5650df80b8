"""Shared helpers for the network tests."""

from __future__ import annotations
