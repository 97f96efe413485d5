"""Transporter and IMM for the keypoint-training harness (training/keypoint_training.py): frame pairs, one Adam with
a staircase exponential decay, and their pictures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data.readers import pairs_dataset, read_episodes
from data.visualize import grid, save_png
from keypoints.draw import draw_keypoints
from training.checks import check_range
from training.keypoint_training import DataSettings
from transporter.keypointer import TransporterKeypointer
from transporter.model import TransporterConfig, build_transporter


@dataclasses.dataclass(frozen=True)
class TransporterTraining:
    """Transporter or IMM for the keypoint-training harness (training/keypoint_training.py): frame pairs
    `min_offset`..`max_offset` steps apart, one Adam with a staircase exponential decay."""

    config: TransporterConfig
    learning_rate: float
    decay_steps: int
    decay_rate: float
    min_offset: int
    max_offset: int
    picture_frames: int
    picture_offset: int
    monitor: str = "val_loss"
    baseline: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        check_range("learning_rate", self.learning_rate, 0, above=True)
        check_range("decay_steps", self.decay_steps, 1)
        check_range("decay_rate", self.decay_rate, 0, 1, above=True)
        check_range("min_offset", self.min_offset, 1)
        check_range("max_offset", self.max_offset, self.min_offset)
        check_range("picture_frames", self.picture_frames, 1)
        check_range("picture_offset", self.picture_offset, 1)

    def optimizer(self) -> keras.optimizers.Optimizer:
        schedule = keras.optimizers.schedules.ExponentialDecay(
            self.learning_rate, self.decay_steps, self.decay_rate, staircase=True
        )
        return keras.optimizers.Adam(schedule)

    def build(self) -> tuple[keras.Model, tf.train.Checkpoint, TransporterKeypointer]:
        model = build_transporter(self.config)
        model.compile(optimizer=self.optimizer())
        model.optimizer.build(model.trainable_variables)  # its slots exist before a checkpoint is restored into it
        return model, tf.train.Checkpoint(model=model, optimizer=model.optimizer), TransporterKeypointer(model)

    def read(self, data: DataSettings, split: str, training: bool) -> tf.data.Dataset:
        read = {
            "batch_size": data.batch_size,
            "game": data.game.name,
            "distractors": data.distractors,
            "min_offset": self.min_offset,
            "max_offset": self.max_offset,
        }
        order = {"drop_remainder": True} if training else {"shuffle": False}
        return pairs_dataset(data.dataset, split, seed=data.seed, **order, **read)  # type: ignore[arg-type]

    def after_training(self, state: dict, data: DataSettings, run) -> dict:
        return state

    def load_best(self, folder: Path) -> TransporterKeypointer:
        best = TransporterKeypointer.load(folder)
        best.model.compile(optimizer=self.optimizer())
        return best

    def pictures(self, keypointer: TransporterKeypointer, data: DataSettings, folder: Path) -> list[Path]:
        pairs = picture_pairs(data.dataset, data.game.name, self.picture_frames, self.picture_offset)
        return save_pictures(keypointer, *pairs, folder)


def picture_pairs(dataset: str, game: str, count: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` (source, target) uint8 frame pairs `offset` steps apart, spread over the first test episode."""
    episode = next(read_episodes(dataset, "test", game=game))
    last = len(episode.frames) - 1
    picks = np.linspace(0, max(last - offset, 0), min(count, len(episode.frames))).astype(int)
    return episode.frames[picks], episode.frames[np.minimum(picks + offset, last)]


def save_pictures(
    keypointer: TransporterKeypointer, source: np.ndarray, target: np.ndarray, folder: Path
) -> list[Path]:
    """reconstructions.png (source, target, reconstruction per row), keypoints.png (source and target with their
    keypoints) and transport_energy.png (sum over channels of the squared transported features, per pair)."""
    scale = 4
    out = keypointer.model((tf.cast(source, tf.float32) / 255.0, tf.cast(target, tf.float32) / 255.0))

    def big(image: np.ndarray) -> np.ndarray:
        return np.kron(image, np.ones((scale * 84 // image.shape[0], scale * 84 // image.shape[1], 1), np.uint8))

    def to_uint8(image: np.ndarray) -> np.ndarray:
        return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)

    recon = to_uint8(out["reconstruction"].numpy())
    energy = tf.reduce_sum(tf.square(tf.cast(out["transported"], tf.float32)), axis=-1).numpy()
    energy = energy / np.maximum(energy.max(axis=(1, 2), keepdims=True), 1e-12)
    energy_rgb = np.repeat(to_uint8(energy)[..., None], 3, axis=-1)
    energy_rgb = np.stack([tf.image.resize(e, (84, 84), method="nearest").numpy() for e in energy_rgb])
    source_kp = draw_keypoints(source, out["source_keypoints"].numpy(), scale=scale)
    target_kp = draw_keypoints(target, out["target_keypoints"].numpy(), scale=scale)
    paths = [folder / "reconstructions.png", folder / "keypoints.png", folder / "transport_energy.png"]
    save_png(str(paths[0]), grid([big(i) for row in zip(source, target, recon, strict=True) for i in row], columns=3))
    save_png(str(paths[1]), grid([i for row in zip(source_kp, target_kp, strict=True) for i in row], columns=4))
    save_png(str(paths[2]), grid([big(i) for row in zip(target, energy_rgb, strict=True) for i in row], columns=4))
    return paths
