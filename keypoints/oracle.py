"""The ground-truth keypointer ("oracle", `KP=oracle`): the game's moving objects as keypoints, the ceiling that learned
keypointers are measured against (object-centric agents on true positions, as in the experiments of OCAtari,
Delfosse et al., 2023, and of SCoBots, Delfosse et al., NeurIPS 2024), on the same coordinates, grid and heatmaps
as a learned keypointer's, so the agents' encoders (rl/encoders.py) run on it unchanged.

It is not a pure function of the frame: the positions come from the emulator's RAM (OCAtari), which the observation
wrapper reads after every agent step (rl.envs.ObjectKeypointObservation) and passes in. What it computes from what:

- Slots (`slot_categories`): K fixed slots per game, K the game's num_keypoints (data/games.py). The game's moving
  categories take slots in turn (round robin in the game's category order, each up to OCAtari's maximum number of
  instances) until K slots are taken; the slots are then laid out by category order, then instance. A game whose
  moving objects are fewer than K keeps the remaining slots empty (category None, always absent).
- Assignment (`slot_positions`): at each step, a category's present objects (visible, box centre on the native
  screen: keypoints.metrics.scored_objects) fill its slots in OCAtari's object-list order; objects beyond the
  category's slots are dropped. OCAtari keeps each instance at a fixed list position, so a slot follows one object
  while the objects before it in the list stay present (MsPacman's four ghosts keep their slots).
- Coordinates: box centres go to normalised frame coordinates (keypoints.metrics.truth_from_boxes, the INTER_AREA
  geometry), then to the keypoint grid through the inverse of the grid's `geometry`, so that
  keypoints.metrics.grid_to_frame gives the object's centre back. The grid coordinates are clipped to [-1, 1] like a
  learned keypoint's: objects within half a cell of the frame's edge sit on the edge cell's centre.
- Absent objects (an empty slot, or an instance not on screen this step): coordinates ABSENT = (y, x) = (-1, -1),
  the top-left cell's centre, with an all-zero heatmap; presence is also the last feature channel (below), so an
  encoder tells an absent slot from an object in the corner.
- Heatmaps: keypoints.ops.keypoints_to_maps on the grid with `sigma` (0.15 by default, the PermaKey authors' agent-time
  width and our quick PermaKey preset's), times the slot's presence.
- Features [B, h, w, 4]: the frame's RGB area-pooled onto the h x w grid (cell i averages the frame pixels it covers,
  the cells the geometry places) and a constant channel of ones. The encoders' mask-weighted feature average under a
  keypoint (rl.encoders.keypoint_features) thus gives the colour under the object and, in the last channel, 1 for a
  present object and 0 for an absent one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keypoints.metrics import FRAME_SIZE, scored_objects, truth_from_boxes
from keypoints.ops import keypoints_to_maps
from keypoints.protocol import KeypointOutput, as_frames

ABSENT = (-1.0, -1.0)
"""(y, x) of an absent object's keypoint; its heatmap is zero and its presence feature 0."""
ORACLE_GRID = 21
"""The keypoint grid: PermaKey's (84 / 4), so the CNN encoder sees maps of the size it sees with PermaKey."""
ORACLE_SIGMA = 0.15


def slot_categories(moving: Sequence[str], max_objects: Mapping[str, int], num_slots: int) -> tuple[str | None, ...]:
    """The category of each of the `num_slots` slots (module docstring: round robin over `moving` up to each
    category's `max_objects`, laid out by category order; None for a slot no object takes)."""
    missing = [c for c in moving if c not in max_objects]
    if missing:
        raise ValueError(
            f"Moving categories {missing} are not OCAtari categories of this game ({sorted(max_objects)}); fix the "
            "game's moving_categories in data/games.py."
        )
    counts = dict.fromkeys(moving, 0)
    taken = 0
    while taken < num_slots and any(counts[c] < max_objects[c] for c in moving):
        for c in moving:
            if taken < num_slots and counts[c] < max_objects[c]:
                counts[c] += 1
                taken += 1
    slots: list[str | None] = [c for c in moving for _ in range(counts[c])]
    return tuple(slots + [None] * (num_slots - taken))


def slot_positions(
    slots: Sequence[str | None], names: Sequence[str], boxes_xywh: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(positions [K, 2] float32 (y, x) normalised frame coordinates, ABSENT where absent; present [K] bool) of one
    frame's objects, given in OCAtari's list order as category names and native (x, y, w, h) boxes."""
    positions = np.tile(np.array(ABSENT, np.float32), (len(slots), 1))
    present = np.zeros(len(slots), bool)
    boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    if len(names) != len(boxes):
        raise ValueError(f"Got {len(names)} category names for {len(boxes)} boxes: one name per box.")
    free: dict[str, list[int]] = {}
    for i, category in enumerate(slots):
        if category is not None:
            free.setdefault(category, []).append(i)
    on_screen = scored_objects(boxes, np.zeros(len(boxes), int), np.array([True]))
    centres = truth_from_boxes(boxes)
    for name, centre, visible in zip(names, centres, on_screen, strict=True):
        if visible and free.get(name):
            slot = free[name].pop(0)
            positions[slot], present[slot] = centre, True
    return positions, present


class GridKeypointer:
    """Keypoints from given positions on the oracle's grid (module docstring: coordinates, absent objects, heatmaps,
    features), an object keypointer (keypoints.protocol.ObjectKeypointer): called with the frames and the slots'
    positions and presence. The oracle fills it from the emulator's RAM, the motion baseline
    (keypoints/motion_agent.py) from the changed blobs of recent frames."""

    kind = "positions"
    reads_objects = True

    def __init__(self, num_keypoints: int, grid: int = ORACLE_GRID, sigma: float = ORACLE_SIGMA):
        if grid < 2 or sigma <= 0:
            raise ValueError(
                f"The {self.kind} keypointer needs a grid of at least 2 cells and sigma > 0, got {grid} and {sigma}."
            )
        self.num_keypoints, self.grid, self.sigma = num_keypoints, grid, sigma
        self._render = tf.function(self._forward, reduce_retracing=True)

    @property
    def geometry(self) -> tuple[int, tuple[float, float]]:
        """(grid size, (scale, offset)): grid cell i covers frame pixels [i s, (i + 1) s) of the area pooling, centre
        (i + 0.5) s - 0.5 with s = 84 / grid (PermaKey's cell geometry on the same 21 x 21 grid)."""
        scale = FRAME_SIZE / self.grid
        return self.grid, (scale, 0.5 * scale - 0.5)

    def to_grid(self, positions: tf.Tensor) -> tf.Tensor:
        """Normalised frame coordinates -> grid coordinates in [-1, 1] (the inverse of keypoints.metrics.grid_to_frame
        with this geometry, then clipped)."""
        scale, offset = self.geometry[1]
        pixels = (tf.cast(positions, tf.float32) + 1.0) / 2.0 * (FRAME_SIZE - 1)
        index = (pixels - offset) / scale
        return tf.clip_by_value(index / (self.grid - 1) * 2.0 - 1.0, -1.0, 1.0)

    def _forward(self, frames: tf.Tensor, positions: tf.Tensor, present: tf.Tensor) -> tuple[tf.Tensor, ...]:
        mask = tf.cast(present, tf.float32)  # [B, K]
        coordinates = tf.where(mask[..., None] > 0, self.to_grid(positions), tf.constant(ABSENT, tf.float32))
        heatmaps = keypoints_to_maps(coordinates, self.grid, self.grid, self.sigma) * mask[:, None, None, :]
        pooled = tf.image.resize(frames, (self.grid, self.grid), method="area")
        features = tf.concat([pooled, tf.ones_like(pooled[..., :1])], axis=-1)
        return coordinates, heatmaps, features

    def __call__(
        self, frames: tf.Tensor | np.ndarray, positions: tf.Tensor | np.ndarray, present: tf.Tensor | np.ndarray
    ) -> KeypointOutput:
        """Frames [B, 84, 84, 3], positions [B, K, 2] (y, x) normalised frame coordinates, present [B, K] bool."""
        frames = as_frames(frames, (FRAME_SIZE, FRAME_SIZE, 3))
        positions, present = tf.convert_to_tensor(positions, tf.float32), tf.convert_to_tensor(present, tf.bool)
        k = self.num_keypoints
        if positions.shape.as_list()[1:] != [k, 2] or present.shape.as_list()[1:] != [k]:
            raise ValueError(
                f"The {self.kind} keypointer of {getattr(self, 'game', '?')} has {k} slots: it needs positions "
                f"[B, {k}, 2] and present [B, {k}], got {positions.shape.as_list()} and {present.shape.as_list()}."
            )
        return KeypointOutput(*self._render(frames, positions, present))

    def absent(self, frames: tf.Tensor | np.ndarray) -> KeypointOutput:
        """The output on `frames` with every object absent (what networks are built on before any step)."""
        batch = int(np.shape(frames)[0])
        positions = np.tile(np.array(ABSENT, np.float32), (batch, self.num_keypoints, 1))
        return self(frames, positions, np.zeros((batch, self.num_keypoints), bool))


class OracleKeypointer(GridKeypointer):
    """Ground-truth keypoints of one game's moving objects (module docstring), an object keypointer
    (keypoints.protocol.ObjectKeypointer): called with the frames and the slots' positions and presence."""

    kind = "oracle"

    def __init__(self, game: str, slots: Sequence[str | None], grid: int = ORACLE_GRID, sigma: float = ORACLE_SIGMA):
        self.game, self.slots = game, tuple(slots)
        super().__init__(len(self.slots), grid, sigma)

    def describe(self) -> dict[str, Any]:
        """What a run records of the keypointer: that it is ground truth, where from, and its slots."""
        return {
            "kind": self.kind,
            "ground_truth": True,
            "source": "OCAtari RAM objects after every agent step",
            "game": self.game,
            "slots": list(self.slots),
            "grid": self.grid,
            "sigma": self.sigma,
        }
