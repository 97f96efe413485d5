"""Episode-aware sequence replay for the recurrent agent (seed 002, Appendix A.2.3; reference.md section 4).

Stores observations as uint8 frames (the authors stored int32: 4x the memory) beside the frozen keypointer's
coordinates computed once at acting time, so learning never reruns the expensive part of the keypointer (PermaKey's
LSPNs and PointNet); the cheap parts (heatmaps from coordinates, encoder features) are recomputed from the frames.

Layout: one row per observation s_t, with the transition that leaves it (a_t, r_t, terminated_t, truncated_t); an
episode's final observation is a row with action -1. Windows of W transitions take rows i..i+W of one episode, so a
window never crosses an episode boundary; episodes shorter than W transitions are never sampled.
"""

from __future__ import annotations

import numpy as np


class SequenceReplay:
    def __init__(self, capacity: int, frame_shape: tuple[int, ...], num_keypoints: int, seed: int):
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}.")
        self.capacity = capacity
        self.frames = np.zeros((capacity, *frame_shape), np.uint8)
        self.keypoints = np.zeros((capacity, num_keypoints, 2), np.float32)
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

    def _write(self, frame: np.ndarray, keypoints: np.ndarray, action: int, reward: float, term: bool, trunc: bool):
        if frame.dtype != np.uint8 or frame.shape != self.frames.shape[1:]:
            raise ValueError(f"Replay stores uint8 frames {self.frames.shape[1:]}, got {frame.dtype} {frame.shape}.")
        i = self._next
        self.frames[i], self.keypoints[i] = frame, keypoints
        self.actions[i], self.rewards[i] = action, reward
        self.terminated[i], self.truncated[i] = term, trunc
        self.episode[i], self.step[i] = self._episode, self._step
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self._step += 1

    def add(
        self, frame: np.ndarray, keypoints: np.ndarray, action: int, reward: float, terminated: bool, truncated: bool
    ) -> None:
        """Observation s_t and the transition taken from it."""
        self._write(frame, keypoints, int(action), float(reward), bool(terminated), bool(truncated))

    def end_episode(self, final_frame: np.ndarray, final_keypoints: np.ndarray) -> None:
        """The observation the last transition led to; the next `add` starts a new episode."""
        self._write(final_frame, final_keypoints, -1, 0.0, False, False)
        self._episode += 1
        self._step = 0

    def valid_starts(self, transitions: int) -> np.ndarray:
        """Row indices i whose rows i..i+W (W = transitions) hold W transitions of one episode in time order."""
        rows = np.arange(self.size)
        last = (rows + transitions) % self.capacity
        ok = (
            (self.episode[rows] >= 0)
            & (self.episode[last] == self.episode[rows])
            & (self.step[last] == self.step[rows] + transitions)
            & ((rows + transitions < self.size) | (self.size == self.capacity))  # row i+W written
        )
        return rows[ok]

    def sample(self, batch_size: int, transitions: int) -> dict[str, np.ndarray]:
        """A batch of windows: frames [B, W+1, ...] uint8, keypoints [B, W+1, K, 2], and per transition actions,
        rewards, terminated, truncated [B, W]."""
        starts = self.valid_starts(transitions)
        if len(starts) == 0:
            raise ValueError(f"No complete window of {transitions} transitions in the replay yet.")
        picks = self._rng.choice(starts, size=batch_size)
        obs = (picks[:, None] + np.arange(transitions + 1)[None]) % self.capacity
        tr = obs[:, :-1]
        return {
            "frames": self.frames[obs],
            "keypoints": self.keypoints[obs],
            "actions": self.actions[tr],
            "rewards": self.rewards[tr],
            "terminated": self.terminated[tr],
            "truncated": self.truncated[tr],
        }
