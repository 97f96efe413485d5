"""Generate an Atari dataset with ground truth: `python -m experiments.generate_data with game=pong`.

Writes `datasets/<game>/` (rollouts) or `datasets/<game>_pairs/` (Transporter's diverse pairs), with the policy in the
name when it is not uniform (`datasets/ms_pacman_sticky0.1/` for `with policy=sticky`), records the run, the manifest
and a picture of frames with their ground-truth objects. Rerunning with the same settings reuses a finished
dataset and resumes an interrupted one.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from data import storage
from data.games import get_game
from data.generate import (
    GenerationConfig,
    generate,
    manifest_policy,
    partial_folder,
    policy_tag,
    remove_if_only_lock,
)
from data.readers import read_episodes
from data.visualize import draw_objects, grid, save_png
from experiments.common import experiment
from experiments.workspace import Workspace

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


DATASET_WAIT_S = 6 * 3600.0
"""How long a run waits for another process generating the dataset it needs (a paper-size one takes hours)."""


def ensure_dataset(
    dataset: str,
    game: str,
    frames: int,
    seed: int,
    generate_missing: bool,
    progress: bool,
    *,
    policy: str = "uniform",
    change_probability: float = 1.0,
    wait_s: float = DATASET_WAIT_S,
    poll_s: float = 5.0,
    **overrides: int,
) -> None:
    """Runs this experiment (a run of its own under runs/) when `dataset` is missing and generation is on, with the
    random policy given; the keypoint-model and evaluation experiments call it before reading. An existing dataset
    generated with another policy is an error. `overrides` replace config values (e.g. the split sizes or shard
    size).

    When another process is generating the same dataset (the grid starts a game's keypointers at once), this waits
    for it (`wait_s` at most, looking every `poll_s`) and uses what it made: the generation's lock is taken around
    the check and the run, so there is never a second writer and never a second generation."""
    if not (Path(dataset) / storage.MANIFEST).exists() and generate_missing:
        config = {"game": game, "frames": frames, "seed": seed, "out": dataset, "shard_frames": min(5000, frames // 3)}
        config.update(policy=policy, change_probability=change_probability, progress=progress, **overrides)
        generate_unless_made(dataset, config, wait_s, poll_s)
    if (Path(dataset) / storage.MANIFEST).exists():
        check_dataset_policy(dataset, policy, change_probability)


def generate_unless_made(dataset: str, config: dict, wait_s: float, poll_s: float) -> None:
    """Runs this experiment with `config` under the lock of the dataset's generation folder, unless the dataset exists
    once the lock is taken; waits while another process holds the lock (see ensure_dataset)."""
    partial = partial_folder(dataset)
    deadline, told = time.monotonic() + wait_s, False
    while True:
        try:
            with storage.hold_folder(partial):  # generate() holds it too: a nested hold in this process passes
                if (Path(dataset) / storage.MANIFEST).exists():  # another process made it while this one waited
                    remove_if_only_lock(partial)
                else:
                    ex.run(config_updates=config)
                return
        except storage.FolderInUseError as busy:
            if time.monotonic() >= deadline:
                raise storage.FolderInUseError(
                    f"{dataset} is still being generated by another process (pid {busy.holder}) after waiting "
                    f"{wait_s / 60:.0f} min; rerun when it has finished (the dataset is then reused), or stop it.",
                    busy.holder,
                ) from None
            if not told:
                print(f"Waiting for process {busy.holder}, which generates {dataset} (at most {wait_s / 60:.0f} min)")
                told = True
            time.sleep(poll_s)


def check_dataset_policy(dataset: str, policy: str, change_probability: float) -> None:
    """Fails, naming both, when `dataset` was generated with another random policy than the one asked for."""
    made = manifest_policy(storage.read_manifest(dataset))
    if made != (policy, float(change_probability)):
        raise storage.DatasetError(
            f"{dataset} was generated with policy {made[0]} (change_probability {made[1]:g}) but the config asks for "
            f"{policy} (change_probability {change_probability:g}); point dataset= at another folder (the default "
            "names the policy) or delete this one."
        )


def picture_frames(dataset: str, game: str, count: int) -> np.ndarray:
    """`count` frames spread over the first test episode: [N, 84, 84, 3] uint8 (for pictures)."""
    episode = next(read_episodes(dataset, "test", game=game))
    picks = np.linspace(0, len(episode.frames) - 1, min(count, len(episode.frames))).astype(int)
    return episode.frames[picks]


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


if __name__ == "__main__":
    ex.run_commandline()
