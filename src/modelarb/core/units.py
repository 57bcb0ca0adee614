"""Amounts in a market's cost unit, as text."""

from __future__ import annotations


def with_unit(number: str, unit: str) -> str:
    """`2.5 attempts`, `1 attempt`: a formatted number and its unit, a plural unit made singular for exactly one."""
    if number == "1" and unit.endswith("s") and not unit.isupper():
        unit = unit[:-1]
    return f"{number} {unit}"
