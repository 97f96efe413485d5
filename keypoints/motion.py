"""A training-free motion keypointer: the floor any learned keypointer must beat.

Objects in Atari games are mostly what moves over a still background, so the simplest keypointer subtracts a background
and points at what is left, with no training at all. A learned keypointer (Transporter, Kulkarni et al. NeurIPS 2019;
PermaKey, Gopalakrishnan et al. ICLR 2021) that does not track objects better than this has not learned objects.

For each frame:
  1. background: the per-pixel, per-channel mode of the last `window` frames before it (the frame itself does not vote;
     ties go to the smaller value). Kept as a running histogram of the uint8 values, so a frame costs O(pixels).
  2. foreground: the pixels where some channel differs from the background by more than `threshold` (uint8 units).
  3. keypoints: the centroids (unweighted mean pixel position) of the K largest 8-connected foreground components
     (`scipy.ndimage.label`), largest first; equal sizes keep the raster order of their first pixel.
  4. fewer than K components: the remaining keypoints repeat the largest component's centroid (a duplicate can never
     match a second object, since matching is one-to-one); with no component at all (the first frame of an episode,
     or a frame equal to its background) every keypoint sits at the frame centre (0, 0).

Output follows the keypointer protocol (keypoints/protocol.py): (y, x) in [-1, 1], y down, over the centres of the
frame's pixels, with `geometry` (frame size, (1, 0)): each pixel is one grid cell, so
`keypoints.metrics.grid_to_frame` leaves the keypoints where they are and the evaluation compares them with ground
truth exactly as it does a learned keypointer's.

Unlike a protocol keypointer it is not a pure function of one frame: it keeps the window of recent frames. Call
`reset()` at every episode start, then `step(frame)` per frame in order (or `track(frames)` for a run of them).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

EIGHT_CONNECTED = np.ones((3, 3), bool)


def frame_to_uint8(frame: np.ndarray) -> np.ndarray:
    """A frame [H, W, C] as uint8: uint8 as is, floats in [0, 1] (the protocol's other input) scaled by 255 and
    rounded."""
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return frame
    return np.clip(np.rint(frame.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def component_centroids(mask: np.ndarray, count: int) -> np.ndarray:
    """[n, 2] (row, col) centroids of the `count` largest 8-connected components of a [H, W] bool mask, largest first
    (n <= count; equal sizes in raster order of their first pixel)."""
    labels, found = ndimage.label(mask, structure=EIGHT_CONNECTED)
    if found == 0:
        return np.zeros((0, 2))
    sizes = np.bincount(labels.ravel())[1:]
    largest = np.argsort(-sizes, kind="stable")[:count] + 1
    return np.asarray(ndimage.center_of_mass(mask, labels, largest), np.float64).reshape(-1, 2)


class MotionKeypointer:
    """Background-subtraction keypoints (module docstring): a training-free floor for learned keypointers.

    Args:
      num_keypoints: K, the number of keypoints per frame.
      window: how many recent frames the background's per-pixel mode is taken over.
      threshold: the uint8 difference from the background above which a pixel is foreground.
      frame_shape: (rows, cols, channels) of the frames.
    """

    kind = "motion"

    def __init__(
        self,
        num_keypoints: int,
        window: int = 32,
        threshold: int = 16,
        frame_shape: tuple[int, int, int] = (84, 84, 3),
    ) -> None:
        if num_keypoints < 1 or window < 1:
            raise ValueError(f"Need num_keypoints >= 1 and window >= 1, got {num_keypoints} and {window}.")
        self.num_keypoints, self.window, self.threshold = num_keypoints, window, threshold
        self.frame_shape = tuple(frame_shape)
        self._pixels = int(np.prod(self.frame_shape))
        self._counts = np.zeros((self._pixels, 256), np.int32)  # per pixel and channel, a histogram of the window
        self._history = np.zeros((window, self._pixels), np.uint8)  # a ring buffer of the window's frames
        self._seen = 0

    @property
    def geometry(self) -> tuple[int, tuple[float, float]]:
        """(grid size, (scale, offset)) as in keypoints/protocol.py: one grid cell per frame pixel."""
        return self.frame_shape[0], (1.0, 0.0)

    def reset(self) -> None:
        """Forgets the recent frames (an episode start): the next frame has no background yet."""
        self._counts[:] = 0
        self._seen = 0

    def background(self) -> np.ndarray | None:
        """The current background [H, W, C] uint8 (per-pixel mode of the window), None before any frame."""
        if self._seen == 0:
            return None
        return self._counts.argmax(axis=1).astype(np.uint8).reshape(self.frame_shape)

    def _remember(self, frame: np.ndarray) -> None:
        values, pixels = frame.reshape(-1), np.arange(self._pixels)
        slot = self._seen % self.window
        if self._seen >= self.window:
            self._counts[pixels, self._history[slot]] -= 1
        self._counts[pixels, values] += 1
        self._history[slot] = values
        self._seen += 1

    def step(self, frame: np.ndarray) -> np.ndarray:
        """The keypoints [K, 2] of the next frame [H, W, C] (uint8, or float in [0, 1]) of the episode, in (y, x)
        [-1, 1] frame coordinates; the frame then joins the window."""
        return self.detect(frame)[0]

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, int]:
        """`step`, with how many of the K keypoints are components found in this frame (the first ones; the rest
        repeat the largest or sit at the centre, steps 3-4 of the module docstring)."""
        frame = frame_to_uint8(frame)
        if frame.shape != self.frame_shape:
            raise ValueError(f"Expected a frame of shape {self.frame_shape}, got {frame.shape}.")
        background = self.background()
        centroids = np.zeros((0, 2))
        if background is not None:
            difference = np.abs(frame.astype(np.int16) - background.astype(np.int16)).max(axis=-1)
            centroids = component_centroids(difference > self.threshold, self.num_keypoints)
        self._remember(frame)
        return self._normalise(centroids), len(centroids)

    def _normalise(self, centroids: np.ndarray) -> np.ndarray:
        """(row, col) centroids -> [K, 2] (y, x) in [-1, 1]; missing keypoints repeat the first (the largest), or sit
        at the centre when there is none."""
        size = np.array(self.frame_shape[:2], np.float64)
        keypoints = np.zeros((self.num_keypoints, 2))
        if len(centroids):
            keypoints[:] = centroids[0]
            keypoints[: len(centroids)] = centroids
            keypoints = keypoints / (size - 1) * 2.0 - 1.0
        return keypoints

    def track(self, frames: np.ndarray) -> np.ndarray:
        """The keypoints [T, K, 2] of consecutive frames [T, H, W, C] of one episode, continuing from the frames seen
        since the last `reset()`."""
        return np.stack([self.step(frame) for frame in frames]) if len(frames) else np.zeros((0, self.num_keypoints, 2))
