"""The test protocol (PermaKey paper, Appendix A.2.3; docs/method.md section 4.6).

Evaluation uses the evaluation environments (whole games, unclipped scores; rl/envs.py) and no exploration noise
("we do not add any noise in our policy used for evaluation episodes").

The paper's test: "the best checkpointed models from 3 different runs ... 10 evaluation episodes for each of the 3
policies on 10 previously unseen test environment seeds ... the mean (and std. dev.) for the 3 different policies
using the median evaluation run over the 10 test seeds". We read an "evaluation run" as one policy on one seed, its
score the mean over its episodes: score[p, s] = mean_e scores[p, s, e]; per policy the median over seeds; reported
as mean (std) over policies. Episodes on a seed start with `reset(seed=s)` and continue that seed's random stream,
so every policy (and the random baseline) meets the same no-op starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from rl.actor import Policy


@dataclasses.dataclass(frozen=True)
class Episode:
    """One evaluation episode: its score, its length in agent steps, and whether it ended by the frame cap
    (truncated) rather than by the game (a greedy policy that never restarts play, e.g. never presses FIRE after a
    life loss in Breakout, runs until the cap)."""

    score: float
    steps: int
    truncated: bool


def play_episodes(
    env: gym.Env,
    policy: Policy,
    seed: int,
    episodes: int,
    on_step: Callable[[Any, int], None] | None = None,
) -> list[Episode]:
    """`episodes` whole episodes, the first started with reset(seed=seed); on_step(observation, action)."""
    played = []
    for e in range(episodes):
        observation, _ = env.reset(seed=seed) if e == 0 else env.reset()
        policy.reset()
        score, steps, terminated, truncated = 0.0, 0, False, False
        while not (terminated or truncated):
            action = policy.act(observation)
            if on_step is not None:
                on_step(observation, action)
            observation, reward, terminated, truncated, _ = env.step(action)
            score, steps = score + float(reward), steps + 1
        played.append(Episode(score, steps, bool(truncated and not terminated)))
    return played


def play(
    env: gym.Env,
    policy: Policy,
    seed: int,
    episodes: int,
    on_step: Callable[[Any, int], None] | None = None,
) -> list[float]:
    """Scores of `episodes` whole episodes (play_episodes)."""
    return [episode.score for episode in play_episodes(env, policy, seed, episodes, on_step)]


def play_budget(
    env: gym.Env,
    policy: Policy,
    seed: int,
    steps: int,
    on_step: Callable[[Any, int], None] | None = None,
    on_reset: Callable[[], None] | None = None,
    progress: Any = None,
) -> list[tuple[float, int]]:
    """(score, agent steps) of every episode that ends within a budget of `steps` agent steps, the first episode
    started with reset(seed=seed); the episode the budget cuts is not counted. on_step(observation, action) before
    each step, on_reset() after each reset (a ground-truth tracker restarts there)."""
    episodes: list[tuple[float, int]] = []
    observation, _ = env.reset(seed=seed)
    policy.reset()
    if on_reset is not None:
        on_reset()
    score, length = 0.0, 0
    for _ in range(steps):
        action = policy.act(observation)
        if on_step is not None:
            on_step(observation, action)
        observation, reward, terminated, truncated, _ = env.step(action)
        score, length = score + float(reward), length + 1
        if terminated or truncated:
            episodes.append((score, length))
            observation, _ = env.reset()
            policy.reset()
            if on_reset is not None:
                on_reset()
            score, length = 0.0, 0
        if progress is not None:
            progress.update(1)
    return episodes


def policy_episodes(
    env: gym.Env, policy: Policy, seeds: Sequence[int], episodes: int, progress: bool = False, name: str = ""
) -> list[list[Episode]]:
    """[len(seeds)][episodes] episodes of one policy."""
    return [play_episodes(env, policy, s, episodes) for s in tqdm(seeds, desc=f"test {name}", disable=not progress)]


def protocol_summary(scores: np.ndarray) -> dict[str, Any]:
    """scores [policies, seeds, episodes] -> {"mean", "std"} over policies of the median over seeds of the mean over
    episodes, and the per-policy medians."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 3 or 0 in scores.shape:
        raise ValueError(f"Expected scores [policies, seeds, episodes], got shape {scores.shape}.")
    medians = np.median(scores.mean(axis=2), axis=1)
    return {"mean": float(medians.mean()), "std": float(medians.std()), "medians": medians.tolist()}
