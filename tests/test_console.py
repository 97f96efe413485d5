"""A quiet console on a healthy machine, and config errors that say what is wrong (issue 15)."""

import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import shown_start_up_lines

ROOT = Path(__file__).parents[1]
EXPERIMENTS = [
    "generate_data",
    "train_permakey",
    "train_transporter",
    "eval_keypoints",
    "train_agent",
    "evaluate_agent",
]


def test_start_up_lines_hide_what_the_log_level_hides_and_keep_the_rest():
    lines = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        "I0000 00:00:1796428383.547113    3304 port.cc:153] oneDNN custom operations are on.\n",
        "W0000 00:00:1796428383.547113    3304 zlib_outputbuffer.cc:53] ZlibOutputBuffer::Close() not called.\n",
        "E0000 00:00:1796428400.485767    3304 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n",
        "E0000 00:00:1796428400.485767    3304 some_op.cc:9] a real error\n",
        "a line of its own\n",
    ]
    assert shown_start_up_lines(lines, 2, gpu_driver=False) == [lines[4], lines[5]]
    assert shown_start_up_lines(lines, 1, gpu_driver=False) == [lines[2], lines[4], lines[5]]
    assert shown_start_up_lines(lines, 2, gpu_driver=True) == [lines[3], lines[4], lines[5]]  # a driver: cuInit is real


def test_loading_an_experiment_prints_nothing_on_a_healthy_machine():
    """TensorFlow's start-up lines (absl preamble, oneDNN and CUDA-stub info, the cuInit error without a driver) and
    Sacred's pkg_resources warning used to print at every start, and again in every worker process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", "import experiments.common, tensorflow as tf; tf.constant(1.0) + 1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    if os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip(f"an NVIDIA driver is present: its messages are real ({done.stderr})")
    assert done.stderr == "" and done.stdout == ""


def test_named_configs_with_docstrings_add_no_warning(caplog):
    from experiments import train_transporter

    with caplog.at_level(logging.INFO):
        run = train_transporter.ex._create_run(named_configs=["quick"])
    assert run.config["steps_per_epoch"] == 150
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
    run = ex._create_run(config_updates={"pair_budget": 3, "out": str(tmp_path / "pong")})  # an int for a float
    assert run.config["pair_budget"] == 3


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

    from experiments.checkpointing import fit_verbosity

    primary, secondary = os.openpty()
    with open(secondary, "w") as terminal:
        assert fit_verbosity(True, terminal) == 1
    os.close(primary)
    assert fit_verbosity(True, io.StringIO()) == 2
    with open(os.devnull, "w") as log:
        assert fit_verbosity(True, log) == 2
    assert fit_verbosity(False, io.StringIO()) == 0
