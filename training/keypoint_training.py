"""The keypoint-training harness that the PermaKey, Transporter and IMM experiments share.

A main turns its Sacred config into frozen settings (`DataSettings`, `FitSettings`) and a `KeypointMethod` (what
differs between models: how to build, read, picture and reload them) and calls `train_keypoint_model`, which runs the
one skeleton: seed, precision, the dataset (generated when missing), the splits, the model, per-epoch keypoint health,
resumable training (training/checkpointing.py), an optional step after training, and the best epoch's test losses,
pictures and keypointer recorded in the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import keras
import tensorflow as tf

from data.distractors import check_distractors
from data.games import Game, get_game
from training.checkpointing import FitSettings, add_best_to_run, check_settings, train_resumably
from training.checks import check_range
from training.datasets import ensure_dataset
from training.health import CLIP_FRAMES, KeypointHealth, ground_truth_clip
from training.precision import detect_precision


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """The training data: `dataset` (generated with `frames` frames of the random `policy` when missing and
    `generate_missing`), read in batches of `batch_size` with Noisy Atari `distractors` drawn on the fly."""

    dataset: str
    game: Game
    frames: int
    generate_missing: bool
    policy: str
    change_probability: float
    distractors: str
    batch_size: int
    seed: int

    def __post_init__(self) -> None:
        check_distractors(self.distractors)
        check_range("batch_size", self.batch_size, 1)
        check_range("data_frames", self.frames, 6)  # two frames for each split

    @classmethod
    def from_config(cls, c: dict[str, Any]) -> DataSettings:
        return cls(
            dataset=c["dataset"],
            game=get_game(c["game"]),
            frames=c["data_frames"],
            generate_missing=c["generate_missing"],
            policy=c["data_policy"],
            change_probability=c["data_change_probability"],
            distractors=c["distractors"],
            batch_size=c["batch_size"],
            seed=c["seed"],
        )


class KeypointMethod(Protocol):
    """What differs between the keypoint models the harness trains."""

    @property
    def monitor(self) -> str:
        """The validation loss that picks the best epoch."""
        ...

    @property
    def baseline(self) -> tuple[str, str] | None:
        """(loss, loss with shuffled keypoints) that KeypointHealth compares, if the model has them."""
        ...

    def build(self) -> tuple[keras.Model, tf.train.Checkpoint, Any]:
        """A compiled model, the checkpoint of everything resuming needs, and its keypointer (one that can `save`)."""
        ...

    def read(self, data: DataSettings, split: str, training: bool) -> tf.data.Dataset:
        """A split's batches: shuffled, and with the remainder dropped, when `training`."""
        ...

    def after_training(self, state: dict, data: DataSettings, run: Any) -> dict:
        """A step after the resumable training (PermaKey's PointNet refit); returns the updated state."""
        ...

    def load_best(self, folder: Path) -> Any:
        """The saved best keypointer, its model compiled for evaluation."""
        ...

    def pictures(self, keypointer: Any, data: DataSettings, folder: Path) -> list[Path]:
        """The method's pictures of `keypointer`, written into `folder`."""
        ...


def start(run: Any, seed: int, precision: str) -> None:
    """Seeds the process and sets the resolved Keras precision policy, recorded with its reason in the run."""
    keras.utils.set_random_seed(seed)
    policy, reason = detect_precision(precision)
    run.info["precision"] = {"policy": policy, "reason": reason}
    keras.mixed_precision.set_global_policy(policy)


def train_keypoint_model(
    run: Any,
    method: KeypointMethod,
    data: DataSettings,
    fit: FitSettings,
    seed: int,
    precision: str,
    generate: Callable[[dict[str, Any]], Any],
) -> tuple[dict, dict[str, float]]:
    """Trains `method`'s model resumably in `fit.work` and records its best epoch in the Sacred `run`; a missing
    dataset is made by `generate` (training.datasets.ensure_dataset). Returns the training state (best epoch and
    value) and the best keypointer's test metrics."""
    start(run, seed, precision)
    check_settings(fit.work, fit.trained)  # before data and networks are made; again under the lock when training
    ensure_dataset(
        data.dataset,
        data.game.name,
        data.frames,
        seed,
        data.generate_missing,
        fit.progress,
        policy=data.policy,
        change_probability=data.change_probability,
        generate=generate,
    )
    train = method.read(data, "train", True)
    if fit.steps_per_epoch:
        train = train.repeat()  # epochs of a fixed number of steps run on through the shuffled stream
    validation, test = method.read(data, "validation", False), method.read(data, "test", False)

    model, checkpoint, keypointer = method.build()
    clip = ground_truth_clip(data.dataset, data.game.name, CLIP_FRAMES, data.game.epsilon or 0.15)
    health = KeypointHealth(run, keypointer, clip, baseline=method.baseline)
    state = train_resumably(model, checkpoint, keypointer.save, method.monitor, fit, run, train, validation, [health])
    state = method.after_training(state, data, run)

    best = method.load_best(fit.work / "best")
    pictures: Callable[[Path], list[Path]] = lambda folder: method.pictures(best, data, folder)  # noqa: E731
    results = add_best_to_run(run, best.model, test, pictures, fit.work / "best")  # type: ignore[attr-defined]
    results.update(health.log_test(best))
    return state, results
