"""The agent experiments end to end at a tiny size, through Sacred with a real FileStorageObserver and a tiny saved
keypointer of their own (the real actor, learner, replay and ALE environments)."""

import json

import pytest
from sacred.observers import FileStorageObserver

from tests.conftest import held_by_another_process
from tests.transporter.test_model import tiny_config
from transporter.keypointer import TransporterKeypointer
from transporter.model import build_transporter

# A few updates of small networks: eager is cheaper than tracing (tests/conftest.py eager_functions).
pytestmark = pytest.mark.usefixtures("eager_functions")


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


@pytest.fixture(scope="module")
def tiny_keypointer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keypointer")
    TransporterKeypointer(build_transporter(tiny_config())).save(folder)
    return folder


def _agent_run(tmp_path, keypointer, **changes):
    from experiments import train_agent

    ex = train_agent.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "runs"))]
    config = {**TINY_AGENT, "keypointer": str(keypointer), "work": str(tmp_path / "work"), **changes}
    return ex.run(config_updates=config)


@pytest.mark.parametrize("encoder", ["gnn", "cnn"])
def test_train_agent_learns_validates_tests_and_records(tmp_path, tiny_keypointer, encoder):
    run = _agent_run(tmp_path, tiny_keypointer, encoder=encoder, cnn_filters=4)
    assert run.status == "COMPLETED"
    folder = tmp_path / "runs" / str(run._id)
    for name in ("learning_curve.png", "test_episode.gif", "test_scores.csv", "agent.json", "agent.weights.h5"):
        assert (folder / name).stat().st_size > 100, name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert len(metrics["validation.score"]["values"]) == 2  # at steps 24 and 48
    assert len(metrics["train.loss"]["values"]) == (48 - 16) // 4 + 1  # one update every 4 steps from step 16
    assert metrics["train.episode_return"]["values"]  # pong loses points in 30 steps: episodes ended
    rows = (folder / "test_scores.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2  # header + 2 policies x 2 seeds x 1 episode
    info = json.loads((folder / "info.json").read_text())
    assert set(info["test"]) == {"agent", "random"} and info["timing_seconds"]["learning"] > 0


def test_interrupted_agent_run_resumes_where_it_stopped(tmp_path, tiny_keypointer):
    first = _agent_run(tmp_path, tiny_keypointer, steps=24, validate_every=24)
    assert first.status == "COMPLETED"
    state = json.loads((tmp_path / "work" / "state.json").read_text())
    assert state["trainer"]["step"] == 24
    # A longer run with the same training settings continues from step 24 (steps is part of the schedule, so the
    # resumed run keeps it: this rerun is the same command after an interruption at step 24).
    second = _agent_run(tmp_path, tiny_keypointer, steps=24, validate_every=24)
    info = json.loads((tmp_path / "runs" / str(second._id) / "info.json").read_text())
    assert info["resumed_from_step"] == 24
    assert info["previous_runs"] == [first._id]  # the run it resumed, found through the work folder
    metrics = json.loads((tmp_path / "runs" / str(second._id) / "metrics.json").read_text())
    assert metrics["validation.score"]["steps"] == [24]  # the earlier curve is in the resumed run's record too
    with pytest.raises(ValueError, match="other settings"):
        _agent_run(tmp_path, tiny_keypointer, steps=24, validate_every=24, learning_rate=1e-3)


def test_an_agent_work_folder_from_before_distractors_was_named_resumes_and_its_agent_is_evaluated(
    tmp_path, tiny_keypointer
):
    """Work folders and saved agents written when the distractors' config key was `noise` (settings.json, agent.json):
    the same command resumes the run, and evaluate_agent reads the old agent.json."""
    first = _agent_run(tmp_path, tiny_keypointer, steps=24, validate_every=24)
    for name in ("settings.json", "best/agent.json"):
        path = tmp_path / "work" / name
        saved = json.loads(path.read_text())
        path.write_text(json.dumps({("noise" if k == "distractors" else k): v for k, v in saved.items()}))
        assert json.loads(path.read_text())["noise"] == "none"
    second = _agent_run(tmp_path, tiny_keypointer, steps=24, validate_every=24)
    info = json.loads((tmp_path / "runs" / str(second._id) / "info.json").read_text())
    assert info["resumed_from_step"] == 24 and info["previous_runs"] == [first._id]
    with pytest.raises(ValueError, match=r"other settings \(distractors differ\)"):
        _agent_run(tmp_path, tiny_keypointer, steps=24, validate_every=24, distractors="vertical")
    from experiments import evaluate_agent

    assert "noise" in json.loads((tmp_path / "work" / "best" / "agent.json").read_text())  # still the old agent.json
    ex = evaluate_agent.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "test_runs"))]
    config = {"seeds": 1, "episodes": 1, "max_episode_frames": 120, "progress": False, "random_baseline": False}
    assert ex.run(config_updates={**config, "runs": [str(tmp_path / "work" / "best")]}).status == "COMPLETED"


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


def test_evaluate_agent_runs_the_protocol_over_policies_beside_random(tmp_path, tiny_keypointer):
    trained = _agent_run(tmp_path, tiny_keypointer, steps=24, validate_every=24)
    folder = str(tmp_path / "runs" / str(trained._id))
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
    assert "| random |" in (out / "test.md").read_text()


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
    names it, its info.json says it was the motion baseline and not ground truth, and evaluate_agent rebuilds it."""
    run = _agent_run(tmp_path, "motion", encoder="gnn", steps=24, validate_every=24)
    assert run.status == "COMPLETED"
    folder = tmp_path / "runs" / str(run._id)
    assert json.loads((folder / "agent.json").read_text())["keypointer"] == "motion"
    info = json.loads((folder / "info.json").read_text())["keypointer"]
    assert info["kind"] == "motion" and info["ground_truth"] is False and info["num_keypoints"] == 3
    from experiments import evaluate_agent

    ex = evaluate_agent.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "test_runs"))]
    config = {"runs": [str(folder)], "seeds": 1, "episodes": 1, "max_episode_frames": 120, "progress": False}
    tested = ex.run(config_updates={**config, "random_baseline": False})
    info = json.loads((tmp_path / "test_runs" / str(tested._id) / "info.json").read_text())
    assert [k["kind"] for k in info["keypointers"]] == ["motion"]
