"""The test protocol's scoring (rl/evaluation.py runs the episodes): policies on the same unseen seeds, for
train_agent's test and evaluate_agent."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rl.actor import Policy
from rl.evaluation import policy_episodes

TEST_SEED = 100_000
"""Test environment seeds are TEST_SEED + i, i < seeds: unseen by training (seed) and validation (10,000 + seed)."""


def score_policies(
    policies: dict[str, Policy], envs: dict[str, Any], seeds: list[int], episodes: int, progress: bool
) -> tuple[pd.DataFrame, np.ndarray]:
    """Every policy on the same seeds: the long table of episodes (score, length in agent steps, and whether the
    frame cap ended it) and the scores [policies, seeds, episodes]."""
    rows, arrays = [], []
    for name, policy in policies.items():
        played = policy_episodes(envs[name], policy, seeds, episodes, progress, name)
        arrays.append(np.asarray([[episode.score for episode in row] for row in played], np.float64))
        rows += [
            {
                "policy": name,
                "seed": seed,
                "episode": e,
                "score": episode.score,
                "steps": episode.steps,
                "truncated": episode.truncated,
            }
            for seed, row in zip(seeds, played, strict=True)
            for e, episode in enumerate(row)
        ]
    return pd.DataFrame(rows), np.stack(arrays)


def capped(table: pd.DataFrame) -> dict[str, float]:
    """{"truncated_share": the share of a score table's episodes that the frame cap ended}: a greedy policy that
    stalls (never restarts play) scores what it had when the cap came."""
    return {"truncated_share": float(table["truncated"].mean())}
