"""Train a keypoint agent on the 100k-interaction protocol:
`python -m experiments.train_agent with game=ms_pacman keypointer=<run id or folder> encoder=gnn [quick]`.

The recurrent double DQN of seed 002 (section 3, Appendix A.2.3; reference.md section 4) sees the game only through a
frozen keypointer (a PermaKey or Transporter run). Every `validate_every` agent steps it plays `validation_episodes`
greedy episodes on the validation seed, keeps the best policy, and checkpoints everything needed to resume (networks,
optimizer, replay, counters) in its work folder; rerunning the same command resumes. At the end the best policy meets
the test protocol (rl/evaluation.py) on unseen seeds next to the random policy on the same seeds, and the run records
its scores, learning curves (learning_curve.png), a test-episode video with the keypoints drawn (test_episode.gif),
the timing of each part of the loop, and the policy itself (agent.json + weights).

Seeds: training env = seed, validation env = 10,000 + seed, test envs = 100,000 + i (shared by every policy).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from data.atari import MAX_EPISODE_FRAMES
from data.distractors import check_mode
from data.games import get_game
from data.storage import hold_folder, write_json_atomic
from experiments.agents import AGENT_FILE, AGENT_WEIGHTS, agent_env, build_network, save_agent
from experiments.checkpointing import link_runs, load_state
from experiments.common import experiment
from experiments.keypointers import keypointer_folder, keypointer_tag, load_keypointer
from experiments.precision import detect_precision
from experiments.test_agent import TEST_SEED, score_policies
from keypoints.draw import draw_keypoints
from rl.actor import Schedule, Trainer, replay_fields
from rl.agent import Learner
from rl.envs import make_agent_env
from rl.evaluation import Policy, QPolicy, RandomPolicy, play, protocol_summary
from rl.replay import SequenceReplay

ex = experiment("train_agent")

VALIDATION_SEED = 10_000
# Config entries that do not change what is trained: a resumed run may change them.
UNTRAINED = (
    "progress",
    "test_seeds",
    "test_episodes",
    "video_steps",
    "log_every",
    "preset",
    "keypointer_name",
    "precision",  # the keypointer's compute precision: a run may resume on a machine that resolves auto otherwise
)


@ex.config
def config():
    game = "ms_pacman"
    keypointer = ""  # required: a keypoint-model run id (runs/<id>) or a keypointer folder (work/.../best)
    encoder = "gnn"  # gnn / cnn / keyqn
    cnn_filters = 128  # the paper's; the authors' code used 32
    cnn_binarise = None  # the paper multiplies by the soft masks; the authors' code binarised them at 0.2
    gnn_steps = 1  # message-passing steps of the interaction network
    keyqn_bins = 16  # thermometer bins per coordinate
    noise = "none"  # Noisy Atari distractors on every frame: none / vertical / horizontal / both
    seed = 0
    preset = "paper"
    steps = 100_000  # agent steps (400k frames)
    learning_starts = 10_000
    update_every = 4
    batch_size = 16
    window = 8
    n_step = 3
    gamma = 0.99
    learning_rate = 2e-4
    clip_norm = 10.0
    tau = 0.005
    epsilon_start = 1.0
    epsilon_end = 0.1
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
    # The frozen keypointer's compute precision: mixed_bfloat16 on GPUs and AMX/AVX512-BF16 CPUs, float32 elsewhere
    # (experiments/precision.py). The agent's own networks stay float32.
    precision = "auto"
    keypointer_name = keypointer_tag(keypointer) if keypointer else "none"  # unique per keypointer folder
    work = f"work/agent/{get_game(game).name}-kp{keypointer_name}-{encoder}-{noise}-s{seed}"


@ex.named_config
def quick():
    """The same agent and protocol, CPU-demo sized: 3,000 agent steps (learning from 1,000), validation every 1,000
    steps on 1 episode, test on 3 seeds x 1 episode, episodes capped at 4,000 frames (1,000 agent steps, under a
    minute with a PermaKey keypointer on 2 cores). The CNN encoder has the authors' code's 32 filters instead of the
    paper's 128 (an update costs 1.5 s at 128 on this CPU, `make bench-agent`)."""
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


def test_video(env, policy: QPolicy, seed: int, steps: int, path: Path) -> None:
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


def encoder_options(c: dict) -> dict[str, Any]:
    return {
        "cnn": {"filters": c["cnn_filters"], "binarise": c["cnn_binarise"]},
        "gnn": {"steps": c["gnn_steps"]},
        "keyqn": {"bins": c["keyqn_bins"]},
    }.get(c["encoder"], {})


@ex.automain
def main(_config, _run):
    c = _config
    if not c["keypointer"]:
        raise ValueError(
            "No keypointer given: the agent sees the game only through a trained keypoint model. Pass "
            "keypointer=<run id or folder> (make train-agent KP=12), e.g. a run of `make train-permakey PRESET=quick`."
        )
    check_mode(c["noise"])
    game = get_game(c["game"])
    keras.utils.set_random_seed(c["seed"])
    policy, reason = detect_precision(c["precision"])
    _run.info["precision"] = {"policy": policy, "reason": reason, "applies_to": "the frozen keypointer"}
    keypointer = load_keypointer(c["keypointer"], policy=policy)
    work = Path(c["work"])
    work.mkdir(parents=True, exist_ok=True)

    num_actions = int(make_agent_env(game.name, train=False, max_episode_frames=400).action_space.n)  # type: ignore[attr-defined]
    info = {
        "game": game.name,
        "encoder": c["encoder"],
        "encoder_options": encoder_options(c),
        "units": c["units"],
        "num_actions": num_actions,
        "keypointer": str(keypointer_folder(c["keypointer"]).resolve()),
        "noise": c["noise"],
    }
    online, target = build_network(info, keypointer), build_network(info, keypointer)
    learner = Learner(
        online,
        target,
        learning_rate=c["learning_rate"],
        clip_norm=c["clip_norm"],
        gamma=c["gamma"],
        n=c["n_step"],
        tau=c["tau"],
    )
    env = agent_env(
        game.name, keypointer, online, train=True, noise=c["noise"], max_episode_frames=c["max_episode_frames"]
    )
    validation_env = agent_env(
        game.name, keypointer, online, train=False, noise=c["noise"], max_episode_frames=c["max_episode_frames"]
    )
    replay = SequenceReplay(c["replay_capacity"], replay_fields(env.observation_space), seed=c["seed"])
    zeros = {k: tf.zeros((1, c["window"] + 1, *shape)) for k, (shape, _) in replay.fields.items()}
    learner.start(zeros)
    _run.info["replay_gigabytes"] = replay.nbytes / 1e9

    curves: dict[str, list] = {"episodes": [], "validation": [], "loss": []}
    updates = [0]

    def on_episode(step: int, episode_return: float, length: int) -> None:
        curves["episodes"].append([step, episode_return, length])
        _run.log_scalar("train.episode_return", episode_return, step)

    def on_update(step: int, out: dict[str, float]) -> None:
        updates[0] += 1
        if updates[0] % c["log_every"] == 0:
            curves["loss"].append([step, out["loss"], out["q"]])
            _run.log_scalar("train.loss", out["loss"], step)
            _run.log_scalar("train.q", out["q"], step)

    schedule = Schedule(
        c["steps"],
        c["learning_starts"],
        c["update_every"],
        c["batch_size"],
        c["window"],
        c["epsilon_start"],
        c["epsilon_end"],
    )
    trainer = Trainer(
        env, online, learner, replay, schedule, seed=c["seed"], on_episode=on_episode, on_update=on_update
    )
    checkpoint = tf.train.Checkpoint(online=online, target=target, optimizer=learner.optimizer)
    state = {"best": -np.inf, "best_step": 0}
    settings = json.loads(json.dumps({k: v for k, v in c.items() if k not in UNTRAINED}))
    with hold_folder(work):  # a second run into this work folder is refused
        saved = load_state(work, checkpoint, settings, fresh={})
        link_runs(work, _run)
        if saved:
            if not (work / "replay.npz").exists():
                raise FileNotFoundError(
                    f"{work}/state.json exists but its replay is missing; delete {work} to restart."
                )
            replay.load(work / "replay.npz")
            trainer.restore(saved["trainer"])
            curves, state = saved["curves"], saved["best"]
            _run.info["resumed_from_step"] = trainer.step
            for step, score in curves["validation"]:  # this run's record holds the whole validation curve
                _run.log_scalar("validation.score", score, step)
        manager = tf.train.CheckpointManager(checkpoint, str(work / "last"), max_to_keep=1)

        validator = QPolicy(online, epsilon=0.0)
        with tqdm(total=c["steps"], initial=trainer.step, desc="agent steps", disable=not c["progress"]) as bar:
            while trainer.step < c["steps"]:
                until = min(c["steps"], (trainer.step // c["validate_every"] + 1) * c["validate_every"])
                trainer.run(until, bar)
                # The same validation episodes every time (seed, then its stream), so checkpoints compare fairly.
                score = float(
                    np.mean(play(validation_env, validator, VALIDATION_SEED + c["seed"], c["validation_episodes"]))
                )
                curves["validation"].append([trainer.step, score])
                _run.log_scalar("validation.score", score, trainer.step)
                bar.set_postfix(validation=score, best=max(score, state["best"]))
                if score > state["best"]:
                    state = {"best": score, "best_step": trainer.step}
                    save_agent(work / "best", {**info, "step": trainer.step, "validation": score}, online)
                manager.save(checkpoint_number=trainer.step)
                replay.save(work / "replay.npz")
                write_json_atomic(work / "state.json", {"trainer": trainer.state(), "curves": curves, "best": state})
    _run.info["timing_seconds"] = trainer.timing.as_dict()
    _run.info["best_validation"] = state

    # The test protocol: the best policy and the random policy on the same unseen seeds.
    best_info = json.loads((work / "best" / AGENT_FILE).read_text())
    best = build_network(info, keypointer)
    best.load_weights(str(work / "best" / AGENT_WEIGHTS))
    test_env = agent_env(
        game.name, keypointer, best, train=False, noise=c["noise"], max_episode_frames=c["max_episode_frames"]
    )
    seeds = [TEST_SEED + i for i in range(c["test_seeds"])]
    policies: dict[str, Policy] = {"agent": QPolicy(best), "random": RandomPolicy(num_actions, seed=c["seed"])}
    plain = make_agent_env(game.name, train=False, distractors=c["noise"], max_episode_frames=c["max_episode_frames"])
    # (the random policy needs no keypoints: the same evaluation environment without the observation wrapper)
    table, scores = score_policies(
        policies, {"agent": test_env, "random": plain}, seeds, c["test_episodes"], c["progress"]
    )
    summaries = {name: protocol_summary(scores[i][None]) for i, name in enumerate(policies)}
    for name, summary in summaries.items():
        _run.log_scalar(f"test.{name}.median", summary["mean"])
    _run.info["test"] = summaries

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        table.to_csv(folder / "test_scores.csv", index=False)
        learning_curve(folder / "learning_curve.png", curves, game.name)
        test_video(test_env, QPolicy(best), seeds[0], c["video_steps"], folder / "test_episode.gif")
        for path in sorted(folder.iterdir()):
            _run.add_artifact(str(path))
    _run.add_artifact(str(work / "best" / AGENT_FILE))
    _run.add_artifact(str(work / "best" / AGENT_WEIGHTS))
    return {
        "test_agent": summaries["agent"]["mean"],
        "test_random": summaries["random"]["mean"],
        "best_validation": best_info["validation"],
        "best_step": best_info["step"],
    }
