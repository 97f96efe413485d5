"""The explore experiment end to end at a tiny size, through Sacred with a real FileStorageObserver, a tiny saved
keypointer, real ALE environments and OCAtari's ground truth."""

import json

import pandas as pd
import pytest
from sacred.observers import FileStorageObserver

from tests.test_train_agent import tiny_keypointer  # noqa: F401 (a fixture)

# A few eager updates, and per-step inference traced once per environment and policy (tests/conftest.py eager_updates).
pytestmark = pytest.mark.usefixtures("eager_updates")


TINY_EXPLORE = {
    "game": "pong",
    "units": 8,
    "keyqn_bins": 4,
    "option_steps": 5,
    "steps": 40,
    "learning_starts": 16,
    "update_every": 4,
    "batch_size": 2,
    "window": 4,
    "replay_capacity": 100,
    "checkpoint_every": 20,
    "explore_steps": 70,
    "max_episode_frames": 120,  # 30 agent steps per episode: both methods finish episodes in their budget
    "video_steps": 10,
    "log_every": 1,
    "progress": False,
}


def _explore_run(tmp_path, keypointer, **changes):
    from experiments import explore

    ex = explore.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "runs"))]
    config = {**TINY_EXPLORE, "keypointer": str(keypointer), "work": str(tmp_path / "work"), **changes}
    return ex.run(config_updates=config)


def test_explore_learns_options_compares_methods_and_records(tmp_path, tiny_keypointer):  # noqa: F811
    run = _explore_run(tmp_path, tiny_keypointer)
    assert run.status == "COMPLETED"
    folder = tmp_path / "runs" / str(run._id)
    names = ("options.png", "explore_episode.gif", "exploration_returns.csv", "exploration.md", "options.weights.h5")
    for name in names:
        assert (folder / name).stat().st_size > 100, name
    table = pd.read_csv(folder / "exploration_returns.csv")
    assert set(table["method"]) == {"random actions", "repeated random actions", "random options"}
    for _, group in table.groupby("method"):
        assert len(group) == 2 and group["steps"].sum() <= 70  # two 30-step episodes end inside each 70-step budget
    metrics = json.loads((folder / "metrics.json").read_text())
    assert len(metrics["train.loss"]["values"]) == (40 - 16) // 4 + 1  # one update every 4 steps from step 16
    assert metrics["train.option_displacement"]["values"]  # options finished and were measured
    info = json.loads((folder / "info.json").read_text())
    avatar = info["avatar"]
    assert avatar["measured"] and 0 < avatar["steps"] <= 70  # pong's player is on screen in most steps
    assert 0.0 <= avatar["most_controllable"] <= avatar["best_keypoint"] <= 1.0
    assert info["exploration"]["returns"]["random actions"]["episodes"] == 2
    assert "random options" in (folder / "exploration.md").read_text()


def test_interrupted_explore_run_resumes_and_refuses_other_settings(tmp_path, tiny_keypointer, monkeypatch):  # noqa: F811
    from training import exploration

    original = exploration.ExplorationCurves.on_update

    def stop_after_the_first_checkpoint(self, step, out):
        if step > 28:  # the checkpoint at step 20 is written; the run dies before the one at 40
            raise KeyboardInterrupt
        original(self, step, out)

    monkeypatch.setattr(exploration.ExplorationCurves, "on_update", stop_after_the_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        _explore_run(tmp_path, tiny_keypointer, explore_steps=5)
    assert json.loads((tmp_path / "work" / "state.json").read_text())["trainer"]["step"] == 20
    monkeypatch.undo()
    second = _explore_run(tmp_path, tiny_keypointer, explore_steps=5)
    info = json.loads((tmp_path / "runs" / str(second._id) / "info.json").read_text())
    assert info["resumed_from_step"] == 20 and len(info["previous_runs"]) == 1  # the interrupted run
    state = json.loads((tmp_path / "work" / "state.json").read_text())
    starts = [row[0] for row in state["curves"]["options"]]
    assert starts == sorted(starts) and max(starts) >= 20  # options after the resume count from step 20 on
    assert len(state["curves"]["loss"]) == (40 - 16) // 4 + 1  # every update logged once across both runs
    with pytest.raises(ValueError, match="other settings"):
        _explore_run(tmp_path, tiny_keypointer, explore_steps=5, lam=0.5)


def test_explore_without_a_keypointer_says_what_to_pass(tmp_path):
    with pytest.raises(ValueError, match="keypointer=<run id"):
        _explore_run(tmp_path, "")


def test_explore_runs_on_the_oracle_and_records_ground_truth(tmp_path):
    run = _explore_run(tmp_path, "oracle")
    assert run.status == "COMPLETED"
    info = json.loads((tmp_path / "runs" / str(run._id) / "info.json").read_text())
    assert info["keypointer"]["ground_truth"] is True and info["avatar"]["measured"]


def test_explore_runs_on_the_motion_baseline_and_records_it(tmp_path):
    run = _explore_run(tmp_path, "motion")
    assert run.status == "COMPLETED"
    info = json.loads((tmp_path / "runs" / str(run._id) / "info.json").read_text())
    assert info["keypointer"]["kind"] == "motion" and info["keypointer"]["ground_truth"] is False
