"""Episode-aware sequence replay for the recurrent agent (PermaKey paper, Appendix A.2.3; docs/method.md section 4).

Each row holds one observation s_t as named arrays of fixed shape and dtype (`fields`), with the transition that
leaves it (a_t, r_t, terminated_t, truncated_t). The agent stores what the frozen keypointer and its encoder's frozen
part computed once at acting time (rl/encoders.py `view`: the CNN's masked feature maps, or per-keypoint coordinates
and features), so learning never reruns the keypointer; frames, when stored, are uint8 (the authors stored int32:
4x the memory). An episode's final observation is a row with action -1. Windows of W transitions take rows i..i+W of
one episode, so a window never crosses an episode boundary; episodes shorter than W transitions are never sampled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class SequenceReplay:
    """fields: {name: (shape, dtype)} of one observation."""

    def __init__(self, capacity: int, fields: dict[str, tuple[tuple[int, ...], np.dtype | type]], seed: int):
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}.")
        self.capacity = capacity
        self.fields = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in fields.items()}
        self.observations = {name: np.zeros((capacity, *shape), dtype) for name, (shape, dtype) in self.fields.items()}
        self.actions = np.full(capacity, -1, np.int32)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, bool)
        self.truncated = np.zeros(capacity, bool)
        self.episode = np.full(capacity, -1, np.int64)
        self.step = np.zeros(capacity, np.int64)
        self.size = 0
        self._next = 0
        self._episode = 0
        self._step = 0
        self._rng = np.random.default_rng(seed)
        self._valid: dict[int, np.ndarray] = {}  # per window length: which rows start a complete window

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.observations.values())

    def _write(self, observation: dict, action: int, reward: float, term: bool, trunc: bool) -> None:
        if set(observation) != set(self.fields):
            raise ValueError(
                f"Replay stores observations with fields {sorted(self.fields)}, got {sorted(observation)}."
            )
        i = self._next
        for name, value in observation.items():
            shape, dtype = self.fields[name]
            value = np.asarray(value)
            if value.shape != shape or (dtype == np.uint8 and value.dtype != np.uint8):
                raise ValueError(
                    f"Replay field {name!r} stores {dtype} {shape}, got {value.dtype} {value.shape} "
                    "(frames must be uint8)."
                )
            self.observations[name][i] = value
        self.actions[i], self.rewards[i] = action, reward
        self.terminated[i], self.truncated[i] = term, trunc
        self.episode[i], self.step[i] = self._episode, self._step
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self._step += 1
        for w, valid in self._valid.items():  # only windows that contain row i change
            valid[(i - np.arange(w)) % self.capacity] = False  # they now reach past the newest row
            start = (i - w) % self.capacity
            valid[start] = self.episode[start] == self.episode[i] and self.step[i] == self.step[start] + w

    def add(self, observation: dict, action: int, reward: float, terminated: bool, truncated: bool) -> None:
        """Observation s_t and the transition taken from it."""
        self._write(observation, int(action), float(reward), bool(terminated), bool(truncated))

    def end_episode(self, final_observation: dict) -> None:
        """The observation the last transition led to; the next `add` starts a new episode."""
        self._write(final_observation, -1, 0.0, False, False)
        self._episode += 1
        self._step = 0

    def abandon_episode(self) -> None:
        """Starts a new episode without a final row (a resumed run restarts its environment); windows wholly inside
        the unfinished episode's rows stay usable."""
        self._episode += 1
        self._step = 0

    def valid_starts(self, transitions: int) -> np.ndarray:
        """Row indices i whose rows i..i+W (W = transitions) hold W transitions of one episode in time order.

        Computed once per W, then kept up to date row by row as rows are written (sampling stays cheap at 100k rows).
        """
        if transitions not in self._valid:
            valid = np.zeros(self.capacity, bool)
            valid[self._scan(transitions)] = True
            self._valid[transitions] = valid
        return np.flatnonzero(self._valid[transitions])

    def _scan(self, transitions: int) -> np.ndarray:
        rows = np.arange(self.size)
        last = (rows + transitions) % self.capacity
        ok = (
            (self.episode[rows] >= 0)
            & (self.episode[last] == self.episode[rows])
            & (self.step[last] == self.step[rows] + transitions)
            & ((rows + transitions < self.size) | (self.size == self.capacity))  # row i+W written
        )
        return rows[ok]

    def sample(self, batch_size: int, transitions: int) -> dict[str, Any]:
        """A batch of windows: {"observations": {name: [B, W+1, ...]}, and per transition "actions", "rewards",
        "terminated", "truncated": [B, W]}."""
        starts = self.valid_starts(transitions)
        if len(starts) == 0:
            raise ValueError(f"No complete window of {transitions} transitions in the replay yet.")
        picks = self._rng.choice(starts, size=batch_size)
        obs = (picks[:, None] + np.arange(transitions + 1)[None]) % self.capacity
        tr = obs[:, :-1]
        return {
            "observations": {name: array[obs] for name, array in self.observations.items()},
            "actions": self.actions[tr],
            "rewards": self.rewards[tr],
            "terminated": self.terminated[tr],
            "truncated": self.truncated[tr],
        }

    def state(self) -> dict[str, Any]:
        """The sampling stream's position (JSON-able), for a resumed run to continue it; the rows are `save`d."""
        return dict(self._rng.bit_generator.state)

    def restore(self, state: dict[str, Any]) -> None:
        """Continues the sampling stream from `state()`."""
        self._rng.bit_generator.state = state

    # A resumed run continues with the same replay; np.savez writes a temporary file that is then renamed.
    _STATE = ("actions", "rewards", "terminated", "truncated", "episode", "step")

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        arrays = {f"obs.{k}": v for k, v in self.observations.items()} | {k: getattr(self, k) for k in self._STATE}
        counters = np.array([self.size, self._next, self._episode, self._step], np.int64)
        np.savez(tmp, counters=counters, **arrays)
        tmp.replace(path)

    def load(self, path: str | Path) -> None:
        with np.load(path) as saved:
            for name, array in self.observations.items():
                if f"obs.{name}" not in saved or saved[f"obs.{name}"].shape != array.shape:
                    raise ValueError(
                        f"{path} holds a replay of another layout than this run's: delete it to start over."
                    )
                array[...] = saved[f"obs.{name}"]
            for name in self._STATE:
                getattr(self, name)[...] = saved[name]
            self.size, self._next, self._episode, self._step = (int(x) for x in saved["counters"])
        self._valid.clear()
