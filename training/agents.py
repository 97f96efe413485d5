"""Agents that learn by acting on a frozen keypointer's view, assembled and trained in one place for train_agent
(a recurrent DQN) and explore (keypoint options): `build_agent` (networks, learner, environment, replay) and
`learn_resumably` (the work folder's checkpoints, replay and curves, evaluated and kept every stretch); what differs
between the two is passed in.

Saved agents: a folder holding agent.json (what to rebuild: game, encoder, keypointer folder, ...) and
agent.weights.h5 (the Q-network). A train_agent run folder is such a folder, as is its work/.../best.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import tensorflow as tf
from tqdm.auto import tqdm

from data.storage import hold_folder, write_json_atomic
from keypoints.networks import build_by_calling
from keypoints.protocol import blank_output
from rl.envs import keypoint_observation, make_agent_env
from rl.loop import Schedule, Trainer, replay_fields, train_with_validation
from rl.networks import RecurrentQNetwork
from rl.replay import SequenceReplay
from training.checkpointing import link_runs, load_state, record_settings
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
    build_by_calling(network, {k: v[:, None] for k, v in view.items()})
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


@dataclasses.dataclass
class Agent:
    """An agent built to learn by acting: its online and target networks, the learner that updates them, the
    environment it trains in (seen through the keypointer and the network's view) and its replay."""

    online: Any
    target: Any
    learner: Any
    env: gym.Env
    replay: SequenceReplay
    num_actions: int


def build_agent(
    network: Callable[[], Any],
    learner: Callable[[Any, Any], Any],
    env: Callable[[Any], gym.Env],
    *,
    num_actions: int,
    replay_capacity: int,
    window: int,
    seed: int,
) -> Agent:
    """The online and target networks from `network()` (variables created), `learner(online, target)` started on
    them, the training environment `env(online)` and an empty replay of its observations."""
    online, target = network(), network()
    started = learner(online, target)
    train_env = env(online)
    replay = SequenceReplay(replay_capacity, replay_fields(train_env.observation_space), seed=seed)
    zeros = {k: tf.zeros((1, window + 1, *shape)) for k, (shape, _) in replay.fields.items()}
    started.start(zeros)
    return Agent(online, target, started, train_env, replay, num_actions)


def acting_trainer(
    agent: Agent, schedule: Schedule, seed: int, learning: LearningCurves, policy: Any = None
) -> Trainer:
    """The loop that acts in `agent.env` with `policy` (the online network's epsilon-greedy one when None) and learns
    on `schedule`, reporting to `learning`."""
    return Trainer(
        agent.env,
        agent.online,
        agent.learner,
        agent.replay,
        schedule,
        seed=seed,
        on_episode=learning.on_episode,
        on_update=learning.on_update,
        policy=policy,
    )


@dataclasses.dataclass(frozen=True)
class Stretches:
    """What `learn_resumably` does after each stretch of `every` agent steps: `evaluate()` scores the policy, and
    `keep(step, score, bar)` (before the checkpoint) returns what state.json records besides the loop's counters and
    curves; `resumed(saved)` takes the rest of a resumed work folder's state.json. `desc` names the progress bar."""

    every: int
    evaluate: Callable[[], float]
    keep: Callable[[int, float, Any], dict[str, Any]]
    resumed: Callable[[dict[str, Any]], None]
    desc: str


def learn_resumably(
    work: Path,
    trained: dict[str, Any],
    agent: Agent,
    trainer: Trainer,
    learning: LearningCurves,
    stretches: Stretches,
    run: Any,
    progress: bool,
) -> None:
    """Trains resumably in the work folder `work` (held: a second run into it is refused): a folder whose settings.json
    matches `trained` resumes (networks, optimizer, replay, counters, curves), and after each stretch the settings,
    the checkpoint (work/last) and state.json are written."""
    checkpoint = tf.train.Checkpoint(online=agent.online, target=agent.target, optimizer=agent.learner.optimizer)
    with hold_folder(work):
        saved = load_state(work, checkpoint, trained, fresh={})
        link_runs(work, run)
        if saved:
            resume_learning(work, saved, trainer, learning, run)
            stretches.resumed(saved)
        manager = tf.train.CheckpointManager(checkpoint, str(work / "last"), max_to_keep=1)
        total = trainer.schedule.total_steps
        bar = tqdm(total=total, initial=trainer.step, desc=stretches.desc, disable=not progress)

        def keep(step: int, score: float) -> None:
            extra = stretches.keep(step, score, bar)
            record_settings(work, trained)
            manager.save(checkpoint_number=step)
            save_learning(work, trainer, learning, **extra)

        with bar:
            train_with_validation(trainer, stretches.every, stretches.evaluate, keep, bar)
