"""PermaKey as a keypointer (keypoints/protocol.py): frames -> PointNet keypoints, their Gaussian heatmaps and the VAE
encoder features on the heatmaps' grid. Only the inference path runs (VAE encoder, LSPNs, PointNet's KeyNet)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from keypoints.networks import build_by_calling
from keypoints.ops import keypoints_to_maps, maps_to_keypoints
from keypoints.protocol import SavedKeypointer, as_frames
from permakey.model import PermaKey, PermaKeyConfig


class PermaKeyKeypointer(SavedKeypointer):
    kind = "permakey"

    @classmethod
    def build(cls, fields: dict[str, Any]) -> PermaKey:
        return build_permakey(PermaKeyConfig(**fields))

    @property
    def geometry(self) -> tuple[int, tuple[float, float]]:
        """(keypoint grid size, (scale, offset)): grid cell i maps to frame pixel scale * i + offset, where PointNet's
        loss draws that cell's Gaussian window (permakey.pointnet.summed_windows: nearest resizing puts cell i over
        pixels [i s, (i + 1) s), centre (i + 0.5) s - 0.5). That is what the keypoints were trained to cover; the
        KeyNet's receptive-field centre lies 2 px further on a 21x21 grid (docs/method.md section 3.6)."""
        c = self.config
        grid = c.image_shape[0]
        for s in c.pointnet_strides:
            grid = -(-grid // s)
        scale = c.image_shape[0] / grid
        return grid, (scale, 0.5 * scale - 0.5)

    def error_maps(self, frames: tf.Tensor | np.ndarray) -> tf.Tensor:
        """[B, 84, 84, M] normalised error maps of the chosen encoder layers, in [0, 1]."""
        return self.model.error_maps(as_frames(frames, self.config.image_shape))

    def reconstructions(self, frames: tf.Tensor | np.ndarray) -> tf.Tensor:
        """[B, 84, 84, 3] the VAE's reconstructions of the frames (inference mode), for pictures."""
        return self.model.vae(as_frames(frames, self.config.image_shape), training=False)["reconstruction"]

    def _forward(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        _, key_maps, activations = self.model.infer(frames)
        coordinates = maps_to_keypoints(key_maps)
        h, w = key_maps.shape[1], key_maps.shape[2]
        heatmaps = keypoints_to_maps(coordinates, h, w, self.config.sigma)
        same_grid = [a for a in activations if a.shape[1] == h and a.shape[2] == w]
        features = same_grid[-1] if same_grid else tf.image.resize(activations[-1], (h, w))
        return coordinates, heatmaps, features


def build_permakey(config: PermaKeyConfig) -> PermaKey:
    """A PermaKey model with its variables created (by one call on zeros, keypoints.networks.build_by_calling)."""
    model = PermaKey(config)
    build_by_calling(model, tf.zeros((1, *config.image_shape)), training=False)
    return model
