"""Keras callbacks shared by the keypoint-model experiments: Sacred logging, a NaN guard, and checkpoints that let an
interrupted run resume and keep the best validation epoch.

Layout of a work folder:
  last/        tf.train.Checkpoint of the model and every optimizer after the last finished epoch (for resuming)
  best/        the keypointer of the best validation epoch (keypointer.json + keypointer.weights.h5)
  state.json   {"epoch": last finished epoch, "best": best validation loss, "wait": epochs since it improved}
  runs.json    the ids of the runs that trained here, in order (a killed run, then the run that resumed it)
  .lock        held by the run training here (data.storage.hold_folder): a second one is refused
Every file is written under a temporary name and renamed, so an interruption never leaves a half-written one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import keras
import tensorflow as tf

from data.storage import hold_folder, write_json_atomic
from keypoints.protocol import CONFIG_FILE, WEIGHTS_FILE
from training.checks import check_range, current_names

CHANGEABLE_ON_RESUME = ("progress", "log_every")
"""Config entries that do not change what is trained, in every experiment that resumes from a work folder: a resumed
run may change them, and its work/settings.json records every other entry (check_settings refuses a resume that
changes one of those). Each experiment adds its own by name: FIT_CHANGEABLE_ON_RESUME (the keypoint models),
experiments/train_agent.py's and experiments/explore.py's."""

FIT_CHANGEABLE_ON_RESUME = (*CHANGEABLE_ON_RESUME, "epochs", "patience", "picture_frames", "picture_offset")
"""What a resumed keypoint-model run (PermaKey, Transporter, IMM) may change: how long it trains and its pictures."""


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """How a keypoint model is fitted in its work folder; `trained` is the record of every setting that changes what
    is trained (work/settings.json: a resume with other values is refused)."""

    work: Path
    epochs: int
    patience: int
    steps_per_epoch: int | None
    batch_size: int
    log_every: int
    progress: bool
    trained: dict[str, Any]

    def __post_init__(self) -> None:
        for name in ("epochs", "patience", "batch_size", "log_every"):
            check_range(name, getattr(self, name), 1)
        if self.steps_per_epoch is not None:
            check_range("steps_per_epoch", self.steps_per_epoch, 1)

    @classmethod
    def from_config(cls, c: dict[str, Any]) -> FitSettings:
        return cls(
            work=Path(c["work"]),
            epochs=c["epochs"],
            patience=c["patience"],
            steps_per_epoch=c["steps_per_epoch"],
            batch_size=c["batch_size"],
            log_every=c["log_every"],
            progress=c["progress"],
            trained=json.loads(json.dumps({k: v for k, v in c.items() if k not in FIT_CHANGEABLE_ON_RESUME})),
        )


class NaNLossError(FloatingPointError):
    pass


class SacredLogger(keras.callbacks.Callback):
    """log_scalar of every loss: training losses every `every` steps, all losses at each epoch's end."""

    def __init__(self, run: Any, every: int):
        super().__init__()
        self.run, self.every, self.step = run, every, 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.step += 1
        if logs and self.step % self.every == 0:
            for name, value in logs.items():
                self.run.log_scalar(f"step.{name}", float(value), self.step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for name, value in (logs or {}).items():
            self.run.log_scalar(f"epoch.{name}", float(value), epoch + 1)


class EmptyEpochGuard(keras.callbacks.Callback):
    """Stops with a clear error when an epoch ends without a training step, before it can be checkpointed or kept as
    the best (a training split smaller than one batch gives no batch: the remainder is dropped)."""

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size, self.steps = batch_size, 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.steps = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps += 1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.steps:
            raise ValueError(
                f"Epoch {epoch + 1} ran no training step: the training data gave no batch of batch_size="
                f"{self.batch_size} (a training split smaller than one batch drops it). Generate a larger dataset or "
                "lower batch_size."
            )


class NaNGuard(keras.callbacks.Callback):
    """Stops training with a clear error at the first non-finite loss; checkpoints from earlier epochs stay."""

    def __init__(self, work: Path):
        super().__init__()
        self.work = work
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        bad = {k: float(v) for k, v in (logs or {}).items() if not math.isfinite(float(v))}
        if bad:
            raise NaNLossError(
                f"Non-finite loss at epoch {self.epoch + 1}, batch {batch + 1}: {bad}. Training stopped; the last good "
                f"checkpoint is kept in {self.work} (lower the learning rate, or check the data for corrupt frames)."
            )


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the resumable state after every epoch, the best keypointer by `monitor`, and stops early after
    `patience` epochs without improvement; records the `settings` trained (record_settings) before the first save."""

    def __init__(
        self,
        work: Path,
        checkpoint: tf.train.Checkpoint,
        save_best: Callable[[Path], None],
        monitor: str,
        patience: int,
        state: dict,
        settings: dict,
    ):
        super().__init__()
        self.work, self.monitor, self.patience, self.state = work, monitor, patience, state
        self.manager = tf.train.CheckpointManager(checkpoint, str(work / "last"), max_to_keep=1)
        self.save_best, self.settings = save_best, settings

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        record_settings(self.work, self.settings)
        value = float((logs or {})[self.monitor])
        if value < self.state["best"]:
            self.state.update(best=value, wait=0, best_epoch=epoch + 1)
            self.save_best(self.work / "best")
        else:
            self.state["wait"] += 1
        self.state["epoch"] = epoch + 1
        self.manager.save(checkpoint_number=epoch + 1)
        write_json_atomic(self.work / "state.json", self.state)
        if self.state["wait"] >= self.patience:
            self.model.stop_training = True


ADDED_SETTINGS = {
    "pointnet_coordinates": False,
    "pointnet_refit_restarts": 1,
    "pointnet_refit_normalisations": [],
    # PermaKey's paper preset moved to the authors' code where the paper is silent; runs before had these.
    "decoder": "paper",
    "vae_loss": "elbo",
    "lspn_norm": "none",
    "lr_schedule": "exponential",
    "monitor": "val_total_loss",
}
"""Config keys added after work folders existed, with the value every run trained before them had: a saved
settings.json without the key is compared as if it held this value (a preset that sets another value is refused)."""


NOT_SETTINGS = ("__doc__",)
"""Config entries recorded in settings.json that say nothing about what is trained: Sacred's `__doc__` is the named
preset's docstring, which may be reworded without changing a value."""


def check_settings(work: Path, settings: dict) -> None:
    """Refuses a work folder whose work/settings.json records a run of other settings than `settings` (JSON-able: what
    is trained), so a changed config never silently resumes someone else's weights. The settings are recorded with
    the first checkpoint (`record_settings`), so a run that failed before it trained anything (a batch too large for
    the data) leaves the folder free for other settings.

    A key the saved settings lack was added to the config after that run started. It is compared with the value older
    runs had when ADDED_SETTINGS knows it, and not compared otherwise (the new key's default keeps the behaviour the
    run had), so older work folders still resume. A key renamed since (training.checks.RENAMED_KEYS) is compared
    under its current name."""
    settings_path = work / "settings.json"
    if settings_path.exists():
        saved = current_names(json.loads(settings_path.read_text()))  # an older run's `noise` is `distractors`
        saved = {**{k: v for k, v in ADDED_SETTINGS.items() if k in settings}, **saved}
        changed = sorted(k for k in saved if k not in NOT_SETTINGS and saved[k] != settings.get(k))
        if changed:
            raise ValueError(
                f"{work} holds a run with other settings ({', '.join(changed)} differ); resume it with the same "
                "settings, or choose another work=... folder (or delete this one) to start afresh."
            )


def record_settings(work: Path, settings: dict) -> None:
    """Records `settings` in work/settings.json unless recorded already; called when a checkpoint is written, before
    it, so a folder with a checkpoint always names its settings."""
    settings_path = work / "settings.json"
    if not settings_path.exists():
        write_json_atomic(settings_path, settings)


STALE_CHECKPOINT_TEMP = re.compile(r"ckpt-\d+_temp.*|checkpoint\.tmp[0-9a-f]{32}")
"""What an interrupted tf.train.CheckpointManager save (prefix ckpt) leaves in last/: the ckpt-N_temp/ folder of the
shards it writes before renaming them, and the checkpoint index file's temporary copy."""


def clean_stale_temps(last: Path) -> list[Path]:
    """Removes the leftovers of an interrupted checkpoint save from `last` (STALE_CHECKPOINT_TEMP names only; the
    caller holds the work folder's lock, so no save is running). Returns what it removed."""
    removed = sorted(p for p in last.iterdir() if STALE_CHECKPOINT_TEMP.fullmatch(p.name)) if last.is_dir() else []
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return removed


def load_state(work: Path, checkpoint: tf.train.Checkpoint, settings: dict, fresh: dict | None = None) -> dict:
    """The saved training state (work/state.json), after restoring the last checkpoint into `checkpoint`; `fresh`
    (default: an epoch-training start) if none was saved. `check_settings` first, and what an interrupted checkpoint
    save left in last/ is removed (the caller holds the work folder's lock)."""
    check_settings(work, settings)
    clean_stale_temps(work / "last")
    state_path = work / "state.json"
    if not state_path.exists():
        return fresh if fresh is not None else {"epoch": 0, "best": math.inf, "wait": 0, "best_epoch": 0}
    latest = tf.train.latest_checkpoint(str(work / "last"))
    if latest is None:
        raise FileNotFoundError(
            f"{state_path} exists but {work / 'last'} holds no checkpoint; delete {work} to restart."
        )
    restore_whole(checkpoint, latest)
    return json.loads(state_path.read_text())


def restore_whole(checkpoint: tf.train.Checkpoint, path: str) -> None:
    """Restores the checkpoint at `path` into `checkpoint`, whose objects must all be built (models called once,
    optimizers built on their variables): every saved value must land in a variable and every variable must get one,
    or this fails naming the first mismatch. A partial restore is never silent (a model built after its optimizers'
    restore once kept half of its weights at their initialisation)."""
    status = checkpoint.restore(path)
    try:
        status.assert_consumed()
    except AssertionError as error:
        first = str(error).strip().splitlines()[0]
        raise RuntimeError(
            f"The checkpoint {path} does not restore whole into the rebuilt model and optimizers ({first}). A "
            "settings change the work folder did not catch, or code that builds the model or its optimizers after "
            "the restore; resume with the code and settings that wrote it, or delete the work folder to start afresh."
        ) from error


def link_runs(work: Path, run: Any) -> None:
    """Adds the run's id to work/runs.json and records the ids of the earlier runs that trained in `work` as
    `run.info["previous_runs"]`, so a killed run and the run that resumed it point at each other's records."""
    path = work / "runs.json"
    previous = json.loads(path.read_text()) if path.exists() else []
    if previous:
        run.info["previous_runs"] = previous
    if run._id is not None:
        write_json_atomic(path, [*previous, run._id])


@contextlib.contextmanager
def passes_end_quietly() -> Iterator[None]:
    """Hides Keras's "Your input ran out of data; interrupting training" warning, which it gives at the end of every
    pass over a dataset of unknown length (each validation and test pass, each one-pass epoch): the normal end here.
    A training stream that runs dry is EmptyEpochGuard's error."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        yield


def fit_verbosity(progress: bool, stream: TextIO | None = None) -> int:
    """Keras fit's `verbose`: 0 without progress, its redrawn progress bar (1) on a terminal, and one line per epoch
    (2) when the output (default: sys.stdout) goes to a log file or pipe, where the bar's redraws are noise."""
    if not progress:
        return 0
    stream = stream if stream is not None else sys.stdout
    isatty = getattr(stream, "isatty", None)
    return 1 if isatty is not None and isatty() else 2


def train_resumably(
    model: keras.Model,
    checkpoint: tf.train.Checkpoint,
    save_best: Callable[[Path], None],
    monitor: str,
    fit: FitSettings,
    run: Any,
    train: tf.data.Dataset,
    validation: tf.data.Dataset,
    more_callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict:
    """Fits a compiled keypoint model from where its work folder `fit.work` left off, logging to the Sacred `run`,
    checkpointing every epoch and keeping the best one by `monitor` through `save_best`; `more_callbacks` run after
    the logging ones. With `fit.steps_per_epoch`, a resumed run reads the seeded training stream from where the
    interrupted one stopped, so it trains as an uninterrupted run would; a resumed one-pass epoch (no steps_per_epoch)
    reads the split in its first shuffled order again. The work folder is locked while it trains, and an epoch without
    a training step is an error. Returns the training state (best epoch and value)."""
    work = fit.work
    with hold_folder(work):
        state = load_state(work, checkpoint, fit.trained)
        link_runs(work, run)
        if state["epoch"]:
            run.info["resumed_from_epoch"] = state["epoch"]
            if fit.steps_per_epoch:  # the seeded stream continues where the interrupted run left it
                train = train.skip(state["epoch"] * fit.steps_per_epoch)
        callbacks = [
            EmptyEpochGuard(fit.batch_size),
            NaNGuard(work),
            SacredLogger(run, fit.log_every),
            *more_callbacks,
            EpochCheckpoint(work, checkpoint, save_best, monitor, fit.patience, state, fit.trained),
        ]
        if state["epoch"] < fit.epochs and state["wait"] < fit.patience:
            with passes_end_quietly():
                model.fit(
                    train,
                    validation_data=validation,
                    epochs=fit.epochs,
                    initial_epoch=state["epoch"],
                    steps_per_epoch=fit.steps_per_epoch,
                    callbacks=callbacks,
                    verbose=fit_verbosity(fit.progress),
                    shuffle=False,  # the datasets shuffle themselves (Keras warns it ignores shuffle=True for them)
                )
    return state


def add_best_to_run(
    run: Any, model: keras.Model, test: tf.data.Dataset, pictures: Callable[[Path], list[Path]], best: Path
) -> dict[str, float]:
    """Test losses of the best epoch's (compiled) model as `test.*` metrics, and its pictures (written by
    `pictures(folder)`) and keypointer files as artifacts of the run. Returns the test losses."""
    with passes_end_quietly():
        results = {name: float(value) for name, value in model.evaluate(test, return_dict=True, verbose=0).items()}
    for name, value in results.items():
        run.log_scalar(f"test.{name}", value)
    with tempfile.TemporaryDirectory() as tmp:
        for path in pictures(Path(tmp)):
            run.add_artifact(str(path))
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        run.add_artifact(str(best / name))
    return results
