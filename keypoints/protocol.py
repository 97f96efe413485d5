"""The keypointer protocol: what evaluation, agents and pictures see of any keypoint model (architecture.md).

frames [B, 84, 84, 3] float in [0, 1] (uint8 accepted and scaled) -> KeypointOutput with
  coordinates [B, K, 2]  (y, x) in [-1, 1], y down;
  heatmaps    [B, h, w, K] Gaussian maps at the keypoints, peak 1;
  features    [B, h, w, C] the model's feature maps on the same h x w grid.
A keypointer is frozen: a pure function of the frame. It saves to, and loads from, a folder holding
`keypointer.json` (kind and config) and `keypointer.weights.h5`, so a run folder that holds both is a keypointer.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np
import tensorflow as tf

CONFIG_FILE = "keypointer.json"
WEIGHTS_FILE = "keypointer.weights.h5"


@dataclasses.dataclass
class KeypointOutput:
    coordinates: tf.Tensor
    heatmaps: tf.Tensor
    features: tf.Tensor


class Keypointer(Protocol):
    kind: str
    num_keypoints: int

    def __call__(self, frames: tf.Tensor | np.ndarray) -> KeypointOutput: ...


def as_frames(frames: tf.Tensor | np.ndarray, shape: tuple[int, int, int]) -> tf.Tensor:
    """Checks a batch of frames and returns it as float32 in [0, 1]; uint8 frames are scaled by 1/255."""
    frames = tf.convert_to_tensor(frames)
    if frames.shape.rank != 4 or tuple(frames.shape[1:]) != tuple(shape):
        raise ValueError(f"Expected frames [B, {', '.join(map(str, shape))}], got {frames.shape.as_list()}.")
    if frames.dtype == tf.uint8:
        return tf.cast(frames, tf.float32) / 255.0
    frames = tf.cast(frames, tf.float32)
    if tf.executing_eagerly():
        low, high = float(tf.reduce_min(frames)), float(tf.reduce_max(frames))
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"Float frames must lie in [0, 1], got values in [{low:g}, {high:g}]; divide uint8 frames by 255 "
                "(or pass them as uint8)."
            )
    return frames
