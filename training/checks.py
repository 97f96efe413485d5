"""Checks shared by every experiment's settings: a value's allowed range, and the config keys renamed since runs and
work folders were recorded."""

from __future__ import annotations

import math
from typing import Any


def check_range(name: str, value: Any, low: float, high: float = math.inf, *, above: bool = False) -> None:
    """Refuses a config value outside [low, high] ((low, high] when `above`: the value must exceed `low`), naming the
    value and the allowed range; NaN is out of every range. Experiments check their values before anything is
    generated, trained or recorded."""
    inside = (value > low if above else value >= low) and value <= high
    if not inside:
        if high == math.inf:
            allowed = f"{'>' if above else '>='} {low:g}"
        else:
            allowed = f"in {'(' if above else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name}={value!r} is out of range: {name} must be {allowed}.")


RENAMED_KEYS = {"noise": "distractors"}
"""Config keys renamed since runs were recorded: {old name: current name}."""


def current_names(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with its keys renamed since it was written under their current names (RENAMED_KEYS): for what older
    code wrote and this code reads, a run's config.json, a work folder's settings.json, a saved agent.json, a grid
    job's recorded config updates. A key present under both names keeps the current one's value."""
    old = {RENAMED_KEYS[key]: value for key, value in record.items() if key in RENAMED_KEYS}
    return {**old, **{key: value for key, value in record.items() if key not in RENAMED_KEYS}}
