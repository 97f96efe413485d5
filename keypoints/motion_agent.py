"""The motion baseline as an agent's keypointer (`KP=motion`): the floor of the agents' table, as the ground-truth
oracle (keypoints/oracle.py, `KP=oracle`) is its ceiling.

keypoints/motion.py's `MotionKeypointer` (background = per-pixel mode of recent frames, keypoints = centroids of the K
largest changed blobs; no training) is the floor a learned keypointer (PermaKey, Gopalakrishnan et al. ICLR 2021;
Transporter, Kulkarni et al. NeurIPS 2019) must beat at tracking objects. Here it feeds an agent (the PermaKey paper's
recurrent double DQN, section 3 and Appendix A.2.3) on the oracle's keypoint grid, so the CNN, GNN and KeyQN encoders
(rl/encoders.py) run on it unchanged and its agent is measured beside PermaKey's, Transporter's and the oracle's:

- It is a function of recent frames, not of one: the observation wrapper (rl.envs.MotionKeypointObservation) keeps one
  `MotionKeypointer` per environment (`tracker()`), resets it at every episode start and feeds it each new frame.
- K is the game's num_keypoints (data/games.py), as for the oracle.
- Positions: the tracker's keypoints in normalised frame coordinates; the components found in the frame are present,
  in the tracker's order (largest first). The slots the tracker fills by repetition (fewer than K blobs, or none: the
  first frame of an episode) are absent, as the oracle's empty slots: coordinates ABSENT, zero heatmap, presence 0.
- Coordinates, heatmaps and features: keypoints.oracle.GridKeypointer's, on the oracle's 21 x 21 grid with its sigma,
  its area-pooled frame colours and its presence channel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keypoints.motion import MotionKeypointer
from keypoints.oracle import ABSENT, ORACLE_GRID, ORACLE_SIGMA, GridKeypointer

MOTION_WINDOW = 32
MOTION_THRESHOLD = 16


class MotionAgentKeypointer(GridKeypointer):
    """The motion baseline on the oracle's grid (module docstring): an object keypointer whose positions come from a
    per-environment `tracker()` rather than from the emulator's RAM (`tracks_frames`)."""

    kind = "motion"
    tracks_frames = True

    def __init__(
        self,
        game: str,
        num_keypoints: int,
        window: int = MOTION_WINDOW,
        threshold: int = MOTION_THRESHOLD,
        grid: int = ORACLE_GRID,
        sigma: float = ORACLE_SIGMA,
    ):
        self.game, self.window, self.threshold = game, window, threshold
        super().__init__(num_keypoints, grid, sigma)
        self.tracker()  # checks K and the window

    def tracker(self) -> MotionKeypointer:
        """A fresh motion tracker of 84 x 84 RGB frames: one per environment, reset at its episode starts."""
        return MotionKeypointer(self.num_keypoints, self.window, self.threshold)

    @staticmethod
    def positions(tracker: MotionKeypointer, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions [K, 2] float32 normalised frame coordinates, ABSENT where absent; present [K] bool) of the next
        frame of the tracker's episode, which then joins its window."""
        keypoints, found = tracker.detect(frame)
        present = np.arange(len(keypoints)) < found
        positions = np.where(present[:, None], keypoints, np.array(ABSENT)).astype(np.float32)
        return positions, present

    def describe(self) -> dict[str, Any]:
        """What a run records of the keypointer: that it is the training-free motion baseline, not ground truth."""
        return {
            "kind": self.kind,
            "ground_truth": False,
            "baseline": "motion: centroids of the largest blobs that differ from the recent frames' per-pixel mode",
            "source": "keypoints.motion.MotionKeypointer on the agent's frames, reset at every episode start",
            "game": self.game,
            "num_keypoints": self.num_keypoints,
            "window": self.window,
            "threshold": self.threshold,
            "grid": self.grid,
            "sigma": self.sigma,
        }
