"""PermaKey as a keypointer (keypoints/protocol.py): frames -> PointNet keypoints, their Gaussian heatmaps and the VAE
encoder features on the heatmaps' grid. Only the inference path runs (VAE encoder, LSPNs, PointNet's KeyNet)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from keypoints.metrics import receptive_field
from keypoints.ops import keypoints_to_maps, maps_to_keypoints
from keypoints.protocol import KeypointOutput, as_frames, read_keypointer, write_keypointer
from permakey.model import PermaKey, PermaKeyConfig


class PermaKeyKeypointer:
    kind = "permakey"

    def __init__(self, model: PermaKey):
        self.model = model
        self.config = model.config
        self.num_keypoints = model.config.num_keypoints
        self._infer = tf.function(self._forward, reduce_retracing=True)

    @property
    def geometry(self) -> tuple[int, tuple[float, float]]:
        """(keypoint grid size, (scale, offset)): grid cell i has its receptive-field centre at frame pixel
        scale * i + offset (keypoints.metrics.receptive_field of PointNet's KeyNet)."""
        c = self.config
        grid = c.image_shape[0]
        for s in c.pointnet_strides:
            grid = -(-grid // s)
        return grid, receptive_field(c.image_shape[0], c.encoder_kernels, c.pointnet_strides)

    def error_maps(self, frames: tf.Tensor | np.ndarray) -> tf.Tensor:
        """[B, 84, 84, M] normalised error maps of the chosen encoder layers, in [0, 1]."""
        return self._error_maps(as_frames(frames, self.config.image_shape))[0]

    def _error_maps(self, frames: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        activations = self.model.vae.encoder(frames, training=False)
        return self.model.predict_errors(activations)[1], activations

    def _forward(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        maps, activations = self._error_maps(frames)
        key_maps = self.model.pointnet.keynet(maps, training=False)
        coordinates = maps_to_keypoints(key_maps)
        h, w = key_maps.shape[1], key_maps.shape[2]
        heatmaps = keypoints_to_maps(coordinates, h, w, self.config.sigma)
        same_grid = [a for a in activations if a.shape[1] == h and a.shape[2] == w]
        features = same_grid[-1] if same_grid else tf.image.resize(activations[-1], (h, w))
        return coordinates, heatmaps, tf.cast(features, tf.float32)

    def __call__(self, frames: tf.Tensor | np.ndarray) -> KeypointOutput:
        coordinates, heatmaps, features = self._infer(as_frames(frames, self.config.image_shape))
        return KeypointOutput(coordinates, heatmaps, features)

    def save(self, directory: str | Path) -> None:
        """Writes keypointer.json and the weights into `directory`, replacing both at once (never half-written)."""
        write_keypointer(directory, self.kind, dataclasses.asdict(self.config), self.model.save_weights)

    @classmethod
    def load(cls, directory: str | Path) -> PermaKeyKeypointer:
        _, fields, weights = read_keypointer(directory, cls.kind)
        model = build_permakey(PermaKeyConfig(**fields))
        model.load_weights(str(weights))
        return cls(model)


def build_permakey(config: PermaKeyConfig) -> PermaKey:
    """A PermaKey model with its variables created (by one call on zeros)."""
    model = PermaKey(config)
    model(tf.zeros((1, *config.image_shape)), training=False)
    return model
