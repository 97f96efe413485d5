"""Train PermaKey: `python -m experiments.train_permakey with game=pong [quick] [distractors=vertical]`.

Generates the game's dataset if it is missing, trains VAE, LSPNs and PointNet together (each on its own loss, own
Adam), validates every epoch on `monitor` (the LSPN and PointNet losses' sum by default, as the authors' code), keeps
the best epoch's keypointer, stops early, and
resumes from its work folder when rerun with the same settings. The run folder receives the metrics, the pictures
(keypoints on test frames, layer-wise error maps, VAE reconstructions) and the keypointer itself.
"""

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

from data.games import get_game
from data.generate import policy_tag
from data.readers import frames_dataset
from data.storage import hold_folder, write_json_atomic
from data.visualize import grid, save_png
from experiments.common import experiment
from experiments.generation import run_generation
from keypoints.draw import draw_keypoints
from keypoints.metrics import collapse_statistics, grid_to_frame
from permakey.keypointer import PermaKeyKeypointer, build_permakey
from permakey.lspn import ERROR_NORMALISATIONS
from permakey.model import LOSSES, MODULES, PermaKeyConfig
from training.checkpointing import FitSettings
from training.checks import check_range
from training.datasets import picture_frames
from training.keypoint_training import DataSettings, train_keypoint_model
from training.workspace import Workspace

ex = experiment("train_permakey", __doc__)


@ex.config
def config():
    game = "pong"
    num_keypoints = get_game(game).num_keypoints  # docs/method.md section 3.8 (the authors' per-game K)
    seed = 0
    distractors = "none"  # Noisy Atari distractor bars: none / vertical / horizontal / both, drawn on the fly
    # Architecture (Appendix A.2.1).
    encoder_filters = [32, 64, 64, 128]
    encoder_kernels = [4, 3, 3, 3]
    encoder_strides = [1, 2, 2, 1]
    latent_dim = 32
    decoder = "paper"  # the encoder's transpose, bilinear upsampling (A.2.1); "authors": their code's (permakey/vae.py)
    vae_loss = "elbo"  # equation 1 per pixel value; "authors": their code's weighting (docs/method.md section 3.3)
    likelihood_scale = 0.1**0.5  # the Gaussian likelihood's: the authors' code's variance 0.1 (the paper gives none)
    norm = "batch"
    lspn_layers = [0, 1]
    patch = 2
    lspn_hidden = [512, 256]
    lspn_extra_hidden_layer = False  # the authors' code's extra first hidden layer of width 8p^2C
    lspn_norm = "batch"  # BatchNorm after each hidden Dense: the authors' code (paper silent); "none": Dense-ReLU
    error_metric = "mse"  # the authors' final code (the paper names none); "rmse" their code at the paper's time
    error_normalisation = "activation"  # the authors' / (mean activation + 1e-3); "image" or "none" (permakey/lspn.py)
    pointnet_strides = [1, 2, 2, 1]  # 21x21 heatmaps; [1, 1, 2, 1] gives the paper-era code's 42x42
    sigma = 0.1
    pointnet_coordinates = False  # off the paper: PointNet also sees each pixel's (y, x) (permakey/pointnet.py)
    # Training (Appendix A.2.1).
    batch_size = 32
    epochs = 100
    patience = 10
    learning_rate = 2e-4
    pointnet_learning_rate = learning_rate  # PointNet's own Adam (each module has one)
    decay_steps = 10_000
    decay_rate = 0.85
    lr_schedule = "exponential"  # x0.85 every 10k steps, staircase (the paper); "inverse_time": the authors' code's
    # The validation loss of the best epoch and early stopping (the paper names none); any of permakey.model.LOSSES.
    monitor = "val_lsp_pointnet_loss"  # the LSPN and PointNet losses' sum, as the authors' code
    steps_per_epoch = None  # None: one pass over the training split
    # PointNet re-initialised after the joint training and trained alone this many steps on the best epoch's frozen
    # error maps: a schedule change, not a method change (docs/method.md section 3.10). 0: the paper's joint training.
    pointnet_refit_steps = 0
    # Off the paper: refit this many PointNets, keep the one whose keypoints move most on validation frames.
    pointnet_refit_restarts = 1
    # Off the paper: the restarts repeated on the error maps of each of these normalisations (permakey/lspn.py), the
    # most moving keypoints kept with theirs. []: the model's error_normalisation only.
    pointnet_refit_normalisations = []
    precision = "auto"  # mixed_bfloat16 on GPUs and AMX/AVX512-BF16 CPUs, float32 elsewhere (training/precision.py)
    log_every = 50
    preset = "paper"
    # Data: generated with these settings when missing (the paper: 85k / 5k / 5k frames).
    data_frames = 95_000
    generate_missing = True
    data_policy = "uniform"  # the random policy of a generated dataset: uniform or sticky (data/generate.py)
    data_change_probability = 1.0 if data_policy == "uniform" else 0.1  # sticky: chance of a new action per step
    dataset = Workspace.here().dataset(
        game, "" if preset == "paper" else preset, policy_tag(data_policy, data_change_probability)
    )
    work = Workspace.here().work_folder("permakey", get_game(game).name, preset, distractors, seed=seed)
    picture_frames = 8
    progress = True


@ex.named_config
def paper():
    """The paper's settings, the authors' final code's where the paper is silent (the defaults, named for clarity;
    README.md "PermaKey" lists every difference and its option): a GPU job."""
    preset = "paper"


@ex.named_config
def quick():
    """Same method and architecture, CPU-sized (about 17 minutes on 2 cores in mixed bfloat16). Each setting and why;
    the A/B measurements behind them are in docs/permakey_quick.md:
    - data_frames 3000, 5 epochs of 150 steps at batch 16: what fits the time; longer joint training did not help.
    - norm layer (per channel), lspn_norm none: BatchNorm's moving statistics lag at a few hundred steps.
    - likelihood_scale 0.1, monitor val_total_loss: what every quick figure was measured with.
    - error_metric rmse: same-seed refits on frozen Pong maps track both paddles with it, one with MSE.
    - learning_rate 1e-3 (paper 2e-4): at 2e-4 the error maps are unformed and the keypoints still at 300 steps.
    - sigma 0.15 (paper 0.1): a window feels errors within about 2 sigma; at 0.1 a fresh PointNet misses the paddles.
    - pointnet_refit_steps 600: PointNet re-initialised on the frozen final maps; the joint one parks its keypoints.
    - pointnet_coordinates (off the paper): Pong's two paddles are identical error blobs without (y, x) channels.
    - pointnet_refit_restarts 4, the most moving kept (off the paper): the loss prefers the static score digits.
    - pointnet_refit_normalisations activation and none (off the paper): the division suits Pong, the raw error
      ms_pacman (whose HUD band the division inflates); motion, which needs no ground truth, picks per run."""
    preset = "quick"
    data_frames = 3000
    epochs = 5
    steps_per_epoch = 150
    patience = 5
    batch_size = 16
    norm = "layer"
    error_metric = "rmse"
    lspn_norm = "none"
    likelihood_scale = 0.1
    monitor = "val_total_loss"
    learning_rate = 1e-3
    sigma = 0.15
    pointnet_refit_steps = 600
    pointnet_coordinates = True
    pointnet_refit_restarts = 4
    pointnet_refit_normalisations = ["activation", "none"]


def model_config(c: dict) -> PermaKeyConfig:
    return PermaKeyConfig(
        num_keypoints=c["num_keypoints"],
        image_shape=(84, 84, 3),
        encoder_filters=tuple(c["encoder_filters"]),
        encoder_kernels=tuple(c["encoder_kernels"]),
        encoder_strides=tuple(c["encoder_strides"]),
        latent_dim=c["latent_dim"],
        likelihood_scale=c["likelihood_scale"],
        decoder=c["decoder"],
        vae_loss=c["vae_loss"],
        norm=c["norm"],
        lspn_layers=tuple(c["lspn_layers"]),
        patch=c["patch"],
        lspn_hidden=tuple(c["lspn_hidden"]),
        lspn_extra_hidden_layer=c["lspn_extra_hidden_layer"],
        lspn_norm=c["lspn_norm"],
        error_metric=c["error_metric"],
        error_normalisation=c["error_normalisation"],
        pointnet_strides=tuple(c["pointnet_strides"]),
        sigma=c["sigma"],
        pointnet_coordinates=c["pointnet_coordinates"],
    )


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

    def __post_init__(self) -> None:
        check_range("pointnet_refit_steps", self.refit_steps, 0)
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
    keypoint motion, which needs no ground truth, prefers the refits that track (off the paper; measured there)."""
    done = {
        "pointnet_refit": training.refit_steps,
        "pointnet_refit_restarts": training.refit_restarts,
        "pointnet_refit_normalisations": list(training.refit_normalisations),
    }
    before = {"pointnet_refit_restarts": 1, "pointnet_refit_normalisations": [training.config.error_normalisation]}
    recorded = {**before, **state}  # a work folder refitted before these options existed had one of each
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
        PermaKeyKeypointer(best).save(training.work / "best")
        state = {**state, **done, "pointnet_refit_motions": motions, "pointnet_refit_choice": choice}
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


def train_pointnet(
    model: keras.Model, maps: tf.data.Dataset, training: PermaKeyTraining, data: DataSettings, index: int, run
) -> None:
    """`refit_steps` PointNet updates on shuffled batches of the cached error maps (restart r's order, r = index mod
    restarts, is the same under every normalisation); logs refit.pointnet_loss (the first refit's under that name,
    later ones' as refit.<index>.pointnet_loss)."""
    order = data.seed + index % training.refit_restarts
    batches = maps.shuffle(4096, seed=order).repeat().batch(data.batch_size).prefetch(2)
    step = tf.function(model.pointnet_step)
    name = "refit.pointnet_loss" if index == 0 else f"refit.{index}.pointnet_loss"
    total = training.refit_restarts * len(training.refit_normalisations)
    desc = f"PointNet refit {index + 1}/{total} ({model.config.error_normalisation} error)"
    progress = tqdm(
        batches.take(training.refit_steps), total=training.refit_steps, desc=desc, disable=not training.progress
    )
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


@ex.main
def main(_config, _run, _seed):
    c = _config
    training = PermaKeyTraining(
        config=model_config(c),
        optimization=Optimization.from_config(c),
        work=Path(c["work"]),
        refit_steps=c["pointnet_refit_steps"],
        refit_restarts=c["pointnet_refit_restarts"],
        refit_normalisations=tuple(c["pointnet_refit_normalisations"]) or (c["error_normalisation"],),
        picture_frames=c["picture_frames"],
        log_every=c["log_every"],
        progress=c["progress"],
        monitor=c["monitor"],
    )
    data, fit = DataSettings.from_config(c), FitSettings.from_config(c)
    state, results = train_keypoint_model(_run, training, data, fit, c["seed"], c["precision"], run_generation)
    return {"best_epoch": state["best_epoch"], f"best_{training.monitor}": state["best"], **results}


if __name__ == "__main__":
    ex.run_commandline()
