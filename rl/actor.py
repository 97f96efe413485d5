"""The actor: policies that choose actions from keypoint observations, and the exploration schedule (PermaKey
paper, Appendix A.2.3; docs/method.md section 4).

`QPolicy` is epsilon-greedy on the recurrent Q-network and carries its LSTM state through an episode (epsilon 0: the
greedy policy that validation and the test protocol use); the training loop sets its epsilon from `epsilon_at`, linear
from 1 to 0.1 over the run in the paper. `RandomPolicy` is the test protocol's baseline.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import tensorflow as tf

from rl.envs import Observation
from rl.networks import RecurrentQNetwork


class Policy(Protocol):
    def reset(self) -> None: ...

    def act(self, observation: Any) -> int: ...


def view_of(observation: Observation) -> dict[str, np.ndarray]:
    """The encoder's view of a KeypointObservation, as {name: [1, 1, ...]} (batch 1, one time step)."""
    return {name: value[None, None] for name, value in observation["view"].items()}


class QPolicy:
    """Epsilon-greedy on a recurrent Q-network, carrying its LSTM state through the episode (epsilon 0: greedy)."""

    def __init__(self, network: RecurrentQNetwork, epsilon: float, seed: int):
        self.network, self.epsilon = network, epsilon
        self.rng = np.random.default_rng(seed)
        self._q = tf.function(lambda view, state: network(view, initial_state=state, return_state=True))
        self.state = network.initial_state(1)
        self.last_q: np.ndarray | None = None

    def reset(self) -> None:
        self.state = self.network.initial_state(1)

    def act(self, observation: Observation) -> int:
        q, self.state = self._q(view_of(observation), self.state)
        values = q.numpy()[0, 0]
        self.last_q = values
        if self.epsilon > 0 and self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.network.num_actions))
        return int(np.argmax(values))


class RandomPolicy:
    def __init__(self, num_actions: int, seed: int):
        self.num_actions = num_actions
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def act(self, observation: Any) -> int:
        return int(self.rng.integers(self.num_actions))


def epsilon_at(step: int, total: int, start: float, end: float) -> float:
    """The linear exploration schedule: start -> end over `total` agent steps, then end."""
    if total <= 0:
        return end
    return start + (end - start) * min(step / total, 1.0)
