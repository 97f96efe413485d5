"""The training loop of the recurrent double DQN (PermaKey paper, Appendix A.2.3; docs/method.md section 4).

One process alternates: the actor takes an epsilon-greedy step (epsilon linear 1 -> 0.1 over the run) through the
keypoint-observation environment, the replay stores the step's encoder view, and from `learning_starts` on the learner
makes one update every `update_every` steps on a batch of windows. Episodes end on termination (a lost life in
training) or truncation (the frame cap), which the replay and the targets keep apart.

`Trainer.run(until)` advances to agent step `until` and can be called again; `train_with_validation` runs it in
stretches of `validate_every` steps, each followed by a validation and a checkpoint (experiments/train_agent.py saves
them), and `state()`/`restore()` carry the counters across a resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf

from rl.actor import Policy, QPolicy, epsilon_at
from rl.envs import Observation
from rl.learner import Learner
from rl.networks import RecurrentQNetwork
from rl.replay import SequenceReplay

PAPER_SCHEDULE = {
    "learning_starts": 10_000,
    "update_every": 4,
    "batch_size": 16,
    "window": 8,
    "epsilon_start": 1.0,
    "epsilon_end": 0.1,
}
"""The PermaKey paper's schedule besides its 100k steps (section 5: windows of 8, batch 16; Appendix A.2.3 and the
authors' code: learning from 10k steps, an update every 4, epsilon 1 -> 0.1 over the run): written once."""

LARGE_VIEW = 4096
"""View entries with more values than this per step (the CNN's masked feature maps) are stored as float16."""


def replay_fields(observation_space: gym.Space) -> dict[str, tuple[tuple[int, ...], Any]]:
    """The replay layout for a KeypointObservation's view (the frame and coordinates are not needed)."""
    fields: dict[str, tuple[tuple[int, ...], Any]] = {}
    spaces = observation_space.spaces if isinstance(observation_space, gym.spaces.Dict) else {}
    view = spaces.get("view")
    for name, space in (view.spaces if isinstance(view, gym.spaces.Dict) else {}).items():
        if space.shape is not None:
            shape = tuple(space.shape)
            fields[name] = (shape, np.float16 if int(np.prod(shape)) > LARGE_VIEW else np.float32)
    if not fields:
        raise ValueError("The environment has no encoder view: wrap it in KeypointObservation(env, keypointer, view).")
    return fields


@dataclass
class Schedule:
    """When the loop acts and learns: `total_steps` agent steps, one update of `batch_size` windows of `window`
    transitions every `update_every` steps from `learning_starts` on, epsilon linear from `epsilon_start` to
    `epsilon_end` over the run."""

    total_steps: int
    learning_starts: int
    update_every: int
    batch_size: int
    window: int
    epsilon_start: float
    epsilon_end: float


@dataclass
class Timing:
    """Seconds spent per part of the loop (for the benchmark and the run record)."""

    acting: float = 0.0  # Q-network step and action choice
    environment: float = 0.0  # emulation plus the keypointer and view (inside the observation wrapper)
    learning: float = 0.0  # sampling and the update

    def as_dict(self) -> dict[str, float]:
        return {"acting": self.acting, "environment": self.environment, "learning": self.learning}


class Trainer:
    """The actor, the replay and the learner, stepped together through `env`. The actor is an epsilon-greedy QPolicy
    on `online` whose epsilon follows the schedule, unless `policy` is given: then that policy explores its own way
    (rl/options.py's OptionPolicy) and the schedule's epsilon is unused. A given policy needs `reset`, `act` and a
    numpy Generator `rng` (its stream is saved with the counters)."""

    def __init__(
        self,
        env: gym.Env,
        online: RecurrentQNetwork,
        learner: Learner,
        replay: SequenceReplay,
        schedule: Schedule,
        seed: int,
        on_episode: Callable[[int, float, int], None] | None = None,
        on_update: Callable[[int, dict[str, float]], None] | None = None,
        policy: Policy | None = None,
    ):
        self.env, self.online, self.learner, self.replay, self.schedule = env, online, learner, replay, schedule
        self._scheduled = policy is None  # our QPolicy: epsilon from the schedule
        self.policy: Any = QPolicy(online, epsilon=schedule.epsilon_start, seed=seed) if policy is None else policy
        self.on_episode, self.on_update = on_episode, on_update
        self.seed = seed
        self.step = 0
        self.episodes = 0
        self.timing = Timing()
        self._observation: Observation | None = None
        self._seeded = False
        self._return = 0.0
        self._length = 0

    def _stored(self, observation: Observation) -> dict[str, np.ndarray]:
        return {name: observation["view"][name] for name in self.replay.fields}

    def _reset(self) -> None:
        # The first episode (and the first after a resume) seeds the environment; later ones continue its stream.
        seed = None if self._seeded else self.seed + 1009 * self.episodes
        self._seeded = True
        self._observation, _ = self.env.reset(seed=seed)
        self.policy.reset()
        self._return, self._length = 0.0, 0

    def _update(self) -> dict[str, float]:
        s = self.schedule
        batch = self.replay.sample(s.batch_size, s.window)
        views = {k: tf.constant(v, tf.float32) for k, v in batch["observations"].items()}
        out = self.learner.train_step(
            views,
            tf.constant(batch["actions"]),
            tf.constant(batch["rewards"]),
            tf.constant(batch["terminated"]),
            tf.constant(batch["truncated"]),
        )
        return {k: float(v) for k, v in out.items()}

    def run(self, until: int, progress: Any = None) -> None:
        """Acts (and learns) until agent step `until` (exclusive)."""
        s = self.schedule
        if self._observation is None:
            self._reset()
        while self.step < until:
            t0 = time.perf_counter()
            if self._scheduled:
                self.policy.epsilon = epsilon_at(self.step, s.total_steps, s.epsilon_start, s.epsilon_end)
            observation = self._observation
            assert observation is not None
            action = self.policy.act(observation)
            t1 = time.perf_counter()
            following, reward, terminated, truncated, _ = self.env.step(action)
            t2 = time.perf_counter()
            self.replay.add(self._stored(observation), action, float(reward), terminated, truncated)
            self._return += float(reward)
            self._length += 1
            if terminated or truncated:
                self.replay.end_episode(self._stored(following))
                if self.on_episode is not None:
                    self.on_episode(self.step + 1, self._return, self._length)
                self.episodes += 1
                t3 = time.perf_counter()
                self._reset()
                t2 += time.perf_counter() - t3  # the reset's keypointer call counts as environment time
            else:
                self._observation = following
            self.timing.acting += t1 - t0
            self.timing.environment += t2 - t1
            self.step += 1
            if self.step >= s.learning_starts and self.step % s.update_every == 0:
                t4 = time.perf_counter()
                out = self._update()
                if not np.isfinite(out["loss"]):
                    raise FloatingPointError(
                        f"Non-finite TD loss at agent step {self.step}: {out}. The last checkpoint is kept; lower the "
                        "learning rate or check the keypointer's outputs for NaNs."
                    )
                self.timing.learning += time.perf_counter() - t4
                if self.on_update is not None:
                    self.on_update(self.step, out)
            if progress is not None:
                progress.update(1)

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "episodes": self.episodes,
            "policy_rng": self.policy.rng.bit_generator.state,
            "replay_rng": self.replay.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.step, self.episodes = int(state["step"]), int(state["episodes"])
        self.policy.rng.bit_generator.state = state["policy_rng"]
        self.replay.restore(state["replay_rng"])
        self.replay.abandon_episode()  # the environment restarts: the unfinished episode gets no more rows
        self._observation, self._seeded = None, False


def train_with_validation(
    trainer: Trainer,
    validate_every: int,
    validate: Callable[[], float],
    checkpoint: Callable[[int, float], None],
    progress: Any = None,
) -> None:
    """Runs `trainer` to its schedule's last step in stretches that end on multiples of `validate_every` agent steps
    (or the last step); after each, `validate()` scores the policy and `checkpoint(step, score)` keeps what a resume
    and the test protocol need."""
    total = trainer.schedule.total_steps
    while trainer.step < total:
        until = min(total, (trainer.step // validate_every + 1) * validate_every)
        trainer.run(until, progress)
        checkpoint(trainer.step, validate())
