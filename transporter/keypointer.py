"""Transporter (or the IMM baseline) as a keypointer (keypoints/protocol.py): frames -> KeyNet keypoints, their
Gaussian heatmaps and the feature net Phi's maps on the same grid. Only Psi and Phi run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from keypoints.metrics import receptive_field
from keypoints.protocol import KeypointOutput, as_frames, read_keypointer, write_keypointer
from transporter.model import Transporter, TransporterConfig, build_transporter


class TransporterKeypointer:
    kind = "transporter"

    def __init__(self, model: Transporter):
        self.model = model
        self.config = model.config
        self.num_keypoints = model.config.num_keypoints
        self._infer = tf.function(self._forward, reduce_retracing=True)

    @property
    def geometry(self) -> tuple[int, tuple[float, float]]:
        """(keypoint grid size, (scale, offset)): grid cell i has its receptive-field centre at frame pixel
        scale * i + offset (keypoints.metrics.receptive_field of the KeyNet, the resize to input_size included)."""
        c = self.config
        return c.grid, receptive_field(c.input_size, c.kernels, c.strides, c.image_shape[0])

    def _forward(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        images = self.model.resize(frames)
        coordinates, heatmaps = self.model.keypoints(images, training=False)
        if self.model.features is not None:
            features = self.model.features(images, training=False)
        else:  # pixel transport has no feature net: the image itself, pooled onto the keypoint grid
            grid = self.config.grid
            features = tf.image.resize(images, (grid, grid), method="area")
        return coordinates, heatmaps, tf.cast(features, tf.float32)

    def __call__(self, frames: tf.Tensor | np.ndarray) -> KeypointOutput:
        coordinates, heatmaps, features = self._infer(as_frames(frames, self.config.image_shape))
        return KeypointOutput(coordinates, heatmaps, features)

    def save(self, directory: str | Path) -> None:
        """Writes keypointer.json and the weights into `directory`, replacing both at once (never half-written)."""
        write_keypointer(directory, self.kind, dataclasses.asdict(self.config), self.model.save_weights)

    @classmethod
    def load(cls, directory: str | Path) -> TransporterKeypointer:
        _, fields, weights = read_keypointer(directory, cls.kind)
        model = build_transporter(TransporterConfig(**fields))
        model.load_weights(str(weights))
        return cls(model)
