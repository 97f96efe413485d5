"""The keypointer protocol: what evaluation, agents and pictures see of any keypoint model.

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
The motion baseline for agents (keypoints/motion_agent.py, `KP=motion`) is an object keypointer too, whose positions
come from a tracker of recent frames that the observation wrapper keeps per environment (`tracks_frames` true,
rl.envs.MotionKeypointObservation).
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


def tracks_frames(keypointer: Any) -> bool:
    """Whether `keypointer` takes its positions from a tracker of recent frames (the motion baseline) rather than
    from the emulator."""
    return bool(getattr(keypointer, "tracks_frames", False))


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


class DamagedKeypointerError(ValueError):
    """A saved keypointer's file cannot be read (truncated or overwritten); the message names it and what to do."""

    def __init__(self, path: Path, reason: str):
        self.path = path
        super().__init__(
            f"{path} is damaged ({reason}), so the keypointer in {path.parent} cannot be loaded. Retrain it (rerun the "
            "keypoint-model run that wrote it, `make train-permakey` or `make train-transporter`), or point KP= / "
            "RUNS= (keypointer= / runs=) at another run's keypointer."
        )


def read_keypointer(directory: str | Path, kind: str | None = None) -> tuple[str, dict[str, Any], Path]:
    """(kind, config with lists turned into tuples, weights path) of a saved keypointer; clear errors when the folder
    holds none, one whose keypointer.json is damaged, or one of another kind than `kind`."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.exists():
            raise FileNotFoundError(
                f"No keypointer at {directory}: {path} is missing. Pass a folder written by a keypoint-model run "
                "(`make train-permakey` or `make train-transporter`: its run folder under runs/, or its work/.../best)."
            )
    saved = read_config(config_path)
    if kind is not None and saved.get("kind") != kind:
        raise ValueError(f"{config_path} holds a {saved.get('kind')!r} keypointer, not {kind!r}.")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()}
    return saved["kind"], config, weights_path


def read_config(path: Path) -> dict[str, Any]:
    """keypointer.json's {"kind", "config"}, or DamagedKeypointerError when it is not that JSON object (truncated)."""
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DamagedKeypointerError(path, f"not valid JSON: {error}") from None
    whole = isinstance(saved, dict) and isinstance(saved.get("kind"), str) and isinstance(saved.get("config"), dict)
    if not whole:
        raise DamagedKeypointerError(path, 'not a {"kind": ..., "config": {...}} object')
    return saved


def _optimizers(model: Any) -> list[Any]:
    """The optimizers a model holds as attributes (Keras's `optimizer`, PermaKey's `module_optimizers`)."""
    import keras

    found = []
    for value in vars(model).values():
        values = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else [value]
        found += [v for v in values if isinstance(v, keras.optimizers.Optimizer)]
    return found


def save_model_weights(model: Any, path: str) -> None:
    """Writes the model's weights to `path` (.weights.h5) without its optimizers' state: Keras's save_weights includes
    the optimizers of a compiled model (the three Adams' slots were two thirds of a PermaKey keypointer's file), and a
    keypointer is frozen, so it needs weights only."""
    from keras.src.saving import saving_lib

    saving_lib.save_weights_only(model, path, objects_to_skip=_optimizers(model))


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
        """Writes keypointer.json and the weights (without optimizer state) into `directory`, replacing both at once
        (never half-written)."""
        config = dataclasses.asdict(self.config)
        write_keypointer(directory, self.kind, config, lambda path: save_model_weights(self.model, path))

    @classmethod
    def load(cls, directory: str | Path) -> Any:
        """The keypointer saved in `directory` (weights with or without optimizer state: files written before the
        keypointers saved weights only load too); DamagedKeypointerError when a file is truncated."""
        _, fields, weights = read_keypointer(directory, cls.kind)
        model = cls.build(fields)
        try:
            model.load_weights(str(weights))
        except (OSError, KeyError, ValueError) as error:
            raise DamagedKeypointerError(weights, f"{type(error).__name__}: {error}") from None
        return cls(model)
