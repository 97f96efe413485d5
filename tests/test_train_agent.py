"""The agent experiments end to end at a tiny size, through Sacred with a real FileStorageObserver and a tiny saved
keypointer of their own (the real actor, learner, replay and ALE environments).

One tiny training on the learned (Transporter) keypointer is made per module (`trained_agent`); the tests that need a
trained run or a work folder to resume read it, or continue from a copy of it, instead of training their own."""

import contextlib
import json
import shutil

import pandas as pd
import pytest
from sacred.observers import FileStorageObserver

from tests.conftest import eager_learner_updates, held_by_another_process
from tests.transporter.test_model import tiny_config
from transporter.keypointer import TransporterKeypointer
from transporter.model import build_transporter

# A few eager updates, and per-step inference traced once per environment and policy (tests/conftest.py eager_updates).
pytestmark = pytest.mark.usefixtures("eager_updates")


TINY_AGENT = {
    "game": "pong",
    "steps": 48,
    "learning_starts": 16,
    "update_every": 4,
    "batch_size": 2,
    "window": 4,
    "validate_every": 24,
    "validation_episodes": 1,
    "test_seeds": 2,
    "test_episodes": 1,
    "max_episode_frames": 120,  # 30 agent steps per episode: several episodes per run
    "video_steps": 10,
    "log_every": 1,
    "progress": False,
}


@pytest.fixture(scope="session")
def tiny_keypointer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keypointer")
    TransporterKeypointer(build_transporter(tiny_config())).save(folder)
    return folder


def _agent_run(root, keypointer, **changes):
    """A tiny train_agent run recorded under root/runs, its work folder `work` relative to `root` (the working directory
    during the run, as the experiments' default work folders are relative to theirs): a copy of `root` resumes."""
    from experiments import train_agent

    ex = train_agent.ex
    ex.observers[:] = [FileStorageObserver(str(root / "runs"))]
    config = {**TINY_AGENT, "keypointer": str(keypointer), "work": "work", **changes}
    with contextlib.chdir(root):
        return ex.run(config_updates=config)


@pytest.fixture(scope="session")  # not module: other modules' tests run between its tests (--dist loadgroup)
def trained_agent(tmp_path_factory, tiny_keypointer):
    """(root, run id) of one completed TINY_AGENT run (48 steps, GNN encoder) on the tiny Transporter keypointer: its
    record in root/runs/<id>, its work folder in root/work. Tests read it or copy it (`_copy_of`), never change it."""
    import keras

    root = tmp_path_factory.mktemp("trained_agent")
    with eager_learner_updates():  # set up before the test's own fixtures (eager_updates)
        run = _agent_run(root, tiny_keypointer, encoder="gnn")
    keras.mixed_precision.set_global_policy("float32")  # as float32_policy does after a test that runs an experiment
    assert run.status == "COMPLETED"
    return root, run._id


def _copy_of(trained_agent, tmp_path):
    """A copy of the trained run's root (its runs/ and work/) in tmp_path: runs continue from it there."""
    root, _ = trained_agent
    shutil.copytree(root, tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_train_agent_learns_validates_tests_and_records(trained_agent):
    root, run_id = trained_agent
    folder = root / "runs" / str(run_id)
    for name in ("learning_curve.png", "test_episode.gif", "test_scores.csv", "agent.json", "agent.weights.h5"):
        assert (folder / name).stat().st_size > 100, name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert len(metrics["validation.score"]["values"]) == 2  # at steps 24 and 48
    assert len(metrics["train.loss"]["values"]) == (48 - 16) // 4 + 1  # one update every 4 steps from step 16
    assert metrics["train.episode_return"]["values"]  # pong loses points in 30 steps: episodes ended
    table = pd.read_csv(folder / "test_scores.csv")
    assert len(table) == 2 * 2  # 2 policies x 2 seeds x 1 episode
    # The 120-frame cap (the no-op start's frames included) ends every Pong episode within 30 agent steps.
    assert table["truncated"].all() and table["steps"].between(20, 30).all()
    info = json.loads((folder / "info.json").read_text())
    assert set(info["test"]) == {"agent", "random"} and info["timing_seconds"]["learning"] > 0
    assert info["test"]["agent"]["truncated_share"] == info["test"]["random"]["truncated_share"] == 1.0
    assert json.loads((folder / "agent.json").read_text())["encoder"] == "gnn"


def test_interrupted_agent_run_resumes_where_it_stopped(trained_agent, tiny_keypointer, tmp_path):
    _, first = trained_agent
    root = _copy_of(trained_agent, tmp_path)
    assert json.loads((root / "work" / "state.json").read_text())["trainer"]["step"] == 48
    # The same command again continues from the work folder's last checkpoint, at step 48: what it does after an
    # interruption there (steps is part of the schedule, so the resumed run keeps it).
    second = _agent_run(root, tiny_keypointer, encoder="gnn")
    info = json.loads((root / "runs" / str(second._id) / "info.json").read_text())
    assert info["resumed_from_step"] == 48
    assert info["previous_runs"] == [first]  # the run it resumed, found through the work folder
    metrics = json.loads((root / "runs" / str(second._id) / "metrics.json").read_text())
    assert metrics["validation.score"]["steps"] == [24, 48]  # the earlier curve is in the resumed run's record too
    with pytest.raises(ValueError, match="other settings"):
        _agent_run(root, tiny_keypointer, encoder="gnn", learning_rate=1e-3)


def test_an_agent_work_folder_from_before_distractors_was_named_resumes_and_its_agent_is_evaluated(
    trained_agent, tiny_keypointer, tmp_path
):
    """Work folders and saved agents written when the distractors' config key was `noise` (settings.json, agent.json):
    the same command resumes the run, and evaluate_agent reads the old agent.json."""
    _, first = trained_agent
    root = _copy_of(trained_agent, tmp_path)
    for name in ("settings.json", "best/agent.json"):
        path = root / "work" / name
        saved = json.loads(path.read_text())
        path.write_text(json.dumps({("noise" if k == "distractors" else k): v for k, v in saved.items()}))
        assert json.loads(path.read_text())["noise"] == "none"
    second = _agent_run(root, tiny_keypointer, encoder="gnn")
    info = json.loads((root / "runs" / str(second._id) / "info.json").read_text())
    assert info["resumed_from_step"] == 48 and info["previous_runs"] == [first]
    with pytest.raises(ValueError, match=r"other settings \(distractors differ\)"):
        _agent_run(root, tiny_keypointer, encoder="gnn", distractors="vertical")
    from experiments import evaluate_agent

    assert "noise" in json.loads((root / "work" / "best" / "agent.json").read_text())  # still the old agent.json
    ex = evaluate_agent.ex
    ex.observers[:] = [FileStorageObserver(str(root / "test_runs"))]
    config = {"seeds": 1, "episodes": 1, "max_episode_frames": 120, "progress": False, "random_baseline": False}
    assert ex.run(config_updates={**config, "runs": [str(root / "work" / "best")]}).status == "COMPLETED"


def test_agent_work_folders_differ_for_keypointers_in_different_best_folders(tmp_path, tiny_keypointer):
    """Every keypoint-model run keeps its keypointer in a folder named `best`; the default work folders of agents on
    two of them must differ (they were both `pong-kpbest-...`, so the second was refused)."""
    import shutil

    from experiments import train_agent

    works = []
    for name in ("pong-quick-none-s0", "pong-quick-none-s1"):
        folder = tmp_path / "work" / name / "best"
        shutil.copytree(tiny_keypointer, folder)
        config = train_agent.ex.resolved_config(config_updates={"game": "pong", "keypointer": str(folder)})
        works.append(config["work"])
    assert works[0] != works[1]
    assert all(work.startswith("work/agent/pong-kppong-quick-none-s") for work in works), works


def test_a_second_agent_run_into_the_same_work_folder_is_refused(tmp_path, tiny_keypointer):
    from data.storage import FolderInUseError

    with held_by_another_process(tmp_path / "work") as pid:
        with pytest.raises(FolderInUseError, match=rf"work is in use by another process \(pid {pid}\)"):
            _agent_run(tmp_path, tiny_keypointer)


def test_train_agent_without_a_keypointer_says_what_to_pass(tmp_path):
    with pytest.raises(ValueError, match="keypointer=<run id or folder>"):
        _agent_run(tmp_path, "")


def test_evaluate_agent_runs_the_protocol_over_policies_beside_random(trained_agent, tmp_path):
    root, run_id = trained_agent
    folder = str(root / "runs" / str(run_id))
    from experiments import evaluate_agent

    ex = evaluate_agent.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "test_runs"))]
    run = ex.run(
        config_updates={
            "runs": [folder, folder],
            "seeds": 2,
            "episodes": 2,
            "max_episode_frames": 120,
            "progress": False,
        }
    )
    out = tmp_path / "test_runs" / str(run._id)
    rows = (out / "test_scores.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 2 * 2  # two policies and the random one, 2 seeds x 2 episodes
    info = json.loads((out / "info.json").read_text())["test"]
    assert info["agents"]["std"] == 0.0  # the same policy twice on the same seeds: identical greedy episodes
    assert "| random |" in (out / "test.md").read_text() and "| 100% |" in (out / "test.md").read_text()
    assert info["random"]["truncated_share"] == 1.0  # 30 agent steps of Pong never end a game
    command = f"with 'runs=[{json.dumps(folder)},{json.dumps(folder)}]' seeds=2 episodes=2 max_episode_frames=120"
    assert command in (out / "test.md").read_text()  # the recorded command repeats this evaluation


def test_the_recorded_evaluation_command_names_run_ids_bare_and_the_protocol():
    from experiments.evaluate_agent import reproducing_command

    c = {"runs": ["2", 1], "seeds": 10, "episodes": 1, "max_episode_frames": 18000}
    assert reproducing_command(c) == (
        "python -m experiments.evaluate_agent with 'runs=[2,1]' seeds=10 episodes=1 max_episode_frames=18000"
    )


def test_an_agent_on_the_oracle_trains_tests_and_records_that_it_saw_ground_truth(tmp_path):
    """keypointer=oracle: the tiny run completes on the game's ground-truth keypoints, its agent.json names the
    oracle, both runs' info.json say it was ground truth, and evaluate_agent rebuilds the oracle from agent.json."""
    run = _agent_run(tmp_path, "oracle", encoder="keyqn", steps=24, validate_every=24)
    assert run.status == "COMPLETED"
    folder = tmp_path / "runs" / str(run._id)
    assert json.loads((folder / "agent.json").read_text())["keypointer"] == "oracle"
    info = json.loads((folder / "info.json").read_text())["keypointer"]
    assert info["kind"] == "oracle" and info["ground_truth"] is True
    assert info["slots"] == ["Player", "Enemy", "Ball"]
    from experiments import evaluate_agent

    ex = evaluate_agent.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "test_runs"))]
    config = {"runs": [str(folder)], "seeds": 1, "episodes": 1, "max_episode_frames": 120, "progress": False}
    tested = ex.run(config_updates={**config, "random_baseline": False})
    info = json.loads((tmp_path / "test_runs" / str(tested._id) / "info.json").read_text())
    assert [k["ground_truth"] for k in info["keypointers"]] == [True]


def test_an_agent_on_the_motion_baseline_trains_tests_and_records_that_it_saw_the_baseline(tmp_path):
    """keypointer=motion: the tiny run completes on the training-free motion baseline's keypoints, its agent.json
    names it, its info.json says it was the motion baseline and not ground truth, and evaluate_agent rebuilds it. The
    run uses the CNN encoder: each encoder goes through train_agent and evaluate_agent once in this module (the GNN on
    the Transporter in trained_agent, the KeyQN on the oracle)."""
    run = _agent_run(tmp_path, "motion", encoder="cnn", cnn_filters=4, steps=24, validate_every=24)
    assert run.status == "COMPLETED"
    folder = tmp_path / "runs" / str(run._id)
    saved = json.loads((folder / "agent.json").read_text())
    assert saved["keypointer"] == "motion" and saved["encoder"] == "cnn"
    info = json.loads((folder / "info.json").read_text())["keypointer"]
    assert info["kind"] == "motion" and info["ground_truth"] is False and info["num_keypoints"] == 3
    from experiments import evaluate_agent

    ex = evaluate_agent.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "test_runs"))]
    config = {"runs": [str(folder)], "seeds": 1, "episodes": 1, "max_episode_frames": 120, "progress": False}
    tested = ex.run(config_updates={**config, "random_baseline": False})
    info = json.loads((tmp_path / "test_runs" / str(tested._id) / "info.json").read_text())
    assert [k["kind"] for k in info["keypointers"]] == ["motion"]
