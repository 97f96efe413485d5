"""Keypoint options for exploration: `python -m experiments.explore with game=ms_pacman keypointer=<run or folder>
[quick]` (`make explore GAME=ms_pacman [KP=...] [PRESET=quick]`).

Transporter's sections 3.2.2 and 4.2.2 (docs/method.md section 2.9; rl/options.py has the method): K x 4 Q functions
learn, without any game reward, to move each keypoint of a frozen keypointer left, right, up and down; then random
exploration in option space with the most controllable keypoint (equation 2) is compared with random actions at the same
frame budget, by the game's episodic return. The paper learns Transporter and the options together on 128 actors and 4
GPUs for billions of frames; here the keypointer is pre-trained and frozen, and the default sizes are ours (the paper
gives only T = 20, the LSTM of 256 and the epsilon range).

The run records the options' intrinsic returns over training (how far each option moved its keypoint), equation 2's
choice over time, the return table of the exploration methods on the same seed and budget (mean, std, percentiles,
as figure 7; beside random actions, a random action held for T steps: the control for the options' commitment),
where the game's ground truth has a player how often the chosen keypoint lies within epsilon of it, and a GIF of
option exploration with the chosen keypoint ringed. Training checkpoints in its work folder (networks, optimizer,
replay, counters, curves); rerunning the same command resumes.

Seeds: training env = seed; every exploration method starts from env seed 20,000 + seed.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from data.atari import MAX_EPISODE_FRAMES
from data.distractors import check_distractors
from data.games import Game, get_game
from experiments.common import experiment, settings_from_config
from keypoints.networks import build_by_calling
from keypoints.protocol import Keypointer, ObjectKeypointer, blank_output
from rl.actor import Policy, RandomPolicy
from rl.envs import keypoint_observation, make_agent_env
from rl.evaluation import play_budget
from rl.learner import PAPER_LEARNER
from rl.loop import Schedule, Trainer
from rl.options import OptionLearner, OptionPolicy, OptionQNetwork, RepeatedActionPolicy
from training.agents import Agent, Stretches, acting_trainer, build_agent, check_learning, learn_resumably
from training.checkpointing import CHANGEABLE_ON_RESUME, check_settings
from training.checks import check_range
from training.exploration import AvatarCheck, ExplorationCurves, ringed_frame, write_outputs
from training.keypointers import describe_keypointer, keypointer_tag, load_keypointer
from training.precision import detect_precision
from training.workspace import Workspace

ex = experiment("explore", __doc__)

EXPLORE_SEED = 20_000
METHODS = ("random actions", "repeated random actions", "random options")
EXPLORE_CHANGEABLE_ON_RESUME = (
    *CHANGEABLE_ON_RESUME,
    "explore_steps",
    "video_steps",
    "preset",
    "keypointer_name",
    "precision",
)
"""What a resumed explore run may change besides CHANGEABLE_ON_RESUME: the exploration after training, its video,
names and the keypointer's compute precision."""


@ex.config
def config():
    game = "ms_pacman"
    keypointer = ""  # required: a keypoint-model run id (runs/<id>), a keypointer folder, oracle or motion
    encoder = "keyqn"  # keyqn (Transporter's KeyQN inputs) or gnn; the options need the keypoints' coordinates
    keyqn_bins = 16
    gnn_steps = 1
    units = 256  # the paper's LSTM
    option_steps = 20  # T: steps an option is followed before the next draw (the paper's)
    epsilon_range = [1e-4, 0.4]  # each option's epsilon, log-uniform (the paper's)
    distractors = "none"  # Noisy Atari distractor bars: none / vertical / horizontal / both
    seed = 0
    preset = "paper"
    steps = 1_000_000  # agent steps of option learning (the paper: billions of frames on 128 actors)
    learning_starts = 10_000
    update_every = 4
    batch_size = 16
    window = 10  # transitions per replay window: the n of n-step Q(lambda)
    lam = 0.8
    gamma = 0.95  # a horizon near T; the paper does not say
    learning_rate = PAPER_LEARNER["learning_rate"]  # the agent's learner (rl/learner.py)
    clip_norm = PAPER_LEARNER["clip_norm"]
    tau = PAPER_LEARNER["tau"]
    replay_capacity = 100_000
    checkpoint_every = 25_000
    explore_steps = 250_000  # agent steps (x4 frames) of each exploration method
    max_episode_frames = MAX_EPISODE_FRAMES
    video_steps = 600
    log_every = 100
    progress = True
    precision = "auto"  # the frozen keypointer's (training/precision.py); the options network stays float32
    keypointer_name = keypointer_tag(keypointer) if keypointer else "none"
    work = Workspace.here().work_folder(
        "explore", get_game(game).name, f"kp{keypointer_name}", encoder, distractors, seed=seed
    )


@ex.named_config
def quick():
    """CPU-sized: 30,000 agent steps of option learning (learning from 2,000), checkpoints every 5,000, 10,000 agent
    steps (40k frames) per exploration method, a 128-unit LSTM. Wall times and results with a quick PermaKey
    keypointer on 2 cores: docs/exploration_quick.md."""
    preset = "quick"
    units = 128
    steps = 30_000
    learning_starts = 2_000
    replay_capacity = 30_000
    checkpoint_every = 5_000
    explore_steps = 10_000
    video_steps = 300


@dataclasses.dataclass(frozen=True)
class ExploreSettings:
    """Everything an explore run uses, resolved from its config once."""

    game: Game
    keypointer: str
    encoder: str
    encoder_options: dict[str, Any]
    units: int
    option_steps: int
    epsilon_range: tuple[float, float]
    distractors: str
    seed: int
    precision: str
    learner: dict[str, float]
    schedule: Schedule
    replay_capacity: int
    checkpoint_every: int
    explore_steps: int
    max_episode_frames: int
    video_steps: int
    log_every: int
    progress: bool
    work: Path
    trained: dict[str, Any]

    def __post_init__(self) -> None:
        check_learning(self.schedule, self.learner, self.replay_capacity)
        check_range("lam", self.learner["lam"], 0, 1)
        low, high = self.epsilon_range
        check_range("epsilon_range[0]", low, 0, 1, above=True)  # drawn log-uniform: above 0
        check_range("epsilon_range[1]", high, low, 1)
        for name in ("option_steps", "checkpoint_every", "explore_steps", "log_every"):
            check_range(name, getattr(self, name), 1)

    @classmethod
    def from_config(cls, c: dict[str, Any]) -> ExploreSettings:
        options = {"gnn": {"steps": c["gnn_steps"]}, "keyqn": {"bins": c["keyqn_bins"]}}.get(c["encoder"], {})
        schedule = Schedule(
            total_steps=c["steps"],
            learning_starts=c["learning_starts"],
            update_every=c["update_every"],
            batch_size=c["batch_size"],
            window=c["window"],
            epsilon_start=0.0,  # unused: each option draws its own epsilon
            epsilon_end=0.0,
        )
        learner = {k: c[k] for k in ("learning_rate", "clip_norm", "gamma", "lam", "tau")}
        low, high = (float(v) for v in c["epsilon_range"])
        return settings_from_config(
            cls,
            c,
            EXPLORE_CHANGEABLE_ON_RESUME,
            game=get_game(c["game"]),
            keypointer=str(c["keypointer"]),
            encoder_options=options,
            epsilon_range=(low, high),
            distractors=check_distractors(c["distractors"]),
            learner=learner,
            schedule=schedule,
            work=Path(c["work"]),
        )


def options_network(
    settings: ExploreSettings, keypointer: Keypointer | ObjectKeypointer, num_actions: int
) -> OptionQNetwork:
    """An OptionQNetwork with its variables created by one call on the keypointer's view."""
    network = OptionQNetwork(
        keypointer.num_keypoints, num_actions, settings.encoder, settings.units, settings.encoder_options
    )
    out = blank_output(keypointer)
    view = network.view(out.coordinates, out.heatmaps, out.features)
    build_by_calling(network, {k: v[:, None] for k, v in view.items()})
    return network


def game_env(settings: ExploreSettings) -> gym.Env:
    """Whole games with their real scores (the evaluation environment: no life-loss ends, no clipping): the options
    learn from intrinsic rewards only, and the exploration is scored by the game."""
    return make_agent_env(
        settings.game.name,
        train=False,
        distractors=settings.distractors,
        max_episode_frames=settings.max_episode_frames,
    )


def build_explorer(settings: ExploreSettings, keypointer: Keypointer | ObjectKeypointer) -> Agent:
    """The option learner (training.agents.build_agent: an OptionQNetwork and its Q(lambda) learner) in whole games."""
    num_actions = int(game_env(settings).action_space.n)  # type: ignore[attr-defined]
    return build_agent(
        lambda: options_network(settings, keypointer, num_actions),
        lambda online, target: OptionLearner(online, target, **settings.learner),  # type: ignore[arg-type]
        lambda online: keypoint_observation(game_env(settings), keypointer, online.view),
        num_actions=num_actions,
        replay_capacity=settings.replay_capacity,
        window=settings.schedule.window,
        seed=settings.seed,
    )


def train_options(settings: ExploreSettings, explorer: Agent, learning: ExplorationCurves, run: Any) -> Trainer:
    """Learns the options resumably in the work folder (training.agents.learn_resumably), checkpointing every
    `checkpoint_every` steps."""
    behaviour = OptionPolicy(explorer.online, settings.option_steps, settings.seed, "train", settings.epsilon_range)
    trainer = acting_trainer(explorer, settings.schedule, settings.seed, learning, policy=behaviour)

    def resumed(saved: dict[str, Any]) -> None:
        behaviour.steps = trainer.step  # options started after the resume count their start from here

    def summary() -> float:  # the stretch's options: how far they moved their keypoints
        return learning.take_options(behaviour.finished)

    def keep(step: int, moved: float, bar: Any) -> dict[str, Any]:
        bar.set_postfix(moved=moved)
        return {}

    stretches = Stretches(settings.checkpoint_every, summary, keep, resumed, "option steps")
    learn_resumably(settings.work, settings.trained, explorer, trainer, learning, stretches, run, settings.progress)
    return trainer


def explore(
    settings: ExploreSettings, explorer: Agent, keypointer: Keypointer | ObjectKeypointer
) -> tuple[pd.DataFrame, dict[str, Any], list[Any], list[np.ndarray]]:
    """The exploration methods (METHODS) for `explore_steps` agent steps each from the same env seed: random actions
    and a random action held for T steps (no keypointer), and random options of the most controllable keypoint
    (greedy within each option). Returns the episodes table, the avatar check, the options the explorer took and its
    first `video_steps` frames with the most controllable keypoint ringed."""
    seed, steps, num_actions = EXPLORE_SEED + settings.seed, settings.explore_steps, explorer.num_actions
    baselines: dict[str, Policy] = {
        METHODS[0]: RandomPolicy(num_actions, seed),
        METHODS[1]: RepeatedActionPolicy(num_actions, settings.option_steps, seed + 1),
    }
    rows = []
    with tqdm(total=len(METHODS) * steps, desc="exploration", disable=not settings.progress) as bar:
        for method, baseline in baselines.items():
            episodes = play_budget(game_env(settings), baseline, seed, steps, progress=bar)
            rows += [(method, i, r, n) for i, (r, n) in enumerate(episodes)]
        env = keypoint_observation(game_env(settings), keypointer, explorer.online.view)
        policy = OptionPolicy(explorer.online, settings.option_steps, seed, mode="explore")
        avatar = AvatarCheck(settings.game, env, keypointer)
        frames: list[np.ndarray] = []

        def check(observation: dict, action: int) -> None:
            avatar.on_step(observation["keypoints"], policy.most_controllable)
            if len(frames) < settings.video_steps:
                frames.append(ringed_frame(observation, policy.most_controllable))

        episodes = play_budget(env, policy, seed, steps, on_step=check, on_reset=avatar.reset, progress=bar)
        rows += [(METHODS[2], i, r, n) for i, (r, n) in enumerate(episodes)]
    table = pd.DataFrame(rows, columns=["method", "episode", "return", "steps"])
    return table, avatar.summary(), policy.finished, frames


@ex.automain
def main(_config, _run):
    c = _config
    if not c["keypointer"]:
        raise ValueError(
            "No keypointer given: the options move a trained keypointer's keypoints. Pass keypointer=<run id or "
            "folder> (make explore KP=12), e.g. a run of `make train-permakey GAME=ms_pacman PRESET=quick`."
        )
    settings = ExploreSettings.from_config(c)
    check_settings(settings.work, settings.trained)  # before the keypointer and networks load; again when training
    keras.utils.set_random_seed(settings.seed)
    policy, reason = detect_precision(settings.precision)
    _run.info["precision"] = {"policy": policy, "reason": reason, "applies_to": "the frozen keypointer"}
    keypointer = load_keypointer(settings.keypointer, policy=policy, game=settings.game.name)
    _run.info["keypointer"] = describe_keypointer(keypointer)
    settings.work.mkdir(parents=True, exist_ok=True)
    explorer = build_explorer(settings, keypointer)
    learning = ExplorationCurves(_run, settings.log_every)
    trainer = train_options(settings, explorer, learning, _run)
    _run.info["timing_seconds"] = trainer.timing.as_dict()
    table, avatar, taken, frames = explore(settings, explorer, keypointer)
    _run.info["avatar"] = avatar
    with tempfile.TemporaryDirectory() as tmp:
        summary = write_outputs(
            Path(tmp), settings, explorer, keypointer, learning, table, avatar, taken, frames, METHODS
        )
        for path in sorted(Path(tmp).iterdir()):
            _run.add_artifact(str(path))
    _run.info["exploration"] = summary
    return summary
