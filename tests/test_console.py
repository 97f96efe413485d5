"""A quiet console on a healthy machine, and config errors that say what is wrong."""

import importlib
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
EXPERIMENTS = [
    "generate_data",
    "train_permakey",
    "train_transporter",
    "eval_keypoints",
    "train_agent",
    "evaluate_agent",
]


# absl's prefix: severity, MMDD, time, thread, file:line.
_ABSL_LINE = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]]+\] (.*)")
_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def test_loading_an_experiment_prints_only_what_tensorflow_prints_before_its_logging_starts():
    """No Python warning (Sacred's pkg_resources one used to print at every start), and of TensorFlow's C++ lines only
    those that come before its logging is set up, which TF_CPP_MIN_LOG_LEVEL cannot hide (experiments/__init__.py):
    absl's preamble, info and warning lines, and the failed cuInit of a machine without an NVIDIA driver."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", "import experiments.common, tensorflow as tf; tf.constant(1.0) + 1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    driver = os.path.exists("/proc/driver/nvidia/version")
    for line in done.stderr.splitlines():
        match = _ABSL_LINE.match(line)
        if line == _PREAMBLE or (match and match.group(1) in "IW"):
            continue
        assert match and not driver and "failed call to cuInit" in match.group(2), f"unexpected console line: {line}"


def test_named_configs_with_docstrings_add_no_warning(caplog):
    from experiments import train_transporter

    with caplog.at_level(logging.INFO):
        config = train_transporter.ex.resolved_config(["quick"])
    assert config["steps_per_epoch"] == 150
    assert "__doc__" not in caplog.text


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_help_shows_the_experiments_own_docstring(name):
    module = importlib.import_module(f"experiments.{name}")
    assert module.__doc__ and module.ex.doc == module.__doc__


def test_a_config_value_of_the_wrong_type_is_refused_before_the_run(tmp_path):
    from experiments import generate_data

    ex = generate_data.ex
    ex.observers[:] = []
    with pytest.raises(TypeError, match=r"Config value frames='abc' is a str, but frames takes a int"):
        ex.run(config_updates={"frames": "abc", "out": str(tmp_path / "pong"), "progress": False})
    assert not (tmp_path / "pong").exists() and not (tmp_path / "pong.partial").exists()
    updates = {"pair_budget": 3, "out": str(tmp_path / "pong")}  # an int for a float
    ex.check_updates(updates)
    assert ex.resolved_config(config_updates=updates)["pair_budget"] == 3


def test_batch_size_of_the_wrong_type_is_refused_before_training(tmp_path):
    """It used to crash deep inside TensorFlow."""
    from experiments import train_transporter

    ex = train_transporter.ex
    ex.observers[:] = []
    updates = {"batch_size": "abc", "dataset": str(tmp_path / "absent"), "work": str(tmp_path / "work")}
    with pytest.raises(TypeError, match=r"batch_size='abc' is a str, but batch_size takes a int like its default 64"):
        ex.run(config_updates=updates)
    assert not (tmp_path / "work").exists()


def test_keras_prints_a_line_per_epoch_when_its_output_is_not_a_terminal():
    """Keras's progress bar redraws itself with ANSI sequences: in a log file that is noise, one line per epoch is
    what a log wants (verbose=2); a terminal keeps the bar, and progress=False prints nothing."""
    import io

    from training.checkpointing import fit_verbosity

    primary, secondary = os.openpty()
    with open(secondary, "w") as terminal:
        assert fit_verbosity(True, terminal) == 1
    os.close(primary)
    assert fit_verbosity(True, io.StringIO()) == 2
    with open(os.devnull, "w") as log:
        assert fit_verbosity(True, log) == 2
    assert fit_verbosity(False, io.StringIO()) == 0
