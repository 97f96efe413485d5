"""PermaKey for the keypoint-training harness (training/keypoint_training.py): its optimisation (one Adam per module,
a staircase decay), how it is built, read, pictured and reloaded, and the step after training, the PointNet refit
(`refit_pointnet`): fresh PointNets trained alone on the frozen VAE and LSPNs' error maps, the one whose keypoints move
most kept."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from data.readers import frames_dataset
from data.storage import hold_folder, write_json_atomic
from data.visualize import grid, save_png
from keypoints.draw import draw_keypoints
from keypoints.metrics import collapse_statistics, grid_to_frame
from permakey.keypointer import PermaKeyKeypointer, build_permakey
from permakey.lspn import ERROR_NORMALISATIONS
from permakey.model import LOSSES, MODULES, PermaKeyConfig
from training.checks import check_range
from training.datasets import picture_frames
from training.keypoint_training import DataSettings

LR_SCHEDULES = ("exponential", "inverse_time")


@dataclasses.dataclass(frozen=True)
class Optimization:
    """One Adam per module (PointNet's at its own rate), each with a staircase decay (Appendix A.2.1): "exponential",
    lr * rate^floor(t / steps), the paper's "decay rate of 0.85 every 10000 steps"; "inverse_time", lr / (1 + rate *
    floor(t / steps)), the authors' code's (pkey_train.py InverseTimeDecay)."""

    learning_rate: float
    pointnet_learning_rate: float
    decay_steps: int
    decay_rate: float
    lr_schedule: str = "exponential"

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}.")
        check_range("learning_rate", self.learning_rate, 0, above=True)
        check_range("pointnet_learning_rate", self.pointnet_learning_rate, 0, above=True)
        check_range("decay_steps", self.decay_steps, 1)
        check_range("decay_rate", self.decay_rate, 0, 1, above=True)

    @classmethod
    def paper(cls) -> Optimization:
        """Appendix A.2.1: Adam 2e-4 for every module, x0.85 every 10k steps (staircase)."""
        return cls(2e-4, 2e-4, 10_000, 0.85, "exponential")

    @classmethod
    def from_config(cls, c: dict) -> Optimization:
        return cls(c["learning_rate"], c["pointnet_learning_rate"], c["decay_steps"], c["decay_rate"], c["lr_schedule"])

    def schedule(self, learning_rate: float) -> keras.optimizers.schedules.LearningRateSchedule:
        kind = keras.optimizers.schedules.InverseTimeDecay
        if self.lr_schedule == "exponential":
            kind = keras.optimizers.schedules.ExponentialDecay
        return kind(learning_rate, self.decay_steps, self.decay_rate, staircase=True)

    def optimizers(self) -> dict[str, keras.optimizers.Optimizer]:
        rates = {"vae": self.learning_rate, "lspn": self.learning_rate, "pointnet": self.pointnet_learning_rate}
        return {name: keras.optimizers.Adam(self.schedule(rates[name])) for name in MODULES}


def save_pictures(keypointer: PermaKeyKeypointer, frames: np.ndarray, folder: Path) -> list[Path]:
    """keypoints.png, error_maps.png (frame, then one map per layer, per row) and reconstructions.png."""
    out = keypointer(frames)
    keypoint_images = draw_keypoints(frames, out.coordinates.numpy(), scale=4)
    maps = keypointer.error_maps(frames).numpy()
    scale = 4

    def big(image: np.ndarray) -> np.ndarray:
        return np.kron(image, np.ones((scale, scale, 1), np.uint8))

    def grey(m: np.ndarray) -> np.ndarray:
        return big(np.repeat((m[..., None] * 255).astype(np.uint8), 3, axis=-1))

    rows = [[big(f)] + [grey(maps[i, ..., j]) for j in range(maps.shape[-1])] for i, f in enumerate(frames)]
    recon = keypointer.reconstructions(frames).numpy()
    recon_rows = [[big(f), big((r * 255).round().astype(np.uint8))] for f, r in zip(frames, recon, strict=True)]
    paths = [folder / "keypoints.png", folder / "error_maps.png", folder / "reconstructions.png"]
    save_png(str(paths[0]), grid(list(keypoint_images), columns=4))
    save_png(str(paths[1]), grid([img for row in rows for img in row], columns=len(rows[0])))
    save_png(str(paths[2]), grid([img for row in recon_rows for img in row], columns=4))
    return paths


@dataclasses.dataclass(frozen=True)
class PermaKeyTraining:
    """PermaKey for the keypoint-training harness (training/keypoint_training.py)."""

    config: PermaKeyConfig
    optimization: Optimization
    work: Path
    refit_steps: int
    refit_restarts: int
    refit_normalisations: tuple[str, ...]  # the error normalisations the refit tries, in order
    picture_frames: int
    log_every: int
    progress: bool
    monitor: str = "val_lsp_pointnet_loss"
    baseline: tuple[str, str] | None = ("val_pointnet_loss", "val_pointnet_shuffled_loss")
    refit_batch_size: int | None = None  # None: the training's batch size
    final_steps: int = 0  # the kept refit's initialisation trained again for this many steps (0: not)
    final_batch_size: int | None = None  # None: the refit's batch size

    def __post_init__(self) -> None:
        check_range("pointnet_refit_steps", self.refit_steps, 0)
        check_range("pointnet_refit_final_steps", self.final_steps, 0)
        if self.refit_batch_size is not None:
            check_range("pointnet_refit_batch_size", self.refit_batch_size, 1)
        if self.final_batch_size is not None:
            check_range("pointnet_refit_final_batch_size", self.final_batch_size, 1)
        check_range("picture_frames", self.picture_frames, 1)
        monitors = [f"val_{name}_loss" for name in LOSSES if name != "pointnet_shuffled"]
        if self.monitor not in monitors:
            raise ValueError(f"monitor must be one of {monitors}, got {self.monitor!r}.")
        if self.refit_restarts < 1:
            raise ValueError(f"pointnet_refit_restarts must be >= 1, got {self.refit_restarts}.")
        names = list(self.refit_normalisations)
        unknown = sorted(set(names) - set(ERROR_NORMALISATIONS))
        repeated = sorted({name for name in names if names.count(name) > 1})
        if unknown or repeated:
            raise ValueError(
                f"pointnet_refit_normalisations must name each of {ERROR_NORMALISATIONS} at most once, got {names} "
                f"(unknown: {unknown}, repeated: {repeated})."
            )

    def build(self) -> tuple[keras.Model, tf.train.Checkpoint, PermaKeyKeypointer]:
        model = build_permakey(self.config)
        model.compile(optimizers=self.optimization.optimizers())
        # The VAE's noise state too (Keras keeps it out of the weights), so a resumed run draws what it would have.
        checkpoint = tf.train.Checkpoint(model=model, noise=model.vae.noise.state, **model.module_optimizers)
        return model, checkpoint, PermaKeyKeypointer(model)

    def read(self, data: DataSettings, split: str, training: bool) -> tf.data.Dataset:
        order = {"drop_remainder": True} if training else {"shuffle": False}
        return frames_dataset(
            data.dataset,
            split,
            seed=data.seed,
            batch_size=data.batch_size,
            game=data.game.name,
            distractors=data.distractors,
            **order,  # type: ignore[arg-type]
        )

    def after_training(self, state: dict, data: DataSettings, run) -> dict:
        if not self.refit_steps:
            return state
        return refit_pointnet(self, state, data, run)

    def load_best(self, folder: Path) -> PermaKeyKeypointer:
        best = PermaKeyKeypointer.load(folder)
        best.model.compile(optimizers=self.optimization.optimizers())
        return best

    def pictures(self, keypointer: PermaKeyKeypointer, data: DataSettings, folder: Path) -> list[Path]:
        return save_pictures(keypointer, picture_frames(data.dataset, data.game.name, self.picture_frames), folder)


VALIDATION_FRAMES = 1024
"""At most this many validation frames (from the split's start, in order) measure each refit's keypoint motion."""


def refit_pointnet(training: PermaKeyTraining, state: dict, data: DataSettings, run) -> dict:
    """Re-initialises the best epoch's PointNet and trains it alone for `pointnet_refit_steps` steps on the error maps
    of its frozen VAE and LSPNs (`refits`); keeps the refit whose keypoints move most on the validation frames and
    saves it, with the error normalisation it was trained on, as the work folder's best keypointer. Done once:
    state.json records it, and an interrupted refit leaves best/ as it was, so a rerun starts it afresh. Returns the
    updated state.

    Why (docs/permakey_quick.md): a Gaussian window is pulled only by errors it overlaps, so a PointNet trained while
    the error maps are still unformed parks its keypoints where nothing pulls them (a border) and stays there; one
    trained on the formed maps finds the objects. Which objects depends on the initialisation and on the error
    normalisation; equation 3's loss prefers keypoints parked on static salient regions (Pong's score digits),
    keypoint motion, which needs no ground truth, prefers the refits that track (off the paper; measured there).

    With `final_steps`, the kept refit's initialisation (its normalisation, seed and batch order) is trained again for
    that many steps at `final_batch_size` and kept instead when its keypoints move more: the short refits choose
    where to start, the long one has the budget that ms_pacman's keypoints need to follow Ms. Pac-Man. The short
    refits' choice is saved as the work folder's refit_choice/ keypointer either way."""
    done = {
        "pointnet_refit": training.refit_steps,
        "pointnet_refit_restarts": training.refit_restarts,
        "pointnet_refit_normalisations": list(training.refit_normalisations),
        "pointnet_refit_batch_size": refit_batch_size(training, data),
        "pointnet_refit_final": training.final_steps,
        "pointnet_refit_final_batch_size": final_batch_size(training, data) if training.final_steps else None,
    }
    before = {  # a work folder refitted before these options existed had one of each, at the training's batch size
        "pointnet_refit_restarts": 1,
        "pointnet_refit_normalisations": [training.config.error_normalisation],
        "pointnet_refit_batch_size": data.batch_size,
        "pointnet_refit_final": 0,
        "pointnet_refit_final_batch_size": None,
    }
    recorded = {**before, **state}
    if all(recorded.get(key) == value for key, value in done.items()):
        return state
    validation = training.read(data, "validation", training=False).unbatch().take(VALIDATION_FRAMES)
    validation = next(iter(validation.batch(VALIDATION_FRAMES))).numpy()
    with hold_folder(training.work):
        joint = PermaKeyKeypointer.load(training.work / "best").model
        best, motions = None, []
        with retracing_by_design():
            for index, model in enumerate(refits(training, joint, data, run)):
                motions.append(validation_motion(PermaKeyKeypointer(model), validation))
                run.log_scalar("refit.keypoint_motion", motions[-1], index)
                if np.isfinite(motions[-1]) and motions[-1] > max(motions[:-1], default=-np.inf):
                    best, choice = model, index  # the first of equal motions, as the record says
        if best is None:
            raise FloatingPointError(
                f"Every PointNet refit gave non-finite keypoints (motions {motions}); best/ keeps the joint training's "
                "keypointer. Lower pointnet_learning_rate or set pointnet_refit_steps=0."
            )
        final: dict[str, float | bool] = {}
        if training.final_steps:
            best, final = after_final_refit(training, joint, data, run, best, choice, motions[choice], validation)
        PermaKeyKeypointer(best).save(training.work / "best")
        state = {**state, **done, "pointnet_refit_motions": motions, "pointnet_refit_choice": choice, **final}
        state["pointnet_refit_normalisation"] = best.config.error_normalisation
        write_json_atomic(training.work / "state.json", state)
    return state


class _RefitTraces(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning: TensorFlow counts the traces of every tf.function
    of one method together, and each refit is a new model with its own traced step and keypointer (one trace each, by
    design), which it reports as excessive retracing from the fifth refit on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def retracing_by_design() -> Iterator[None]:
    """Hides TensorFlow's retracing warning for the block (_RefitTraces), where every trace is a new model's first."""
    logger, quiet = tf.get_logger(), _RefitTraces()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def refits(training: PermaKeyTraining, joint: keras.Model, data: DataSettings, run) -> Iterator[keras.Model]:
    """Each refit in turn, trained: for each of `refit_normalisations`, `refit_restarts` PointNets from different
    initialisations (restart r: seed + 1 + r, the same under every normalisation) on that normalisation's error maps,
    computed from `joint`'s VAE and LSPNs (every refit has them) and cached in memory by the first refit's pass."""
    frames = training.read(data, "train", training=False)  # in order, every frame once: the maps are cached
    for n, normalisation in enumerate(training.refit_normalisations):
        config = dataclasses.replace(joint.config, error_normalisation=normalisation)
        maps = None
        for restart in range(training.refit_restarts):
            model = fresh_pointnet(joint, config, training.optimization, data.seed + 1 + restart)
            if maps is None:
                maps = frames.map(model.error_maps).unbatch().cache()
            index = n * training.refit_restarts + restart
            train_pointnet(model, maps, training, data, index, run)
            yield model


def after_final_refit(
    training: PermaKeyTraining,
    joint: keras.Model,
    data: DataSettings,
    run,
    best: keras.Model,
    choice: int,
    motion: float,
    validation: np.ndarray,
) -> tuple[keras.Model, dict]:
    """Saves the short refits' choice `best` (keypoint motion `motion`) as refit_choice/, trains its final refit and
    returns the one to keep (the final refit where its keypoints move more) with what state.json records of it."""
    PermaKeyKeypointer(best).save(training.work / "refit_choice")
    with retracing_by_design():
        model = final_refit(training, joint, data, run, choice)
        final_motion = validation_motion(PermaKeyKeypointer(model), validation)
    run.log_scalar("refit.final.keypoint_motion", final_motion)
    kept = bool(final_motion > motion)
    return (model if kept else best), {"pointnet_refit_final_motion": final_motion, "pointnet_refit_final_kept": kept}


def final_refit(training: PermaKeyTraining, joint: keras.Model, data: DataSettings, run, choice: int) -> keras.Model:
    """Refit `choice` (index n * restarts + r: normalisation n, restart r) trained again from its initialisation and
    batch order, for `final_steps` steps at `final_batch_size`; logs refit.final.pointnet_loss."""
    normalisation, restart = divmod(choice, training.refit_restarts)
    config = dataclasses.replace(joint.config, error_normalisation=training.refit_normalisations[normalisation])
    model = fresh_pointnet(joint, config, training.optimization, data.seed + 1 + restart)
    maps = training.read(data, "train", training=False).map(model.error_maps).unbatch().cache()
    steps, batch = training.final_steps, final_batch_size(training, data)
    train_pointnet(model, maps, training, data, choice, run, steps=steps, batch_size=batch, name="refit.final")
    return model


def fresh_pointnet(joint: keras.Model, config: PermaKeyConfig, optimization: Optimization, seed: int) -> keras.Model:
    """A compiled PermaKey model of `config` with `joint`'s VAE and LSPN weights and a PointNet initialised from
    `seed`."""
    keras.utils.set_random_seed(seed)
    model = build_permakey(config)
    model.vae.set_weights(joint.vae.get_weights())
    for lspn, trained in zip(model.lspns, joint.lspns, strict=True):
        lspn.set_weights(trained.get_weights())
    model.compile(optimizers=optimization.optimizers())
    return model


def refit_batch_size(training: PermaKeyTraining, data: DataSettings) -> int:
    """The refit's batch size: its own where set, else the training's."""
    return data.batch_size if training.refit_batch_size is None else training.refit_batch_size


def final_batch_size(training: PermaKeyTraining, data: DataSettings) -> int:
    """The final refit's batch size: its own where set, else the refit's."""
    return refit_batch_size(training, data) if training.final_batch_size is None else training.final_batch_size


def train_pointnet(
    model: keras.Model,
    maps: tf.data.Dataset,
    training: PermaKeyTraining,
    data: DataSettings,
    index: int,
    run,
    steps: int | None = None,
    batch_size: int | None = None,
    name: str | None = None,
) -> None:
    """`steps` (default `refit_steps`) PointNet updates on shuffled batches (default `refit_batch_size`) of the cached
    error maps (restart r's order, r = index mod restarts, is the same under every normalisation); logs
    <name>.pointnet_loss (default: the first refit's refit.pointnet_loss, later ones' refit.<index>.pointnet_loss)."""
    order = data.seed + index % training.refit_restarts
    steps = training.refit_steps if steps is None else steps
    batch_size = refit_batch_size(training, data) if batch_size is None else batch_size
    batches = maps.shuffle(4096, seed=order).repeat().batch(batch_size).prefetch(2)
    step = tf.function(model.pointnet_step)
    error = model.config.error_normalisation
    if name is None:  # one of the short refits
        total = training.refit_restarts * len(training.refit_normalisations)
        desc, name = f"PointNet refit {index + 1}/{total} ({error} error)", "refit" if index == 0 else f"refit.{index}"
    else:
        desc = f"PointNet {name} ({error} error, {steps} steps x {batch_size})"
    name += ".pointnet_loss"
    progress = tqdm(batches.take(steps), total=steps, desc=desc, disable=not training.progress)
    for i, batch in enumerate(progress):
        loss = step(batch)
        if (i + 1) % training.log_every == 0:  # read back only when logged: the steps queue without a sync
            run.log_scalar(name, float(loss), i + 1)


def validation_motion(keypointer: PermaKeyKeypointer, frames: np.ndarray, batch: int = 256) -> float:
    """Keypoint motion (keypoints.metrics.collapse_statistics: mean over keypoints of the std of its position, in
    normalised frame units) over the validation frames; needs no ground truth."""
    grid, geometry = keypointer.geometry
    coordinates = [keypointer(frames[i : i + batch]).coordinates.numpy() for i in range(0, len(frames), batch)]
    return float(collapse_statistics(grid_to_frame(np.concatenate(coordinates), grid, geometry))["motion"])
