"""PermaKey as a keypointer (keypoints/protocol.py): frames -> PointNet keypoints, their Gaussian heatmaps and the VAE
encoder features on the heatmaps' grid. Only the inference path runs (VAE encoder, LSPNs, PointNet's KeyNet)."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from keypoints.ops import keypoints_to_maps, maps_to_keypoints
from keypoints.protocol import CONFIG_FILE, WEIGHTS_FILE, KeypointOutput, as_frames
from permakey.model import PermaKey, PermaKeyConfig


class PermaKeyKeypointer:
    kind = "permakey"

    def __init__(self, model: PermaKey):
        self.model = model
        self.config = model.config
        self.num_keypoints = model.config.num_keypoints
        self._infer = tf.function(self._forward, reduce_retracing=True)

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
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            self.model.save_weights(os.path.join(tmp, WEIGHTS_FILE))
            with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
                json.dump({"kind": self.kind, "config": dataclasses.asdict(self.config)}, f, indent=2)
            os.replace(os.path.join(tmp, WEIGHTS_FILE), directory / WEIGHTS_FILE)
            os.replace(os.path.join(tmp, CONFIG_FILE), directory / CONFIG_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> PermaKeyKeypointer:
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        for path in (config_path, weights_path):
            if not path.exists():
                raise FileNotFoundError(
                    f"No keypointer at {directory}: {path} is missing. Pass a folder written by "
                    "`make train-permakey` (its run folder under runs/, or its checkpoint folder)."
                )
        saved = json.loads(config_path.read_text())
        if saved.get("kind") != cls.kind:
            raise ValueError(f"{config_path} holds a {saved.get('kind')!r} keypointer, not {cls.kind!r}.")
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()}
        config = PermaKeyConfig(**fields)
        model = build_permakey(config)
        model.load_weights(str(weights_path))
        return cls(model)


def build_permakey(config: PermaKeyConfig) -> PermaKey:
    """A PermaKey model with its variables created (by one call on zeros)."""
    model = PermaKey(config)
    model(tf.zeros((1, *config.image_shape)), training=False)
    return model
