"""Saved agents: a folder holding agent.json (what to rebuild: game, encoder, keypointer folder, ...) and
agent.weights.h5 (the Q-network). A train_agent run folder is such a folder, as is its work/.../best.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym

from data.storage import write_json_atomic
from keypoints.protocol import blank_output
from rl.envs import keypoint_observation, make_agent_env
from rl.loop import Schedule, Trainer
from rl.networks import RecurrentQNetwork
from training.checks import check_range, current_names
from training.keypointers import keypointer_folder, load_keypointer

AGENT_FILE = "agent.json"
AGENT_WEIGHTS = "agent.weights.h5"


def check_learning(schedule: Schedule, learner: dict[str, float], replay_capacity: int) -> None:
    """Refuses an out-of-range value of the settings that train_agent and explore share, naming it and the allowed
    range, before the keypointer is loaded or anything is recorded."""
    check_range("steps", schedule.total_steps, 1)
    check_range("learning_starts", schedule.learning_starts, 0)
    check_range("update_every", schedule.update_every, 1)
    check_range("batch_size", schedule.batch_size, 1)
    check_range("window", schedule.window, 1)
    check_range("learning_rate", learner["learning_rate"], 0, above=True)
    check_range("clip_norm", learner["clip_norm"], 0, above=True)
    check_range("gamma", learner["gamma"], 0, 1)
    check_range("tau", learner["tau"], 0, 1, above=True)
    check_range("replay_capacity", replay_capacity, 1)


def agent_env(
    game: str, keypointer: Any, network: RecurrentQNetwork, *, train: bool, distractors: str, max_episode_frames: int
) -> gym.Env:
    """The environment an agent acts in: the game's agent environment seen through the keypointer and the encoder's
    frozen view (the oracle's wrapper reads the game's objects from the emulator)."""
    env = make_agent_env(game, train=train, distractors=distractors, max_episode_frames=max_episode_frames)
    return keypoint_observation(env, keypointer, network.view)


def build_network(info: dict[str, Any], keypointer: Any) -> RecurrentQNetwork:
    """A Q-network for `info` (agent.json's fields) with its variables created by one call on the keypointer's view."""
    network = RecurrentQNetwork(info["num_actions"], info["encoder"], info["units"], info["encoder_options"])
    out = blank_output(keypointer)
    view = network.view(out.coordinates, out.heatmaps, out.features)
    network({k: v[:, None] for k, v in view.items()})
    return network


def save_agent(directory: str | Path, info: dict[str, Any], network: RecurrentQNetwork) -> None:
    """agent.json and the weights, each written under a temporary name and renamed (never half-written)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        network.save_weights(os.path.join(tmp, AGENT_WEIGHTS))
        Path(tmp, AGENT_FILE).write_text(json.dumps(info, indent=2, sort_keys=True))
        os.replace(os.path.join(tmp, AGENT_WEIGHTS), directory / AGENT_WEIGHTS)
        os.replace(os.path.join(tmp, AGENT_FILE), directory / AGENT_FILE)


def load_agent(run: str | int, policy: str = "float32") -> tuple[dict[str, Any], RecurrentQNetwork, Any]:
    """(info, network, keypointer) of a saved agent, by run id or folder; the keypointer computes in Keras policy
    `policy`, the network in float32."""
    folder = keypointer_folder(run)
    if not (folder / AGENT_FILE).exists() or not (folder / AGENT_WEIGHTS).exists():
        raise FileNotFoundError(
            f"No agent at {folder}: it needs {AGENT_FILE} and {AGENT_WEIGHTS}. Pass a `make train-agent` run id or its "
            "work/agent/.../best folder."
        )
    info = current_names(json.loads((folder / AGENT_FILE).read_text()))  # an older agent's `noise` is `distractors`
    keypointer = load_keypointer(info["keypointer"], policy=policy, game=info["game"])
    network = build_network(info, keypointer)
    network.load_weights(str(folder / AGENT_WEIGHTS))
    return info, network, keypointer


class LearningCurves:
    """The curves of a run that learns by acting (logged to Sacred as they come): each finished episode's return and
    length, and every `log_every` updates the TD loss and mean Q; `curves` also holds a list per name in `extra`,
    which subclasses fill (validation scores, options)."""

    def __init__(self, run: Any, log_every: int, extra: tuple[str, ...] = ()):
        self.run, self.log_every = run, log_every
        self.curves: dict[str, list] = {"episodes": [], "loss": [], **{name: [] for name in extra}}
        self.updates = 0

    def on_episode(self, step: int, episode_return: float, length: int) -> None:
        self.curves["episodes"].append([step, episode_return, length])
        self.run.log_scalar("train.episode_return", episode_return, step)

    def on_update(self, step: int, out: dict[str, float]) -> None:
        self.updates += 1
        if self.updates % self.log_every == 0:
            self.curves["loss"].append([step, out["loss"], out["q"]])
            self.run.log_scalar("train.loss", out["loss"], step)
            self.run.log_scalar("train.q", out["q"], step)


def save_learning(work: Path, trainer: Trainer, learning: LearningCurves, **extra: Any) -> None:
    """What a resume needs besides the networks' checkpoint (the caller's): the replay, and state.json with the loop's
    counters, the curves and update count of `learning`, and `extra`; each written under a temporary name, renamed."""
    trainer.replay.save(work / "replay.npz")
    state = {"trainer": trainer.state(), "curves": learning.curves, "updates": learning.updates, **extra}
    write_json_atomic(work / "state.json", state)


def resume_learning(work: Path, saved: dict[str, Any], trainer: Trainer, learning: LearningCurves, run: Any) -> None:
    """Continues from the work folder's saved state (state.json; the checkpoint already restored): the replay, the
    loop's counters, and the curves and update count, which this run's `learning` receives whole."""
    if not (work / "replay.npz").exists():
        raise FileNotFoundError(f"{work}/state.json exists but its replay is missing; delete {work} to restart.")
    trainer.replay.load(work / "replay.npz")
    trainer.restore(saved["trainer"])
    learning.curves, learning.updates = saved["curves"], saved.get("updates", 0)
    run.info["resumed_from_step"] = trainer.step
