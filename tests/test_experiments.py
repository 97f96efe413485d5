"""Every documented command runs end to end at a tiny size, through Sacred with a real FileStorageObserver."""

import dataclasses
import gc
import json
import logging
import os
import shutil
import warnings

import numpy as np
import pytest
import tensorflow as tf
from sacred.observers import FileStorageObserver

from data.generate import generate
from data.readers import frames_dataset
from tests.conftest import continue_in, held_by_another_process, tiny_config


def test_generate_data_run_records_everything(tmp_path):
    from experiments import generate_data

    ex = generate_data.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "runs"))]
    out = tmp_path / "datasets" / "pong"
    run = ex.run(
        config_updates={
            "game": "pong",
            "frames": 60,
            "shard_frames": 40,
            "out": str(out),
            "workers": 1,
            "progress": False,
        }
    )
    assert run.status == "COMPLETED"
    folder = tmp_path / "runs" / str(run._id)
    assert json.loads((folder / "run.json").read_text())["status"] == "COMPLETED"
    assert (folder / "manifest.json").exists() and (folder / "ground_truth.png").stat().st_size > 1000
    metrics = json.loads((folder / "metrics.json").read_text())
    assert sum(metrics[f"{s}.frames"]["values"][0] for s in ("train", "validation", "test")) == 60
    assert next(iter(frames_dataset(out, "train", batch_size=4, seed=0))).shape == (4, 84, 84, 3)
    assert np.isclose(run.result["validation"], 3)


def test_unknown_game_fails_the_run_with_the_supported_list(tmp_path):
    from experiments import generate_data

    ex = generate_data.ex
    ex.observers[:] = []
    with pytest.raises(ValueError, match="Supported games: .*ms_pacman"):
        ex.run(config_updates={"game": "tetris", "out": str(tmp_path / "x"), "workers": 1, "progress": False})


TINY_PERMAKEY = {
    "encoder_filters": [4, 8, 8, 8],
    "latent_dim": 4,
    "lspn_hidden": [16, 8],
    "batch_size": 4,
    "steps_per_epoch": 2,
    "log_every": 1,
    "picture_frames": 4,
    "progress": False,
}


def _training_run(module, tiny, tmp_path, dataset, **changes):
    """A keypoint-model experiment at a tiny size, recorded under tmp_path/runs, working in tmp_path/work."""
    ex = module.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "runs"))]
    config = {**tiny, "dataset": str(dataset), "work": str(tmp_path / "work"), **changes}
    return ex.run(config_updates=config)


def _permakey_run(tmp_path, dataset, **changes):
    from experiments import train_permakey

    return _training_run(train_permakey, TINY_PERMAKEY, tmp_path, dataset, **changes)


def test_train_permakey_records_metrics_pictures_and_a_reloadable_keypointer(joint_permakey):
    """What the shared one-epoch run (conftest joint_permakey: _permakey_run with epochs=1) recorded."""
    from permakey.keypointer import PermaKeyKeypointer

    folder = joint_permakey / "runs" / "1"
    result = json.loads((folder / "run.json").read_text())["result"]
    metrics = json.loads((folder / "metrics.json").read_text())
    for name in ("epoch.val_total_loss", "epoch.vae_loss", "epoch.lspn_loss", "epoch.pointnet_loss", "test.total_loss"):
        assert name in metrics, name
    best = metrics["epoch.val_lsp_pointnet_loss"]["values"][0]  # the paper preset's monitor, the authors' code's
    assert result["best_val_lsp_pointnet_loss"] == pytest.approx(best)
    for name in ("epoch.keypoint_motion", "epoch.keypoint_distinct", "test.keypoint_motion", "epoch.keypoint_recall"):
        assert np.isfinite(metrics[name]["values"]).all(), name
    assert "epoch.error_mass_on_objects.1" in metrics
    for picture in ("keypoints.png", "error_maps.png", "reconstructions.png"):
        assert (folder / picture).stat().st_size > 1000
    keypointer = PermaKeyKeypointer.load(folder)
    assert keypointer(np.zeros((1, 84, 84, 3), np.uint8)).coordinates.shape == (1, 3, 2)


@pytest.mark.usefixtures("eager_functions")
def test_a_resumed_permakey_run_continues_from_the_last_epoch_and_ends_where_an_uninterrupted_one_does(
    tmp_path, pong_dataset, joint_permakey, caplog
):
    """Stopped after epoch 1 (the shared joint_permakey run) and resumed, a run trains only epoch 2, restoring every
    variable, on the same batches from the same restored weights, optimizer slots and noise state as a run that went
    straight through: the same float32 kernels in the same order give the same numbers (a reset encoder, as restores
    once left it, moved epoch 2's loss by about 50%)."""
    resumed_root = continue_in(tmp_path / "resumed", joint_permakey)
    with caplog.at_level(logging.WARNING):
        resumed = _permakey_run(resumed_root, pong_dataset, epochs=2)
        gc.collect()  # an unfinished restore warns when its status object is collected
    assert "Value in checkpoint could not be found" not in caplog.text  # one line per trained variable, before
    assert resumed.status == "COMPLETED"
    assert resumed.info["resumed_from_epoch"] == 1 and resumed.info["previous_runs"] == ["1"]
    assert json.loads((resumed_root / "work" / "state.json").read_text())["epoch"] == 2
    straight = _permakey_run(tmp_path / "straight", pong_dataset, epochs=2)

    def epoch_2(run, root):
        metrics = json.loads((root / "runs" / str(run._id) / "metrics.json").read_text())
        return {name: series for name, series in metrics.items() if name.startswith("epoch.")}

    a, b = epoch_2(straight, tmp_path / "straight"), epoch_2(resumed, resumed_root)
    assert a.keys() == b.keys()
    assert b["epoch.total_loss"]["steps"] == [2]  # only the new epoch was trained
    for name in a:
        np.testing.assert_allclose(b[name]["values"][-1], a[name]["values"][-1], rtol=1e-5, atol=1e-7, err_msg=name)


def _after_joint_training(tmp_path, joint_permakey):
    """tmp_path/work: a copy of the shared one-epoch joint training's work folder (conftest joint_permakey), without
    its settings record, so that a run with refit settings continues it: the same joint training (already done), now
    followed by a refit."""
    shutil.copytree(joint_permakey / "work", tmp_path / "work")
    (tmp_path / "work" / "settings.json").unlink()
    return tmp_path / "work"


@pytest.mark.usefixtures("eager_functions")
def test_pointnet_refit_trains_a_fresh_pointnet_alone_once(tmp_path, pong_dataset, joint_permakey):
    from experiments.train_permakey import permakey_training
    from permakey.keypointer import PermaKeyKeypointer
    from training.keypoint_training import DataSettings
    from training.permakey_training import refit_pointnet

    work = _after_joint_training(tmp_path, joint_permakey)
    joint = PermaKeyKeypointer.load(work / "best").model
    run = _permakey_run(tmp_path, pong_dataset, epochs=1, pointnet_refit_steps=3)
    assert run.status == "COMPLETED"
    state = json.loads((work / "state.json").read_text())
    assert state["pointnet_refit"] == 3 and state["pointnet_refit_batch_size"] == TINY_PERMAKEY["batch_size"]
    refit = PermaKeyKeypointer.load(work / "best").model
    new, old = refit.module_variables(), joint.module_variables()
    assert any(not np.array_equal(a, b) for a, b in zip(new["pointnet"], old["pointnet"], strict=True))
    for module in ("vae", "lspn"):  # frozen
        assert all(np.array_equal(a, b) for a, b in zip(new[module], old[module], strict=True)), module
    metrics = json.loads((tmp_path / "runs" / str(run._id) / "metrics.json").read_text())
    assert len(metrics["refit.pointnet_loss"]["values"]) == 3

    # Done once: the run's own settings, or a state from before restarts, normalisations and the refit's batch size
    # existed, find the refit done and return without training (a refit would log through the run).
    class NoRefit:
        def log_scalar(self, *_):
            raise AssertionError("refitted again")

    training, data = permakey_training(run.config), DataSettings.from_config(run.config)
    assert refit_pointnet(training, state, data, NoRefit()) is state
    added = ("pointnet_refit_restarts", "pointnet_refit_normalisations", "pointnet_refit_batch_size")
    before = {key: value for key, value in state.items() if key not in added}
    assert refit_pointnet(training, before, data, NoRefit()) is before
    with pytest.raises(AssertionError, match="refitted again"):  # another batch size is another refit
        refit_pointnet(dataclasses.replace(training, refit_batch_size=8), before, data, NoRefit())


TWO_BY_TWO_REFITS = {
    "pointnet_refit_steps": 3,
    "pointnet_refit_restarts": 2,
    "pointnet_refit_normalisations": ["activation", "none"],
}
"""Two restarts under each of two error normalisations, 3 steps each."""


@pytest.mark.usefixtures("eager_functions")
def test_pointnet_refit_restarts_and_normalisations_keep_the_most_moving_refit_with_its_normalisation(
    tmp_path, pong_dataset
):
    """Two restarts under each of two error normalisations: four refits, each a new initialisation, the one whose
    keypoints move most kept with its normalisation and the run's PointNet settings."""
    from permakey.keypointer import PermaKeyKeypointer
    from training.permakey_training import validation_motion

    run = _permakey_run(tmp_path, pong_dataset, epochs=1, **TWO_BY_TWO_REFITS, pointnet_coordinates=True)
    assert run.status == "COMPLETED"
    state = json.loads((tmp_path / "work" / "state.json").read_text())
    motions, choice = state["pointnet_refit_motions"], state["pointnet_refit_choice"]
    assert len(motions) == 4 and choice == int(np.argmax(motions))
    assert len(set(motions[:2])) == 2  # two initialisations, two sets of keypoints
    assert state["pointnet_refit_normalisation"] == (["activation"] * 2 + ["none"] * 2)[choice]
    metrics = json.loads((tmp_path / "runs" / str(run._id) / "metrics.json").read_text())
    assert metrics["refit.keypoint_motion"]["values"] == pytest.approx(motions)
    for name in ("refit.pointnet_loss", *(f"refit.{i}.pointnet_loss" for i in range(1, 4))):
        assert len(metrics[name]["values"]) == 3, name
    # Refit 2 trains on the raw error maps, refit 0 (the same initialisation and batches) on the normalised ones.
    assert metrics["refit.pointnet_loss"]["values"] != pytest.approx(metrics["refit.2.pointnet_loss"]["values"])
    kept = PermaKeyKeypointer.load(tmp_path / "work" / "best")
    assert kept.model.config.pointnet_coordinates
    assert kept.model.config.error_normalisation == state["pointnet_refit_normalisation"]
    validation = np.concatenate(list(frames_dataset(pong_dataset, "validation", batch_size=16, seed=0, shuffle=False)))
    assert validation_motion(kept, validation) == pytest.approx(max(motions), rel=1e-3)


@pytest.mark.usefixtures("eager_functions")
def test_the_final_refit_trains_the_kept_refits_initialisation_again_and_keeps_the_more_moving(
    tmp_path, pong_dataset, joint_permakey
):
    """The final refit starts from the kept refit's normalisation, initialisation and batch order: at the same steps
    and batch it is that refit again (the same losses and motion). It is kept only where its keypoints move more, and
    another final batch size is another refit."""
    from experiments.train_permakey import permakey_training
    from permakey.keypointer import PermaKeyKeypointer
    from training.keypoint_training import DataSettings
    from training.permakey_training import refit_pointnet, validation_motion

    work = _after_joint_training(tmp_path, joint_permakey)
    run = _permakey_run(tmp_path, pong_dataset, epochs=1, **TWO_BY_TWO_REFITS, pointnet_refit_final_steps=3)
    assert run.status == "COMPLETED"
    state = json.loads((work / "state.json").read_text())
    motions, choice = state["pointnet_refit_motions"], state["pointnet_refit_choice"]
    assert state["pointnet_refit_final"] == 3 and state["pointnet_refit_final_batch_size"] == 4
    assert state["pointnet_refit_final_motion"] == pytest.approx(motions[choice], rel=1e-4)
    assert state["pointnet_refit_final_kept"] == (state["pointnet_refit_final_motion"] > motions[choice])
    metrics = json.loads((tmp_path / "runs" / str(run._id) / "metrics.json").read_text())
    chosen = "refit.pointnet_loss" if choice == 0 else f"refit.{choice}.pointnet_loss"
    assert metrics["refit.final.pointnet_loss"]["values"] == pytest.approx(metrics[chosen]["values"], rel=1e-4)
    validation = np.concatenate(list(frames_dataset(pong_dataset, "validation", batch_size=16, seed=0, shuffle=False)))
    for folder in ("best", "refit_choice"):
        kept = PermaKeyKeypointer.load(work / folder)
        assert validation_motion(kept, validation) == pytest.approx(motions[choice], rel=1e-3), folder

    class NoRefit:
        def log_scalar(self, *_):
            raise AssertionError("refitted again")

    training, data = permakey_training(run.config), DataSettings.from_config(run.config)
    assert refit_pointnet(training, state, data, NoRefit()) is state
    with pytest.raises(AssertionError, match="refitted again"):
        refit_pointnet(dataclasses.replace(training, final_batch_size=8), state, data, NoRefit())


def test_refits_hide_only_the_retracing_warning_that_one_trace_per_new_model_gives(caplog):
    """Each refit is a new model with its own traced step and keypointer; TensorFlow counts the traces of one method
    over its instances together and warns of excessive retracing from the fifth on (the quick preset runs eight
    refits). refit_pointnet runs its refits inside retracing_by_design, which drops that warning and no other."""
    import keras

    from training.permakey_training import retracing_by_design

    class Model(keras.Model):
        def step(self, x):
            return 2.0 * x

    def refits(n: int) -> None:  # a new model's first trace each
        for _ in range(n):
            tf.function(Model().step)(tf.ones(2))

    caplog.set_level(logging.WARNING)
    refits(6)
    assert "triggered tf.function retracing" in caplog.text  # what TensorFlow says without it
    caplog.clear()
    with retracing_by_design():
        refits(6)
        tf.get_logger().warning("another warning")
    assert "retracing" not in caplog.text and "another warning" in caplog.text


@pytest.mark.usefixtures("eager_functions")
def test_a_refit_on_another_normalisation_is_saved_with_it(tmp_path, pong_dataset, joint_permakey):
    from permakey.keypointer import PermaKeyKeypointer

    _after_joint_training(tmp_path, joint_permakey)
    _permakey_run(tmp_path, pong_dataset, epochs=1, pointnet_refit_steps=3, pointnet_refit_normalisations=["none"])
    assert json.loads((tmp_path / "work" / "state.json").read_text())["pointnet_refit_normalisation"] == "none"
    assert PermaKeyKeypointer.load(tmp_path / "work" / "best").model.config.error_normalisation == "none"


def test_train_permakey_refuses_to_resume_other_settings_before_making_anything(tmp_path, joint_permakey):
    """Refused before the dataset (missing here, so it would be generated) or the networks are made."""
    continue_in(tmp_path, joint_permakey)
    with pytest.raises(ValueError, match="other settings.*lspn_hidden"):
        _permakey_run(tmp_path, tmp_path / "missing", epochs=2, lspn_hidden=[8, 8])
    assert not (tmp_path / "missing").exists()


def test_train_permakey_missing_dataset_says_how_to_make_it(tmp_path):
    from data.storage import DatasetError

    with pytest.raises(DatasetError, match="make data"):
        _permakey_run(tmp_path, tmp_path / "absent", epochs=1, generate_missing=False)


def test_nan_guard_stops_with_a_clear_message(tmp_path):
    from training.checkpointing import NaNGuard, NaNLossError

    guard = NaNGuard(tmp_path)
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"total_loss": 1.0})
    with pytest.raises(NaNLossError, match=f"epoch 3, batch 5.*{tmp_path}"):
        guard.on_train_batch_end(4, {"total_loss": float("nan")})


TINY_TRANSPORTER = {
    "architecture": "pkey_reimpl",
    "filters": [4, 4, 8, 8],
    "batch_size": 4,
    "steps_per_epoch": 2,
    "log_every": 1,
    "picture_frames": 3,
    "progress": False,
}


def _transporter_run(tmp_path, dataset, **changes):
    from experiments import train_transporter

    return _training_run(train_transporter, TINY_TRANSPORTER, tmp_path, dataset, **changes)


@pytest.mark.usefixtures("eager_functions")
@pytest.mark.parametrize("model", ["transporter", "imm"])
def test_train_transporter_records_metrics_pictures_and_a_reloadable_keypointer(
    tmp_path, pong_dataset, tiny_transporter, model
):
    """The Transporter is the shared one-epoch run (conftest tiny_transporter); IMM trains its own."""
    from transporter.keypointer import TransporterKeypointer

    if model == "transporter":
        folder = tiny_transporter / "runs" / "1"
    else:
        run = _transporter_run(tmp_path, pong_dataset, epochs=1, model=model)
        assert run.status == "COMPLETED"
        folder = tmp_path / "runs" / str(run._id)
    metrics = json.loads((folder / "metrics.json").read_text())
    for name in ("epoch.loss", "epoch.val_loss", "step.loss", "test.loss"):
        assert name in metrics, name
    for name in ("epoch.keypoint_motion", "epoch.keypoint_distinct", "test.keypoint_motion"):
        assert np.isfinite(metrics[name]["values"]).all(), name
    for picture in ("reconstructions.png", "keypoints.png", "transport_energy.png"):
        assert (folder / picture).stat().st_size > 1000
    keypointer = TransporterKeypointer.load(folder)
    assert keypointer.config.model == model
    assert keypointer(np.zeros((1, 84, 84, 3), np.uint8)).coordinates.shape == (1, 3, 2)


@pytest.mark.usefixtures("eager_functions")
def test_train_transporter_resumes_and_refuses_other_settings(tmp_path, pong_dataset, tiny_transporter):
    continue_in(tmp_path, tiny_transporter)  # the shared run stopped after epoch 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second = _transporter_run(tmp_path, pong_dataset, epochs=2)
    messages = "\n".join(str(w.message) for w in caught)
    assert "ran out of data" not in messages and "shuffle=True" not in messages  # Keras's noise on a normal run
    assert second.info["resumed_from_epoch"] == 1
    assert second.info["previous_runs"] == ["1"]  # the run it resumed, found through the work folder
    metrics = json.loads((tmp_path / "runs" / str(second._id) / "metrics.json").read_text())
    assert metrics["epoch.loss"]["steps"] == [2]
    with pytest.raises(ValueError, match="other settings.*sigma"):
        _transporter_run(tmp_path, pong_dataset, epochs=3, sigma=0.2)


@pytest.mark.usefixtures("eager_functions")
def test_a_training_split_smaller_than_one_batch_fails_and_keeps_no_keypointer(tmp_path):
    """Two training frames give one pair, less than a batch of 4: no step can run, so the run must fail (it used to
    end COMPLETED with an untrained keypointer as best/). The check is train_resumably's, shared with PermaKey."""
    dataset = tmp_path / "small"
    generate(tiny_config(split_frames={"train": 2, "validation": 30, "test": 30}), dataset, workers=1, progress=False)
    with pytest.raises(ValueError, match="Epoch 1 ran no training step.*batch_size=4"):
        _transporter_run(tmp_path, dataset, epochs=1)
    assert not (tmp_path / "work" / "best").exists()
    (record,) = (tmp_path / "runs").glob("*/run.json")
    assert json.loads(record.read_text())["status"] == "FAILED"


def test_a_second_training_into_the_same_work_folder_is_refused(tmp_path, pong_dataset):
    from data.storage import FolderInUseError

    with held_by_another_process(tmp_path / "work") as pid:
        with pytest.raises(FolderInUseError, match=rf"work is in use by another process \(pid {pid}\)"):
            _transporter_run(tmp_path, pong_dataset, epochs=1)
    assert not (tmp_path / "work" / "state.json").exists()


def test_train_transporter_unknown_architecture_lists_the_known_ones(tmp_path, pong_dataset):
    with pytest.raises(ValueError, match="paper.*pkey_reimpl"):
        _transporter_run(tmp_path, pong_dataset, epochs=1, architecture="resnet")


def _eval_run(tmp_path, dataset, runs, **changes):
    from experiments import eval_keypoints

    ex = eval_keypoints.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "eval_runs"))]
    config = {
        "runs": runs,
        "dataset": str(dataset),
        "frames": 30,
        "lengths": [1, 5, 10, 50],
        "distractors": ["none", "vertical"],
        "gif_frames": 4,
        "generate_missing": False,
        "progress": False,
        **changes,
    }
    return ex.run(config_updates=config)


@pytest.mark.usefixtures("eager_functions")
def test_eval_keypoints_records_tables_figure_gif_and_report(tmp_path, pong_dataset, tiny_transporter):
    folder = str(tiny_transporter / "runs" / "1")  # read only
    report = tmp_path / "docs" / "quality.md"
    run = _eval_run(tmp_path, pong_dataset, [folder], labels=["tiny"], report=str(report))
    assert run.status == "COMPLETED"
    out = tmp_path / "eval_runs" / str(run._id)
    for name in ("tracking.png", "tracking.csv", "summary.csv", "categories.csv", "tracking.md", "episode_tiny.gif"):
        assert (out / name).stat().st_size > 100, name
    table = (out / "tracking.csv").read_text().splitlines()
    assert table[0] == "model,distractors,length,precision,recall,windows,precision_held_still,recall_held_still"
    assert len(table) == 1 + 3 * 2 * 4  # the keypointer and the two reference rows, 2 distractors settings, 4 lengths
    text = report.read_text()
    assert "| tiny | vertical |" in text and "| random | none |" in text and "| motion | vertical |" in text
    assert "| recall@1 | recall@1 held still | recall@1 - held still |" in text
    assert "| Player recall@1 (" in text  # the per-category table, the player first
    categories = (out / "categories.csv").read_text().splitlines()
    assert categories[0] == "model,distractors,length,category,recall,recall_held_still,trajectories"
    assert categories[1].startswith("tiny,none,1,Player,")
    assert 0.0 <= run.result["tiny/none/precision@1"] <= 1.0
    assert 0.0 <= run.result["motion/none/recall_held_still@1"] <= 1.0
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("collapsed_fraction", "recall_held_still", "recall.Player", "frame_recall_held_still"):
        assert f"tiny.none.{name}" in metrics, name


def test_an_eval_report_names_the_policy_of_its_frames():
    from experiments.eval_keypoints import report_command

    base = {"game": "ms_pacman", "runs": [1, 2], "dataset_policy": "uniform", "dataset_change_probability": 1.0}
    assert report_command(base) == "make eval-keypoints GAME=ms_pacman RUNS=1,2"
    sticky = report_command({**base, "dataset_policy": "sticky", "dataset_change_probability": 0.1})
    assert sticky == "make eval-keypoints GAME=ms_pacman RUNS=1,2 POLICY=sticky CHANGE_PROBABILITY=0.1"


def test_eval_keypoints_unknown_run_id_is_named(tmp_path, pong_dataset, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    with pytest.raises(FileNotFoundError, match="Unknown run id 999"):
        _eval_run(tmp_path, pong_dataset, [999])
    with pytest.raises(ValueError, match="No keypointers given"):
        _eval_run(tmp_path, pong_dataset, [])


def test_keypoint_health_tells_keypoints_on_objects_from_still_ones():
    from types import SimpleNamespace

    from training.health import GroundTruthClip, KeypointHealth

    class Run:
        def __init__(self):
            self.logged, self.info = {}, {}

        def log_scalar(self, name, value, step=None):
            self.logged[name] = (value, step)

    # One object (a native 8x8 box) moving along the diagonal; keypoints mapped 1:1 (a 84-cell grid, geometry (1, 0)).
    t = np.arange(16)
    boxes = [np.array([[20.0 + 6 * i, 30.0 + 8 * i, 8.0, 8.0]]) for i in t]
    clip = GroundTruthClip(np.zeros((16, 84, 84, 3), np.uint8), boxes, epsilon=0.2)
    centres = np.concatenate(clip.truth())  # [16, 2] normalised (y, x)
    rows = np.round((centres + 1) / 2 * 83).astype(int)

    class Keypointer:
        geometry = (84, (1.0, 0.0))

        def __init__(self, coordinates):
            self.coordinates = coordinates

        def __call__(self, frames):
            return SimpleNamespace(coordinates=tf.constant(self.coordinates[: len(frames)], tf.float32))

    class WithErrorMaps(Keypointer):
        def error_maps(self, frames):  # all the error on the object
            maps = np.zeros((len(frames), 84, 84, 1), np.float32)
            maps[np.arange(len(frames)), rows[: len(frames), 0], rows[: len(frames), 1]] = 1.0
            return tf.constant(maps)

    still, tracking = Keypointer(np.zeros((16, 2, 2))), WithErrorMaps(np.stack([centres, -centres], 1))
    results = []
    for k in (still, tracking):
        run = Run()
        KeypointHealth(run, k, clip, baseline=("val_a", "val_b")).on_epoch_end(2, {"val_a": 1.0, "val_b": 0.5})
        results.append(run)
    assert results[0].logged["epoch.keypoint_motion"] == (0.0, 3)
    assert results[0].logged["epoch.keypoint_distinct"][0] == 1.0
    assert results[0].logged["epoch.keypoint_recall"][0] < 0.2
    assert results[1].logged["epoch.keypoint_motion"][0] > 0.2
    assert results[1].logged["epoch.keypoint_recall"][0] == 1.0
    # Held still, the still keypoints are themselves; the tracking ones park at their mean positions (the first at the
    # diagonal's middle) and keep only the frames where the object passes within epsilon of one of them.
    assert results[0].logged["epoch.keypoint_recall_held_still"][0] == results[0].logged["epoch.keypoint_recall"][0]
    parked = np.stack([centres.mean(axis=0), -centres.mean(axis=0)])
    near = np.linalg.norm(centres[:, None] - parked[None], axis=-1).min(axis=1) <= 0.2
    assert results[1].logged["epoch.keypoint_recall_held_still"][0] == pytest.approx(near.mean())
    assert near.mean() < 0.5
    assert results[1].logged["epoch.error_mass_on_objects.0"][0] == 1.0
    assert "no better than val_b" in results[0].info["warnings"][0]


def test_work_folders_from_before_a_new_config_key_still_resume(tmp_path):
    from training.checkpointing import check_settings

    (tmp_path / "settings.json").write_text(json.dumps({"sigma": 0.1, "norm": "layer"}))
    check_settings(tmp_path, {"sigma": 0.1, "norm": "layer", "error_normalisation": "activation"})  # a key added since
    with pytest.raises(ValueError, match=r"other settings \(sigma differ\)"):
        check_settings(tmp_path, {"sigma": 0.2, "norm": "layer", "error_normalisation": "activation"})
    with pytest.raises(ValueError, match=r"other settings \(norm differ\)"):
        check_settings(tmp_path, {"sigma": 0.1})  # a key the run had is gone


def test_what_a_resumed_run_may_change_is_the_shared_base_and_each_experiments_own():
    """Each experiment adds to CHANGEABLE_ON_RESUME; the sets are the ones work folders were recorded with (one entry
    more or less would refuse, or let through, old work folders)."""
    from experiments import explore, train_agent
    from training.checkpointing import CHANGEABLE_ON_RESUME, FIT_CHANGEABLE_ON_RESUME

    base = {"progress", "log_every"}
    assert set(CHANGEABLE_ON_RESUME) == base
    assert set(FIT_CHANGEABLE_ON_RESUME) == base | {"epochs", "patience", "picture_frames", "picture_offset"}
    names = {"video_steps", "preset", "keypointer_name", "precision"}
    assert set(train_agent.AGENT_CHANGEABLE_ON_RESUME) == base | names | {"test_seeds", "test_episodes"}
    assert set(explore.EXPLORE_CHANGEABLE_ON_RESUME) == base | names | {"explore_steps"}


def test_a_renamed_key_reads_under_its_current_name():
    from training.checks import current_names

    old = {"game": "pong", "noise": "both", "seed": 0}
    assert current_names(old) == {"game": "pong", "distractors": "both", "seed": 0}
    assert current_names({"distractors": "none", "game": "pong"}) == {"distractors": "none", "game": "pong"}
    assert current_names({"noise": "both", "distractors": "none"}) == {"distractors": "none"}  # the current one wins


def test_a_work_folder_that_recorded_noise_resumes_with_the_same_distractors(tmp_path):
    """The distractor bars' config key was `noise`: a work folder whose settings.json says so resumes with the same
    value under `distractors`, and refuses another, naming the key by its current name."""
    from training.checkpointing import check_settings

    (tmp_path / "settings.json").write_text(json.dumps({"sigma": 0.1, "noise": "vertical"}))
    check_settings(tmp_path, {"sigma": 0.1, "distractors": "vertical"})
    with pytest.raises(ValueError, match=r"other settings \(distractors differ\)"):
        check_settings(tmp_path, {"sigma": 0.1, "distractors": "none"})


def test_a_preset_whose_docstring_was_reworded_still_resumes(tmp_path):
    """Sacred records a named preset's docstring as the config entry `__doc__`; rewording it changes nothing trained."""
    from training.checkpointing import check_settings

    (tmp_path / "settings.json").write_text(json.dumps({"__doc__": "CPU-sized (old words)", "sigma": 0.1}))
    check_settings(tmp_path, {"__doc__": "CPU-sized (new words)", "sigma": 0.1})
    check_settings(tmp_path, {"sigma": 0.1})
    with pytest.raises(ValueError, match=r"other settings \(sigma differ\)"):
        check_settings(tmp_path, {"__doc__": "CPU-sized (new words)", "sigma": 0.2})


def test_a_new_key_whose_old_value_is_known_is_compared_with_it(tmp_path):
    """A work folder from before pointnet_coordinates resumes with it off (what it trained with) and is refused with it
    on (the quick preset now), instead of failing to restore weights of another shape."""
    from training.checkpointing import check_settings

    (tmp_path / "settings.json").write_text(json.dumps({"sigma": 0.1}))
    check_settings(tmp_path, {"sigma": 0.1, "pointnet_coordinates": False, "pointnet_refit_restarts": 1})
    with pytest.raises(ValueError, match=r"other settings \(pointnet_coordinates, pointnet_refit_restarts differ\)"):
        check_settings(tmp_path, {"sigma": 0.1, "pointnet_coordinates": True, "pointnet_refit_restarts": 4})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("pointnet_refit_restarts", "pointnet_refit_restarts must be >= 1"),
        ("pointnet_refit_batch_size", "pointnet_refit_batch_size=0 is out of range"),
        ("pointnet_refit_final_batch_size", "pointnet_refit_final_batch_size=0 is out of range"),
    ],
)
def test_train_permakey_refuses_a_refit_of_no_restarts_or_an_empty_batch(tmp_path, pong_dataset, change, message):
    with pytest.raises(ValueError, match=message):
        _permakey_run(tmp_path, pong_dataset, epochs=1, pointnet_refit_steps=3, **{change: 0})


@pytest.mark.parametrize("normalisations", [["raw"], ["none", "none"]])
def test_train_permakey_refuses_unknown_or_repeated_refit_normalisations(tmp_path, pong_dataset, normalisations):
    with pytest.raises(ValueError, match=r"pointnet_refit_normalisations must name each of .*activation"):
        _permakey_run(tmp_path, pong_dataset, epochs=1, pointnet_refit_normalisations=normalisations)


@pytest.mark.usefixtures("eager_functions")
def test_after_a_run_that_trained_nothing_a_smaller_batch_size_is_accepted(tmp_path):
    """The zero-step error advises a lower batch_size; the rerun with it used to be refused as "other settings"
    because the failed run had recorded its settings before training anything. They are recorded with the first
    checkpoint now."""
    dataset = tmp_path / "small"
    generate(tiny_config(split_frames={"train": 2, "validation": 30, "test": 30}), dataset, workers=1, progress=False)
    with pytest.raises(ValueError, match="Epoch 1 ran no training step.*lower batch_size"):
        _transporter_run(tmp_path, dataset, epochs=1)
    assert not (tmp_path / "work" / "settings.json").exists()
    run = _transporter_run(tmp_path, dataset, epochs=1, batch_size=1)
    assert run.status == "COMPLETED"
    assert json.loads((tmp_path / "work" / "settings.json").read_text())["batch_size"] == 1
    with pytest.raises(ValueError, match=r"other settings \(batch_size differ\)"):  # trained now: recorded
        _transporter_run(tmp_path, dataset, epochs=2, batch_size=2)


def test_an_interrupted_checkpoint_save_is_cleaned_at_the_next_start(tmp_path):
    """A kill during tf.train.CheckpointManager.save leaves ckpt-N_temp/ (and the index file's temporary copy) in
    last/; the next start under the work folder's lock removes those, and only those."""
    from training.checkpointing import load_state

    last = tmp_path / "last"
    (last / "ckpt-3_temp").mkdir(parents=True)
    (last / "ckpt-3_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half")
    (last / ("checkpoint.tmp" + "0123456789abcdef" * 2)).write_text("half")
    kept = ["ckpt-2.index", "ckpt-2.data-00000-of-00001", "checkpoint", "notes_temp", "checkpoint.tmp"]
    for name in kept:
        (last / name).write_text("x")
    state = load_state(tmp_path, tf.train.Checkpoint(), {"sigma": 0.1})
    assert state["epoch"] == 0
    assert sorted(p.name for p in last.iterdir()) == sorted(kept)


def test_ensure_dataset_waits_for_another_process_generating_it_and_uses_its_dataset(tmp_path, pong_dataset):
    """The grid starts a game's two keypointer jobs at once on a fresh checkout: both found the dataset missing, both
    generated it, and the second failed on the first one's lock. Now the second waits and uses the first's dataset."""
    import shutil
    import signal
    import threading
    import time

    from data import storage
    from experiments import generation

    dataset = tmp_path / "pong"
    partial = tmp_path / "pong.partial"

    def refuse(**_):
        raise AssertionError("a second generation started")

    with held_by_another_process(partial) as pid:

        def finish() -> None:  # the other process writes the dataset, then ends and drops its lock
            time.sleep(1.0)
            shutil.copytree(pong_dataset, dataset)
            os.kill(pid, signal.SIGKILL)

        other = threading.Thread(target=finish)
        other.start()
        original, generation.ex.run = generation.ex.run, refuse
        try:
            generation.ensure_dataset(str(dataset), "pong", 180, 0, True, False, wait_s=60, poll_s=0.1)
        finally:
            generation.ex.run = original
            other.join()
    assert storage.read_manifest(dataset)["game"] == "pong"
    assert not partial.exists()  # the waiting process took the lock, found the dataset and left nothing


def test_ensure_dataset_waits_a_bounded_time_naming_the_generating_process(tmp_path, capsys):
    from data.storage import FolderInUseError
    from experiments import generation

    dataset = tmp_path / "pong"
    with held_by_another_process(tmp_path / "pong.partial") as pid:
        with pytest.raises(FolderInUseError, match=rf"{dataset} is still being generated by .*pid {pid}.*rerun"):
            generation.ensure_dataset(str(dataset), "pong", 180, 0, True, False, wait_s=0.5, poll_s=0.1)
    assert f"Waiting for process {pid}" in capsys.readouterr().out
    assert not dataset.exists()


def test_ensure_dataset_generates_a_missing_dataset_once(tmp_path):
    from data import storage
    from experiments import generation

    generation.ex.observers[:] = [FileStorageObserver(str(tmp_path / "runs"))]
    dataset = tmp_path / "pong"
    for _ in range(2):  # the second call finds it made
        generation.ensure_dataset(str(dataset), "pong", 30, 0, True, False, workers=1)
    assert storage.read_manifest(dataset)["game"] == "pong"
    assert not (tmp_path / "pong.partial").exists()
    assert len(list((tmp_path / "runs").glob("*/run.json"))) == 1


PRESET_CHANGES = ("likelihood_scale", "vae_loss", "decoder", "lspn_norm", "lr_schedule", "monitor", "error_metric")


def test_the_paper_presets_are_the_paper_values_written_once():
    """Each experiment's default (paper) config builds exactly the model, optimisation and learner that the library
    writes down once (permakey.model.paper_config, Optimization.paper, transporter.model.paper_config, rl's
    PAPER_LEARNER and PAPER_SCHEDULE), for every game's K."""
    from experiments import explore, train_agent, train_permakey, train_transporter
    from permakey.model import paper_config
    from rl.learner import PAPER_LEARNER
    from rl.loop import PAPER_SCHEDULE
    from training.permakey_training import Optimization
    from transporter.model import paper_config as transporter_paper

    for game in ("pong", "ms_pacman"):
        c = train_permakey.ex.resolved_config(config_updates={"game": game})
        assert train_permakey.model_config(c) == paper_config(c["num_keypoints"])
        assert Optimization.from_config(c) == Optimization.paper() and c["pointnet_learning_rate"] == c["learning_rate"]
        for named in ([], ["pkey_reimpl"]):
            t = train_transporter.ex.resolved_config(named, config_updates={"game": game})
            assert train_transporter.model_config(t) == transporter_paper(
                "transporter", t["num_keypoints"], t["architecture"]
            )
    agent = train_agent.ex.resolved_config(config_updates={"keypointer": "oracle"})
    learner = {
        "learning_rate": "learning_rate",
        "clip_norm": "clip_norm",
        "gamma": "gamma",
        "n": "n_step",
        "tau": "tau",
    }
    assert {name: agent[key] for name, key in learner.items()} == PAPER_LEARNER
    assert {name: agent[name] for name in PAPER_SCHEDULE} == PAPER_SCHEDULE
    options = explore.ex.resolved_config(config_updates={"keypointer": "oracle"})
    assert {name: options[name] for name in ("learning_rate", "clip_norm", "tau")} == {
        name: PAPER_LEARNER[name] for name in ("learning_rate", "clip_norm", "tau")
    }


def test_the_quick_preset_keeps_the_settings_it_was_measured_with():
    """The paper preset follows the authors' code where the paper is silent (the likelihood's variance 0.1, BatchNorm
    in the LSPN MLPs, early stopping on the LSPN and PointNet losses); the quick preset keeps what it had."""
    from experiments import train_permakey

    paper = train_permakey.ex.resolved_config()
    quick = train_permakey.ex.resolved_config(["quick"])
    assert {name: paper[name] for name in PRESET_CHANGES} == {
        "likelihood_scale": pytest.approx(0.1**0.5),
        "vae_loss": "elbo",
        "decoder": "paper",
        "lspn_norm": "batch",
        "lr_schedule": "exponential",
        "monitor": "val_lsp_pointnet_loss",
        "error_metric": "mse",
    }
    assert {name: quick[name] for name in PRESET_CHANGES} == {
        "likelihood_scale": 0.1,
        "vae_loss": "elbo",
        "decoder": "paper",
        "lspn_norm": "none",
        "lr_schedule": "exponential",
        "monitor": "val_total_loss",
        "error_metric": "rmse",
    }


def test_the_cpu_preset_is_the_paper_preset_at_the_authors_budget():
    """PRESET=cpu changes only how long PermaKey trains and on which frames: every architecture, loss and optimiser
    value is the paper preset's (no refit), at 5,000 steps of batch 32, in epochs short enough to resume from."""
    from experiments import train_permakey

    paper = train_permakey.ex.resolved_config()
    cpu = train_permakey.ex.resolved_config(["cpu"])
    changed = {name for name in paper if paper[name] != cpu[name]} - {"__doc__"}
    budget_and_frames = {"preset", "epochs", "steps_per_epoch", "data_policy", "data_change_probability"}
    assert changed == budget_and_frames | {"dataset", "work"}
    assert cpu["epochs"] * cpu["steps_per_epoch"] == 5_000 and cpu["batch_size"] == 32
    assert (cpu["data_policy"], cpu["data_change_probability"], cpu["data_frames"]) == ("sticky", 0.1, 95_000)
    assert cpu["pointnet_refit_steps"] == 0 and cpu["dataset"] != paper["dataset"] and cpu["work"] != paper["work"]


def test_work_folders_from_before_the_authors_options_resume_as_they_trained(tmp_path):
    """A settings.json without the new keys compares as the values those runs had: a quick run resumes, a paper run
    (BatchNorm in the LSPNs, another monitor) is refused instead of failing to restore."""
    from experiments.train_permakey import ex
    from training.checkpointing import check_settings

    (tmp_path / "settings.json").write_text(json.dumps({"sigma": 0.1}))
    quick = ex.resolved_config(["quick"])
    check_settings(tmp_path, {"sigma": 0.1, **{name: quick[name] for name in PRESET_CHANGES[1:]}})
    paper = ex.resolved_config()
    with pytest.raises(ValueError, match=r"other settings \(lspn_norm, monitor differ\)"):
        check_settings(tmp_path, {"sigma": 0.1, **{name: paper[name] for name in PRESET_CHANGES[1:]}})


def test_learning_rate_schedules_decay_as_the_paper_and_the_authors_code_say():
    """The paper: x0.85 every 10000 steps; the authors' code: InverseTimeDecay, lr / (1 + 0.85 floor(t / 10000))."""
    from training.permakey_training import Optimization

    def rates(schedule: str) -> list[float]:
        adam = Optimization(2e-4, 1e-3, 10_000, 0.85, schedule).optimizers()
        return [float(adam[module].learning_rate.numpy()) for module in ("vae", "pointnet")]

    def at(schedule: str, step: int) -> list[float]:
        optimization = Optimization(2e-4, 1e-3, 10_000, 0.85, schedule)
        return [float(optimization.schedule(lr)(step)) for lr in (2e-4, 1e-3)]

    assert rates("exponential") == rates("inverse_time") == pytest.approx([2e-4, 1e-3])
    assert at("exponential", 9_999) == at("inverse_time", 9_999) == pytest.approx([2e-4, 1e-3])
    assert at("exponential", 25_000) == pytest.approx([2e-4 * 0.85**2, 1e-3 * 0.85**2])
    assert at("inverse_time", 25_000) == pytest.approx([2e-4 / 2.7, 1e-3 / 2.7])
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        Optimization(2e-4, 1e-3, 10_000, 0.85, "cosine")


def test_train_permakey_refuses_an_unknown_monitor(tmp_path):
    from tests.permakey.conftest import tiny_config as tiny_permakey
    from training.permakey_training import Optimization, PermaKeyTraining

    with pytest.raises(ValueError, match=r"monitor must be one of .*val_lsp_pointnet_loss"):
        PermaKeyTraining(
            tiny_permakey(), Optimization(2e-4, 2e-4, 10, 0.85), tmp_path, 0, 1, ("activation",), 1, 1, False, "val"
        )
