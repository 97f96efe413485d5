"""Config values out of range are refused at the start of a run, naming the value and the allowed range, before any
dataset is generated or any setting recorded; the grid runner's arguments likewise."""

import re

import pytest
from sacred.observers import FileStorageObserver

from experiments import explore, run_grid, train_agent, train_permakey, train_transporter
from experiments.grids import expand
from training.checks import check_range


def test_check_range_names_the_value_and_the_range():
    check_range("epochs", 1, 1)
    check_range("decay_rate", 1.0, 0, 1, above=True)
    with pytest.raises(ValueError, match=r"epochs=-1 is out of range: epochs must be >= 1\."):
        check_range("epochs", -1, 1)
    with pytest.raises(ValueError, match=r"learning_rate=0.0 is out of range: learning_rate must be > 0\."):
        check_range("learning_rate", 0.0, 0, above=True)
    with pytest.raises(ValueError, match=r"decay_rate=nan is out of range: decay_rate must be in \(0, 1\]\."):
        check_range("decay_rate", float("nan"), 0, 1, above=True)


@pytest.mark.parametrize(
    ("module", "change", "message"),
    [
        (train_permakey, {"epochs": -1}, r"epochs=-1 is out of range: epochs must be >= 1"),
        (train_permakey, {"batch_size": 0}, r"batch_size=0 is out of range: batch_size must be >= 1"),
        (train_permakey, {"learning_rate": -1.0}, r"learning_rate=-1.0 is out of range: learning_rate must be > 0"),
        (train_permakey, {"distractors": "diagonal"}, r"Unknown distractors 'diagonal'; choose one of"),
        (train_permakey, {"steps_per_epoch": 0}, r"steps_per_epoch=0 is out of range"),
        (train_transporter, {"learning_rate": -1.0}, r"learning_rate=-1.0 is out of range"),
        (train_transporter, {"decay_rate": 1.5}, r"decay_rate=1.5 is out of range: decay_rate must be in \(0, 1\]"),
        (train_transporter, {"patience": 0}, r"patience=0 is out of range"),
    ],
)
def test_a_keypoint_run_refuses_an_out_of_range_value_before_generating_or_recording(tmp_path, module, change, message):
    ex = module.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "runs"))]
    dataset, work = tmp_path / "absent", tmp_path / "work"
    config = {"dataset": str(dataset), "work": str(work), "progress": False, "data_frames": 30, **change}
    with pytest.raises(ValueError, match=message):
        ex.run(config_updates=config)
    assert not dataset.exists() and not dataset.with_name("absent.partial").exists()  # no dataset generated
    assert not (work / "settings.json").exists()


@pytest.mark.parametrize(
    ("module", "change", "message"),
    [
        (train_agent, {"learning_rate": -1.0}, r"learning_rate=-1.0 is out of range: learning_rate must be > 0"),
        (train_agent, {"batch_size": 0}, r"batch_size=0 is out of range"),
        (train_agent, {"gamma": 1.5}, r"gamma=1.5 is out of range: gamma must be in \[0, 1\]"),
        (explore, {"learning_rate": -1.0}, r"learning_rate=-1.0 is out of range"),
        (explore, {"epsilon_range": [0.0, 0.4]}, r"epsilon_range\[0\]=0.0 is out of range"),
        (explore, {"option_steps": 0}, r"option_steps=0 is out of range"),
    ],
)
def test_an_agent_run_refuses_an_out_of_range_value_before_loading_the_keypointer(tmp_path, module, change, message):
    ex = module.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "runs"))]
    work = tmp_path / "work"
    config = {"keypointer": str(tmp_path / "no_keypointer"), "work": str(work), "progress": False, **change}
    with pytest.raises(ValueError, match=message):  # not the missing keypointer's FileNotFoundError
        ex.run(config_updates=config)
    assert not (work / "settings.json").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--grid", "keypoints", "--games", "pacman"], r"Unknown game 'pacman'\. Supported games: .*ms_pacman"),
        (["--grid", "table1", "--seeds", "0,x"], r"--seeds: 'x' is not a seed: give integers >= 0"),
        (["--grid", "table3", "--games", "ms_pacman"], r"The table3 grid takes no games option"),
    ],
)
def test_the_grid_runner_refuses_bad_arguments_naming_them(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_grid.main([*argv, "--dry-run"])
    assert exit_.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_expand_refuses_bad_seeds_and_options_and_names_games_canonically():
    with pytest.raises(ValueError, match=r"Seeds must be integers >= 0, got \[-1\]"):
        expand("table1", "quick", [-1])
    with pytest.raises(ValueError, match=r"table3 grid takes no games option \(its options: keypoints\)"):
        expand("table3", "quick", [0], games=["ms_pacman"])
    jobs = expand("keypoints", "quick", [0], games=["MsPacman"])
    assert {job.settings["game"] for job in jobs} == {"ms_pacman"}
