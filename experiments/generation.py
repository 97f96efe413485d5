"""Generate an Atari dataset with ground truth: `python -m experiments.generate_data with game=pong`.

Writes `datasets/<game>/` (rollouts) or `datasets/<game>_pairs/` (Transporter's diverse pairs), with the policy in the
name when it is not uniform (`datasets/ms_pacman_sticky0.1/` for `with policy=sticky`), records the run, the manifest
and a picture of frames with their ground-truth objects. Rerunning with the same settings reuses a finished
dataset and resumes an interrupted one.
"""

# The experiment lives here, not in its main (experiments/generate_data.py, which only runs it from the command line),
# so that the experiments that need a dataset run it as a run of its own (`ensure_dataset`) without importing another
# main; the docstring above is its --help.

from __future__ import annotations

import os
import tempfile

import numpy as np

from data.games import get_game
from data.generate import GenerationConfig, generate, policy_tag
from data.readers import read_episodes
from data.visualize import draw_objects, grid, save_png
from experiments.common import experiment
from training import datasets
from training.workspace import Workspace

ex = experiment("generate_data", __doc__)


@ex.config
def config():
    game = "pong"
    mode = "rollouts"  # or "diverse_pairs" (Transporter Appendix B)
    policy = "uniform"  # or "sticky": hold each random action until a coin says change (data/generate.py)
    change_probability = 1.0 if policy == "uniform" else 0.1  # sticky: chance of a new action at each agent step
    frames = 95_000  # in all splits; the PermaKey paper used 85k / 5k / 5k
    validation_frames = max(2, round(frames * 5 / 95))
    test_frames = max(2, round(frames * 5 / 95))
    seed = 0
    out = Workspace.here().dataset(game, "" if mode == "rollouts" else "pairs", policy_tag(policy, change_probability))
    workers = os.cpu_count() or 1
    shard_frames = 5000
    max_episode_frames = 108_000
    noop_max = 30
    pair_trajectory_steps = 100  # Appendix B
    pair_budget = 4.0  # candidate pairs generated per stored pair
    pair_compare = 64
    pair_replace_prob = 0.05  # Appendix B
    progress = True


@ex.named_config
def quick():
    frames = 3000
    shard_frames = 1000


def generation_config(_config: dict) -> GenerationConfig:
    c = _config
    train = c["frames"] - c["validation_frames"] - c["test_frames"]
    if train < 2:
        raise ValueError(f"frames={c['frames']} leaves no training frames after validation and test.")
    return GenerationConfig(
        game=get_game(c["game"]).name,
        mode=c["mode"],
        split_frames={"train": train, "validation": c["validation_frames"], "test": c["test_frames"]},
        seed=c["seed"],
        shard_frames=c["shard_frames"],
        max_episode_frames=c["max_episode_frames"],
        noop_max=c["noop_max"],
        pair_trajectory_steps=c["pair_trajectory_steps"],
        pair_budget=c["pair_budget"],
        pair_compare=c["pair_compare"],
        pair_replace_prob=c["pair_replace_prob"],
        policy=c["policy"],
        change_probability=c["change_probability"],
    )


def ground_truth_picture(root: str, manifest: dict, path: str, count: int = 16) -> None:
    """A grid of test frames, spread over the first test episode, with the moving objects' boxes."""
    episode = next(read_episodes(root, "test"))
    keep = np.isin(manifest["categories"], manifest["moving_categories"])
    picks = np.linspace(0, len(episode.frames) - 1, min(count, len(episode.frames))).astype(int)
    save_png(path, grid([draw_objects(episode.frames[i], episode.objects[i], keep) for i in picks], columns=4))


@ex.main
def main(_config, _run):
    manifest = generate(
        generation_config(_config), _config["out"], workers=_config["workers"], progress=_config["progress"]
    )
    for split, info in manifest["splits"].items():
        _run.log_scalar(f"{split}.frames", info["frames"])
        _run.log_scalar(f"{split}.episodes", info["episodes"])
    _run.add_artifact(os.path.join(_config["out"], "manifest.json"))
    with tempfile.TemporaryDirectory() as tmp:
        picture = os.path.join(tmp, "ground_truth.png")
        ground_truth_picture(_config["out"], manifest, picture)
        _run.add_artifact(picture)
    return {split: info["frames"] for split, info in manifest["splits"].items()}


def run_generation(config: dict) -> None:
    """A run of this experiment with `config` (training.datasets.ensure_dataset's `generate`)."""
    ex.run(config_updates=config)


def ensure_dataset(dataset: str, game: str, frames: int, seed: int, generate_missing: bool, progress: bool, **kw):
    """training.datasets.ensure_dataset, generating a missing dataset as a run of this experiment."""
    datasets.ensure_dataset(dataset, game, frames, seed, generate_missing, progress, generate=run_generation, **kw)
