"""The test protocol's scoring (rl/evaluation.py runs the episodes): policies on the same unseen seeds, for
train_agent's test and evaluate_agent."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rl.actor import Policy
from rl.evaluation import policy_scores

TEST_SEED = 100_000
"""Test environment seeds are TEST_SEED + i, i < seeds: unseen by training (seed) and validation (10,000 + seed)."""


def score_policies(
    policies: dict[str, Policy], envs: dict[str, Any], seeds: list[int], episodes: int, progress: bool
) -> tuple[pd.DataFrame, np.ndarray]:
    """Every policy on the same seeds: the long table of episode scores and the array [policies, seeds, episodes]."""
    rows, arrays = [], []
    for name, policy in policies.items():
        scores = policy_scores(envs[name], policy, seeds, episodes, progress, name)
        arrays.append(scores)
        rows += [
            {"policy": name, "seed": seed, "episode": e, "score": scores[i, e]}
            for i, seed in enumerate(seeds)
            for e in range(episodes)
        ]
    return pd.DataFrame(rows), np.stack(arrays)
