"""Per-epoch health of a keypoint run, measured against what the method is about: keypoints on objects.

A loss that goes down says little: a keypointer can lower it with keypoints parked at fixed spots (the failure this
project's first quick runs had). Every epoch, on a fixed clip of test frames with their ground-truth objects, a keypoint
run logs:
  epoch.keypoint_motion      mean over keypoints of the std of its position (normalised units; ~0: still keypoints)
  epoch.keypoint_distinct    distinct spots per frame (K: none coincide; 1: all collapsed)
  epoch.keypoint_recall      frame-level recall of the moving objects at the game's epsilon (keypoints/metrics.py)
  epoch.keypoint_recall_held_still  the same with each keypoint held at its mean position over the clip
                             (keypoints.metrics.held_still): what parked keypoints score; the tracking is the rest
  epoch.error_mass_on_objects.<i>  (PermaKey) the share of error map i's mass on moving objects
and PermaKey runs warn when PointNet's validation loss is no better than with another frame's keypoints.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import keras
import numpy as np

from data import storage
from data.readers import read_episodes
from keypoints.metrics import (
    collapse_statistics,
    frame_precision_recall,
    grid_to_frame,
    held_still,
    mass_on_objects,
    scored_objects,
    truth_from_boxes,
)

CLIP_FRAMES = 64
"""Test frames (spread over the test split) on which each epoch's health is measured."""

log = logging.getLogger("keypoint_health")


@dataclasses.dataclass
class GroundTruthClip:
    """Frames [N, 84, 84, 3] uint8 and, per frame, the native (x, y, w, h) boxes of the moving objects on screen."""

    frames: np.ndarray
    boxes: list[np.ndarray]
    epsilon: float
    categories: list[np.ndarray] | None = None
    """Per frame, the category name of each box (None: not kept)."""

    def truth(self) -> list[np.ndarray]:
        """Per frame, [N_t, 2] object centres in normalised (y, x) frame coordinates."""
        return [truth_from_boxes(b) for b in self.boxes]


def ground_truth_clip(dataset: str, game: str, count: int, epsilon: float) -> GroundTruthClip:
    """`count` frames spread evenly over the test split of `dataset`, with their moving objects' boxes."""
    manifest = storage.read_manifest(dataset)
    names = np.asarray(manifest["categories"])
    keep = np.isin(names, manifest.get("moving_categories", []))
    frames, boxes, categories = [], [], []
    for episode in read_episodes(dataset, "test", game=game):
        for frame, objects in zip(episode.frames, episode.objects, strict=True):
            scored = scored_objects(objects.boxes, objects.categories, keep)
            frames.append(frame)
            boxes.append(objects.boxes[scored])
            categories.append(names[np.asarray(objects.categories, int)[scored]])
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).astype(int)
    return GroundTruthClip(
        np.stack([frames[i] for i in picks]), [boxes[i] for i in picks], epsilon, [categories[i] for i in picks]
    )


def keypoint_health(keypointer: Any, clip: GroundTruthClip, batch: int = 32) -> dict[str, float]:
    """motion, distinct, recall, recall held still and (keypointers with `error_maps`) error_mass_on_objects.<i> on the
    clip."""
    grid, geometry = keypointer.geometry
    coordinates, maps = [], []
    for start in range(0, len(clip.frames), batch):
        chunk = clip.frames[start : start + batch]
        coordinates.append(grid_to_frame(keypointer(chunk).coordinates.numpy(), grid, geometry))
        if hasattr(keypointer, "error_maps"):
            maps.append(keypointer.error_maps(chunk).numpy())
    detected = np.concatenate(coordinates)
    stats = collapse_statistics(detected)
    (still,) = held_still([detected])
    result = {
        "keypoint_motion": stats["motion"],
        "keypoint_distinct": stats["distinct"],
        "keypoint_recall": frame_precision_recall(list(detected), clip.truth(), clip.epsilon)["recall"],
        "keypoint_recall_held_still": frame_precision_recall(list(still), clip.truth(), clip.epsilon)["recall"],
    }
    if maps:
        for i, share in enumerate(mass_on_objects(np.concatenate(maps), clip.boxes)):
            result[f"error_mass_on_objects.{i}"] = float(share)
    return result


class KeypointHealth(keras.callbacks.Callback):
    """Logs `epoch.<name>` of keypoint_health at every epoch's end; `log_test` logs `test.<name>` for the final
    keypointer. With `baseline`, warns (log and run.info["warnings"]) when the validation loss named by its first
    entry is not below the one named by its second (PermaKey: PointNet's loss vs the same with another frame's
    keypoints)."""

    def __init__(
        self, run: Any, keypointer: Any, clip: GroundTruthClip, baseline: tuple[str, str] | None = None
    ) -> None:
        super().__init__()
        self.run, self.keypointer, self.clip, self.baseline = run, keypointer, clip, baseline

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for name, value in keypoint_health(self.keypointer, self.clip).items():
            self.run.log_scalar(f"epoch.{name}", value, epoch + 1)
        logs = logs or {}
        if self.baseline and self.baseline[0] in logs and self.baseline[1] in logs:
            loss, baseline = float(logs[self.baseline[0]]), float(logs[self.baseline[1]])
            if loss >= baseline:
                message = (
                    f"epoch {epoch + 1}: {self.baseline[0]} {loss:.5f} is no better than {self.baseline[1]} "
                    f"{baseline:.5f}: the keypoints do not yet explain where the errors are."
                )
                log.warning(message)
                self.run.info.setdefault("warnings", []).append(message)

    def log_test(self, keypointer: Any) -> dict[str, float]:
        result = keypoint_health(keypointer, self.clip)
        for name, value in result.items():
            self.run.log_scalar(f"test.{name}", value)
        return result
