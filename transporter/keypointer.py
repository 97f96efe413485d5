"""Transporter (or the IMM baseline) as a keypointer (keypoints/protocol.py): frames -> KeyNet keypoints, their
Gaussian heatmaps and the feature net Phi's maps on the same grid. Only Psi and Phi run."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keypoints.metrics import receptive_field
from keypoints.protocol import SavedKeypointer
from transporter.model import Transporter, TransporterConfig, build_transporter


class TransporterKeypointer(SavedKeypointer):
    kind = "transporter"

    @classmethod
    def build(cls, fields: dict[str, Any]) -> Transporter:
        return build_transporter(TransporterConfig(**fields))

    @property
    def geometry(self) -> tuple[int, tuple[float, float]]:
        """(keypoint grid size, (scale, offset)): grid cell i has its receptive-field centre at frame pixel
        scale * i + offset (keypoints.metrics.receptive_field of the KeyNet, the resize to input_size included)."""
        c = self.config
        return c.grid, receptive_field(c.input_size, c.kernels, c.strides, c.image_shape[0])

    def _forward(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return self.model.infer(frames)
