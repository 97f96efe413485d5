"""Train a keypoint agent on the 100k-interaction protocol:
`python -m experiments.train_agent with game=ms_pacman keypointer=<run id or folder> encoder=gnn [quick]`.

The recurrent double DQN of the PermaKey paper (section 3, Appendix A.2.3; docs/method.md section 4) sees the game only
through a frozen keypointer (a PermaKey or Transporter run), or through the game's ground-truth objects on the same
keypoint grid (`keypointer=oracle`, keypoints/oracle.py: the ceiling; the run records `keypointer.ground_truth` in
info.json), or through the training-free motion baseline on that grid (`keypointer=motion`, keypoints/motion_agent.py:
the floor; the run records `keypointer.kind` "motion" and its `baseline`). Every `validate_every` agent steps it plays
`validation_episodes` greedy episodes on the validation seed, keeps the best policy, and checkpoints everything needed
to resume (networks, optimizer, replay, counters) in its work folder; rerunning the same command resumes. At the end the
best policy meets the test protocol (rl/evaluation.py) on unseen seeds next to the random policy on the same seeds, and
the run records its scores, learning curves (learning_curve.png), a test-episode video with the keypoints drawn
(test_episode.gif), the timing of each part of the loop, and the policy itself (agent.json + weights).

Seeds: training env = seed, validation env = 10,000 + seed, test envs = 100,000 + i (shared by every policy).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import keras
import numpy as np

from data.atari import MAX_EPISODE_FRAMES
from data.distractors import check_distractors
from data.games import Game, get_game
from experiments.common import experiment, settings_from_config
from keypoints.draw import draw_keypoints
from keypoints.protocol import Keypointer, ObjectKeypointer
from rl.actor import Policy, QPolicy, RandomPolicy
from rl.envs import make_agent_env
from rl.evaluation import play, protocol_summary
from rl.learner import PAPER_LEARNER, Learner
from rl.loop import PAPER_SCHEDULE, Schedule, Trainer
from training.agents import (
    AGENT_FILE,
    AGENT_WEIGHTS,
    Agent,
    LearningCurves,
    Stretches,
    acting_trainer,
    agent_env,
    build_agent,
    build_network,
    check_learning,
    learn_resumably,
    save_agent,
)
from training.checkpointing import CHANGEABLE_ON_RESUME, check_settings
from training.checks import check_range
from training.keypointers import describe_keypointer, keypointer_reference, keypointer_tag, load_keypointer
from training.precision import detect_precision
from training.scoring import TEST_SEED, capped, score_policies
from training.workspace import Workspace

ex = experiment("train_agent", __doc__)

VALIDATION_SEED = 10_000
AGENT_CHANGEABLE_ON_RESUME = (
    *CHANGEABLE_ON_RESUME,
    "test_seeds",
    "test_episodes",
    "video_steps",
    "preset",
    "keypointer_name",
    "precision",  # the keypointer's compute precision: a run may resume on a machine that resolves auto otherwise
)
"""What a resumed agent run may change besides CHANGEABLE_ON_RESUME: its test, video and names."""


@ex.config
def config():
    game = "ms_pacman"
    keypointer = ""  # required: a keypoint-model run id (runs/<id>), a keypointer folder, oracle or motion
    encoder = "gnn"  # gnn / cnn / keyqn
    cnn_filters = 128  # the paper's; the authors' code used 32
    cnn_binarise = None  # the paper multiplies by the soft masks; the authors' code binarised them at 0.2
    gnn_steps = 1  # message-passing steps of the interaction network
    keyqn_bins = 16  # thermometer bins per coordinate
    distractors = "none"  # Noisy Atari distractor bars on every frame: none / vertical / horizontal / both
    seed = 0
    preset = "paper"
    steps = 100_000  # agent steps (400k frames)
    # The paper's schedule and learner, written once in rl/loop.py and rl/learner.py.
    learning_starts = PAPER_SCHEDULE["learning_starts"]
    update_every = PAPER_SCHEDULE["update_every"]
    batch_size = PAPER_SCHEDULE["batch_size"]
    window = PAPER_SCHEDULE["window"]
    n_step = PAPER_LEARNER["n"]
    gamma = PAPER_LEARNER["gamma"]
    learning_rate = PAPER_LEARNER["learning_rate"]
    clip_norm = PAPER_LEARNER["clip_norm"]
    tau = PAPER_LEARNER["tau"]
    epsilon_start = PAPER_SCHEDULE["epsilon_start"]
    epsilon_end = PAPER_SCHEDULE["epsilon_end"]
    units = 128
    replay_capacity = steps
    validate_every = 10_000
    validation_episodes = 10
    test_seeds = 10
    test_episodes = 10
    max_episode_frames = MAX_EPISODE_FRAMES  # the standard 108k-frame cap, training and evaluation
    video_steps = 1500  # agent steps of the test-episode video
    log_every = 100  # updates between logged losses
    progress = True
    # The frozen keypointer's compute precision: mixed_bfloat16 on GPUs and CPUs where it measures fast, else float32
    # (training/precision.py). The agent's own networks stay float32.
    precision = "auto"
    keypointer_name = keypointer_tag(keypointer) if keypointer else "none"  # unique per keypointer folder
    # A preset other than the paper's is part of the folder's name, so that a quick and a cpu run of the same agent
    # never meet in one folder (paper runs keep the names they always had).
    preset_tag = [] if preset == "paper" else [preset]
    work = Workspace.here().work_folder(
        "agent", get_game(game).name, f"kp{keypointer_name}", encoder, distractors, *preset_tag, seed=seed
    )


@ex.named_config
def quick():
    """The same agent and protocol, CPU-demo sized: 3,000 agent steps (learning from 1,000), validation every 1,000
    steps on 1 episode, test on 3 seeds x 1 episode, episodes capped at 4,000 frames (1,000 agent steps, under a
    minute with a PermaKey keypointer on 2 cores). The CNN encoder has the authors' code's 32 filters instead of the
    paper's 128 (an update costs about 1.5 s at 128 on a 2-core CPU: `make bench-agent`, docs/benchmarks.md)."""
    preset = "quick"
    cnn_filters = 32
    steps = 3_000
    learning_starts = 1_000
    validate_every = 1_000
    validation_episodes = 1
    test_seeds = 3
    test_episodes = 1
    max_episode_frames = 4_000
    video_steps = 300


@ex.named_config
def cpu():
    """The paper's agent, learning values and 100k agent steps, with the evaluation cut to fit about half an hour of a
    2-core CPU when the keypoints cost nothing (`keypointer=oracle` or `motion`): validation every 10k steps on 3
    episodes instead of 10, the test protocol on 5 seeds x 1 episode instead of 10 x 10, and episodes capped at 18,000
    frames (5 minutes of play, the cap Machado et al. 2018 recommend) instead of 108,000: a greedy Breakout agent that
    never presses FIRE would otherwise play 27,000 idle steps per validation episode. Learned keypointers add their
    inference to every step (`make bench-agent`)."""
    preset = "cpu"
    validation_episodes = 3
    test_seeds = 5
    max_episode_frames = 18_000
    test_episodes = 1


def learning_curve(path: Path, curves: dict[str, list], game: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    episodes = np.asarray(curves["episodes"], np.float64).reshape(-1, 3)
    if len(episodes):
        window = max(1, min(50, len(episodes) // 5))
        smooth = np.convolve(episodes[:, 1], np.ones(window) / window, mode="valid")
        axes[0].plot(episodes[:, 0], episodes[:, 1], ".", alpha=0.25, markersize=3)
        axes[0].plot(episodes[window - 1 :, 0], smooth)
    axes[0].set(
        title=f"training episodes (clipped, per life), {window if len(episodes) else 0}-ep mean", xlabel="agent step"
    )
    validation = np.asarray(curves["validation"], np.float64).reshape(-1, 2)
    axes[1].plot(validation[:, 0], validation[:, 1], "o-")
    axes[1].set(title=f"{game}: validation score (greedy)", xlabel="agent step")
    losses = np.asarray(curves["loss"], np.float64).reshape(-1, 3)
    if len(losses):
        axes[2].plot(losses[:, 0], losses[:, 1], label="TD loss")
        axes[2].set_yscale("log")
        twin = axes[2].twinx()
        twin.plot(losses[:, 0], losses[:, 2], color="C1", label="mean Q")
        twin.set_ylabel("mean Q of taken actions")
    axes[2].set(title="learner", xlabel="agent step", ylabel="TD loss")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def test_video(env: gym.Env, policy: QPolicy, seed: int, steps: int, path: Path) -> None:
    """One greedy test episode (at most `steps` agent steps) with the keypoints drawn, as a GIF."""
    frames: list[np.ndarray] = []

    def keep(observation: dict, action: int) -> None:
        if len(frames) < steps:
            frames.append(draw_keypoints(observation["frame"][None], observation["keypoints"][None], scale=2)[0])
        else:
            raise StopIteration

    try:
        play(env, policy, seed, 1, on_step=keep)
    except StopIteration:
        pass
    imageio.mimsave(path, list(frames[::2]), duration=0.066, loop=0)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class AgentSettings:
    """Everything a train_agent run uses, resolved from its config once (experiments never pass the config down)."""

    game: Game
    keypointer: str
    encoder: str
    encoder_options: dict[str, Any]
    units: int
    distractors: str
    seed: int
    precision: str
    learner: dict[str, float]  # rl.learner.Learner's hyperparameters
    schedule: Schedule
    replay_capacity: int
    max_episode_frames: int
    validate_every: int
    validation_episodes: int
    test_seeds: int
    test_episodes: int
    video_steps: int
    log_every: int
    progress: bool
    work: Path
    trained: dict[str, Any]  # what is trained (work/settings.json): a resume with other values is refused

    def __post_init__(self) -> None:
        check_learning(self.schedule, self.learner, self.replay_capacity)
        check_range("n_step", self.learner["n"], 1)
        check_range("epsilon_start", self.schedule.epsilon_start, 0, 1)
        check_range("epsilon_end", self.schedule.epsilon_end, 0, 1)
        for name in ("validate_every", "validation_episodes", "test_seeds", "test_episodes", "log_every"):
            check_range(name, getattr(self, name), 1)

    @classmethod
    def from_config(cls, c: dict[str, Any]) -> AgentSettings:
        options = {
            "cnn": {"filters": c["cnn_filters"], "binarise": c["cnn_binarise"]},
            "gnn": {"steps": c["gnn_steps"]},
            "keyqn": {"bins": c["keyqn_bins"]},
        }.get(c["encoder"], {})
        schedule = Schedule(
            total_steps=c["steps"],
            learning_starts=c["learning_starts"],
            update_every=c["update_every"],
            batch_size=c["batch_size"],
            window=c["window"],
            epsilon_start=c["epsilon_start"],
            epsilon_end=c["epsilon_end"],
        )
        learner = {"learning_rate": c["learning_rate"], "clip_norm": c["clip_norm"], "gamma": c["gamma"]}
        learner.update(n=c["n_step"], tau=c["tau"])
        return settings_from_config(
            cls,
            c,
            AGENT_CHANGEABLE_ON_RESUME,
            game=get_game(c["game"]),
            keypointer=str(c["keypointer"]),
            encoder_options=options,
            learner=learner,
            schedule=schedule,
            work=Path(c["work"]),
        )


class AgentCurves(LearningCurves):
    """The run's learning curves: training episodes, TD loss and mean Q (LearningCurves), and validation scores."""

    def __init__(self, run: Any, log_every: int):
        super().__init__(run, log_every, extra=("validation",))

    def on_validation(self, step: int, score: float) -> None:
        self.curves["validation"].append([step, score])
        self.run.log_scalar("validation.score", score, step)


def build(settings: AgentSettings, keypointer: Keypointer | ObjectKeypointer) -> tuple[Agent, dict[str, Any], gym.Env]:
    """The agent (training.agents.build_agent: a recurrent Q-network and its learner), agent.json's fields and the
    validation environment."""
    game = settings.game.name
    num_actions = int(make_agent_env(game, train=False, max_episode_frames=400).action_space.n)  # type: ignore[attr-defined]
    info = {
        "game": game,
        "encoder": settings.encoder,
        "encoder_options": settings.encoder_options,
        "units": settings.units,
        "num_actions": num_actions,
        "keypointer": keypointer_reference(settings.keypointer),
        "distractors": settings.distractors,
    }
    frames = {"distractors": settings.distractors, "max_episode_frames": settings.max_episode_frames}
    agent = build_agent(
        lambda: build_network(info, keypointer),
        lambda online, target: Learner(online, target, **settings.learner),  # type: ignore[arg-type]
        lambda online: agent_env(game, keypointer, online, train=True, **frames),  # type: ignore[arg-type]
        num_actions=num_actions,
        replay_capacity=settings.replay_capacity,
        window=settings.schedule.window,
        seed=settings.seed,
    )
    validation_env = agent_env(game, keypointer, agent.online, train=False, **frames)  # type: ignore[arg-type]
    return agent, info, validation_env


def train(
    settings: AgentSettings,
    agent: Agent,
    info: dict[str, Any],
    validation_env: gym.Env,
    learning: AgentCurves,
    run: Any,
) -> tuple[Trainer, dict[str, Any]]:
    """Trains resumably in the work folder (training.agents.learn_resumably), validating every `validate_every` steps
    and keeping the best policy in best/. Returns the trainer and the best validation."""
    trainer = acting_trainer(agent, settings.schedule, settings.seed, learning)
    best = {"best": -np.inf, "best_step": 0}
    validator = QPolicy(agent.online, epsilon=0.0, seed=0)
    # The same validation episodes every time (seed, then its stream), so checkpoints compare fairly.
    seed, episodes = VALIDATION_SEED + settings.seed, settings.validation_episodes

    def resumed(saved: dict[str, Any]) -> None:
        nonlocal best
        for step, score in learning.curves["validation"]:  # this run's metrics hold the whole validation curve
            run.log_scalar("validation.score", score, step)
        best = saved["best"]

    def validate() -> float:
        return float(np.mean(play(validation_env, validator, seed, episodes)))

    def keep(step: int, score: float, bar: Any) -> dict[str, Any]:
        nonlocal best
        learning.on_validation(step, score)
        bar.set_postfix(validation=score, best=max(score, best["best"]))
        if score > best["best"]:
            best = {"best": score, "best_step": step}
            save_agent(settings.work / "best", {**info, "step": step, "validation": score}, agent.online)
        return {"best": best}

    stretches = Stretches(settings.validate_every, validate, keep, resumed, "agent steps")
    learn_resumably(settings.work, settings.trained, agent, trainer, learning, stretches, run, settings.progress)
    return trainer, best


def test_protocol(settings: AgentSettings, info: dict[str, Any], keypointer: Keypointer | ObjectKeypointer, run: Any):
    """The best policy and the random policy on the same unseen seeds (rl/evaluation.py). Returns the best policy's
    network, its test environment, the score table and the summaries."""
    best = build_network(info, keypointer)
    best.load_weights(str(settings.work / "best" / AGENT_WEIGHTS))
    frames = {"distractors": settings.distractors, "max_episode_frames": settings.max_episode_frames}
    test_env = agent_env(settings.game.name, keypointer, best, train=False, **frames)  # type: ignore[arg-type]
    seeds = [TEST_SEED + i for i in range(settings.test_seeds)]
    num_actions = info["num_actions"]
    policies: dict[str, Policy] = {
        "agent": QPolicy(best, epsilon=0.0, seed=0),
        "random": RandomPolicy(num_actions, seed=settings.seed),
    }
    # (the random policy needs no keypoints: the same evaluation environment without the observation wrapper)
    plain = make_agent_env(
        settings.game.name,
        train=False,
        distractors=settings.distractors,
        max_episode_frames=settings.max_episode_frames,
    )
    envs = {"agent": test_env, "random": plain}
    table, scores = score_policies(policies, envs, seeds, settings.test_episodes, settings.progress)
    summaries = {
        name: protocol_summary(scores[i][None]) | capped(table[table["policy"] == name])
        for i, name in enumerate(policies)
    }
    for name, summary in summaries.items():
        run.log_scalar(f"test.{name}.median", summary["mean"])
    run.info["test"] = summaries
    return best, test_env, table, summaries


@ex.automain
def main(_config, _run):
    c = _config
    if not c["keypointer"]:
        raise ValueError(
            "No keypointer given: the agent sees the game only through a trained keypoint model. Pass "
            "keypointer=<run id or folder> (make train-agent KP=12), e.g. a run of `make train-permakey PRESET=quick`, "
            "keypointer=oracle (KP=oracle) for the game's ground-truth objects, or keypointer=motion (KP=motion) for "
            "the training-free motion baseline."
        )
    check_distractors(c["distractors"])
    settings = AgentSettings.from_config(c)
    check_settings(settings.work, settings.trained)  # before the keypointer and networks load; again when training
    keras.utils.set_random_seed(settings.seed)
    policy, reason = detect_precision(settings.precision)
    _run.info["precision"] = {"policy": policy, "reason": reason, "applies_to": "the frozen keypointer"}
    keypointer = load_keypointer(settings.keypointer, policy=policy, game=settings.game.name)
    _run.info["keypointer"] = describe_keypointer(keypointer)
    settings.work.mkdir(parents=True, exist_ok=True)

    agent, info, validation_env = build(settings, keypointer)
    _run.info["replay_gigabytes"] = agent.replay.nbytes / 1e9
    learning = AgentCurves(_run, settings.log_every)
    trainer, state = train(settings, agent, info, validation_env, learning, _run)
    _run.info["timing_seconds"] = trainer.timing.as_dict()
    _run.info["best_validation"] = state

    best_info = json.loads((settings.work / "best" / AGENT_FILE).read_text())
    best, test_env, table, summaries = test_protocol(settings, info, keypointer, _run)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        table.to_csv(folder / "test_scores.csv", index=False)
        learning_curve(folder / "learning_curve.png", learning.curves, settings.game.name)
        test_video(
            test_env, QPolicy(best, epsilon=0.0, seed=0), TEST_SEED, settings.video_steps, folder / "test_episode.gif"
        )
        for path in sorted(folder.iterdir()):
            _run.add_artifact(str(path))
    _run.add_artifact(str(settings.work / "best" / AGENT_FILE))
    _run.add_artifact(str(settings.work / "best" / AGENT_WEIGHTS))
    return {
        "test_agent": summaries["agent"]["mean"],
        "test_random": summaries["random"]["mean"],
        "best_validation": best_info["validation"],
        "best_step": best_info["step"],
    }
