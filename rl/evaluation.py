"""Policies and the test protocol (seed 002, Appendix A.2.3; reference.md section 4).

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

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from rl.agent import RecurrentQNetwork


class Policy(Protocol):
    def reset(self) -> None: ...

    def act(self, observation: Any) -> int: ...


def view_of(observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The encoder's view entries of a KeypointObservation, as {name: [1, 1, ...]} (batch 1, one time step)."""
    return {k[len("view.") :]: v[None, None] for k, v in observation.items() if k.startswith("view.")}


class QPolicy:
    """Epsilon-greedy on a recurrent Q-network, carrying its LSTM state through the episode (epsilon 0: greedy)."""

    def __init__(self, network: RecurrentQNetwork, epsilon: float = 0.0, seed: int = 0):
        self.network, self.epsilon = network, epsilon
        self.rng = np.random.default_rng(seed)
        self._q = tf.function(lambda view, state: network(view, initial_state=state, return_state=True))
        self.state = network.initial_state(1)
        self.last_q: np.ndarray | None = None

    def reset(self) -> None:
        self.state = self.network.initial_state(1)

    def act(self, observation: dict[str, np.ndarray]) -> int:
        q, self.state = self._q(view_of(observation), self.state)
        values = q.numpy()[0, 0]
        self.last_q = values
        if self.epsilon > 0 and self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.network.num_actions))
        return int(np.argmax(values))


class RandomPolicy:
    def __init__(self, num_actions: int, seed: int = 0):
        self.num_actions = num_actions
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def act(self, observation: Any) -> int:
        return int(self.rng.integers(self.num_actions))


def play(
    env: gym.Env,
    policy: Policy,
    seed: int,
    episodes: int,
    on_step: Callable[[Any, int], None] | None = None,
) -> list[float]:
    """Scores of `episodes` whole episodes, the first started with reset(seed=seed); on_step(observation, action)."""
    scores = []
    for e in range(episodes):
        observation, _ = env.reset(seed=seed) if e == 0 else env.reset()
        policy.reset()
        score, done = 0.0, False
        while not done:
            action = policy.act(observation)
            if on_step is not None:
                on_step(observation, action)
            observation, reward, terminated, truncated, _ = env.step(action)
            score += float(reward)
            done = terminated or truncated
        scores.append(score)
    return scores


def policy_scores(
    env: gym.Env, policy: Policy, seeds: Sequence[int], episodes: int, progress: bool = False, name: str = ""
) -> np.ndarray:
    """[len(seeds), episodes] scores of one policy."""
    rows = [play(env, policy, s, episodes) for s in tqdm(seeds, desc=f"test {name}", disable=not progress)]
    return np.asarray(rows, np.float64)


def protocol_summary(scores: np.ndarray) -> dict[str, Any]:
    """scores [policies, seeds, episodes] -> {"mean", "std"} over policies of the median over seeds of the mean over
    episodes, and the per-policy medians."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 3 or 0 in scores.shape:
        raise ValueError(f"Expected scores [policies, seeds, episodes], got shape {scores.shape}.")
    medians = np.median(scores.mean(axis=2), axis=1)
    return {"mean": float(medians.mean()), "std": float(medians.std()), "medians": medians.tolist()}
