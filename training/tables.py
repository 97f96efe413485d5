"""Markdown tables for the reports runs write (compare.md, exploration.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A pipe table (pandas' to_markdown needs the tabulate package)."""

    def text(value: Any) -> str:
        if isinstance(value, float):
            return "-" if np.isnan(value) else f"{value:.{digits}g}"
        return str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(text(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
