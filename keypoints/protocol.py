"""The keypointer protocol: what evaluation, agents and pictures see of any keypoint model (architecture.md).

frames [B, 84, 84, 3] float in [0, 1] (uint8 accepted and scaled) -> KeypointOutput with
  coordinates [B, K, 2]  (y, x) in [-1, 1], y down;
  heatmaps    [B, h, w, K] Gaussian maps at the keypoints, peak 1;
  features    [B, h, w, C] the model's feature maps on the same h x w grid.
A learned keypointer (PermaKey, Transporter) is frozen: a pure function of the frame. It saves to, and loads from, a
folder holding `keypointer.json` (kind and config) and `keypointer.weights.h5`, so a run folder that holds both is a
keypointer.

An object keypointer (`ObjectKeypointer`, `reads_objects` true: the ground-truth oracle of keypoints/oracle.py) gives
the same output on the same geometry but is NOT a pure function of the frame: its coordinates and heatmaps come from
object positions read from the emulator's RAM, which the caller passes in (the agents' observation wrapper,
rl.envs.ObjectKeypointObservation); only its features are computed from the frame. It has no folder: `KP=oracle`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tensorflow as tf

from keypoints.ops import FRAME_SHAPE

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

    @property
    def geometry(self) -> tuple[int, tuple[float, float]]:
        """(keypoint grid size, (scale, offset)) with grid cell i centred at frame pixel scale * i + offset; evaluation
        maps keypoints to frame pixels with it (keypoints.metrics.grid_to_frame)."""
        ...

    def __call__(self, frames: tf.Tensor | np.ndarray) -> KeypointOutput: ...


class ObjectKeypointer(Protocol):
    """A keypointer fed object positions besides the frames (module docstring); `absent(frames)` is its output with
    no object present, what networks are built on."""

    kind: str
    num_keypoints: int
    reads_objects: bool

    @property
    def geometry(self) -> tuple[int, tuple[float, float]]: ...

    def __call__(
        self, frames: tf.Tensor | np.ndarray, positions: tf.Tensor | np.ndarray, present: tf.Tensor | np.ndarray
    ) -> KeypointOutput: ...

    def absent(self, frames: tf.Tensor | np.ndarray) -> KeypointOutput: ...


def reads_objects(keypointer: Any) -> bool:
    """Whether `keypointer` is an object keypointer (fed positions from the emulator) rather than a function of the
    frame."""
    return bool(getattr(keypointer, "reads_objects", False))


def blank_output(keypointer: Any) -> KeypointOutput:
    """The keypointer's output on one black frame (no objects for an object keypointer): what networks and
    observation spaces are built on."""
    frames = np.zeros((1, *FRAME_SHAPE, 3), np.uint8)
    return keypointer.absent(frames) if reads_objects(keypointer) else keypointer(frames)


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


def write_keypointer(directory: str | Path, kind: str, config: dict, save_weights: Callable[[str], None]) -> None:
    """Writes keypointer.json ({"kind", "config"}) and the weights (`save_weights(path)`) into `directory`, each
    under a temporary name renamed into place, so an interruption never leaves a half-written file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        save_weights(os.path.join(tmp, WEIGHTS_FILE))
        with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
            json.dump({"kind": kind, "config": config}, f, indent=2)
        os.replace(os.path.join(tmp, WEIGHTS_FILE), directory / WEIGHTS_FILE)
        os.replace(os.path.join(tmp, CONFIG_FILE), directory / CONFIG_FILE)


def read_keypointer(directory: str | Path, kind: str | None = None) -> tuple[str, dict[str, Any], Path]:
    """(kind, config with lists turned into tuples, weights path) of a saved keypointer; clear errors when the folder
    holds none, or one of another kind than `kind`."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.exists():
            raise FileNotFoundError(
                f"No keypointer at {directory}: {path} is missing. Pass a folder written by a keypoint-model run "
                "(`make train-permakey` or `make train-transporter`: its run folder under runs/, or its work/.../best)."
            )
    saved = json.loads(config_path.read_text())
    if kind is not None and saved.get("kind") != kind:
        raise ValueError(f"{config_path} holds a {saved.get('kind')!r} keypointer, not {kind!r}.")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()}
    return saved["kind"], config, weights_path


class SavedKeypointer:
    """What the keypoint models' keypointers share: input checks, one traced forward pass, atomic save, and load.

    A subclass sets `kind` and implements `_forward(frames) -> (coordinates, heatmaps, features)` on checked float
    frames and `build(config fields) -> model` (variables created; `model.config` a dataclass with `num_keypoints` and
    `image_shape`).
    """

    kind = ""

    def __init__(self, model: Any):
        self.model = model
        self.config = model.config
        self.num_keypoints = model.config.num_keypoints
        self._infer = tf.function(self._forward_float32, reduce_retracing=True)

    def _forward_float32(self, frames: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """_forward with float32 outputs, whatever policy the model computes in."""
        return tuple(tf.cast(t, tf.float32) for t in self._forward(frames))

    def _forward(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(coordinates, heatmaps, features) of checked float frames, in the model's compute dtype."""
        raise NotImplementedError

    @classmethod
    def build(cls, fields: dict[str, Any]) -> Any:
        raise NotImplementedError

    def __call__(self, frames: tf.Tensor | np.ndarray) -> KeypointOutput:
        return KeypointOutput(*self._infer(as_frames(frames, self.config.image_shape)))

    def save(self, directory: str | Path) -> None:
        """Writes keypointer.json and the weights into `directory`, replacing both at once (never half-written)."""
        write_keypointer(directory, self.kind, dataclasses.asdict(self.config), self.model.save_weights)

    @classmethod
    def load(cls, directory: str | Path) -> Any:
        _, fields, weights = read_keypointer(directory, cls.kind)
        model = cls.build(fields)
        model.load_weights(str(weights))
        return cls(model)
