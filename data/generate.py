"""Seeded random-policy data generation with ground truth, in parallel, written atomically.

Two modes:
- `rollouts`: whole random-policy episodes (PermaKey trains on frames of agent rollouts, Gopalakrishnan et al.,
  ICLR 2021, Appendix A.2.1; the Atari Model Zoo agents are not reachable, so a random policy stands in).
- `diverse_pairs`: Transporter's diverse pair generation (Transporter paper, Appendix B): random trajectories of up to
  100 agent steps; one frame sampled from the first half and one from the second; a buffer filled unconditionally, then,
  until the candidate budget is spent, rounds that compare sampled buffer pairs with as many new pairs by
  nearest-neighbour L2 distance on 64x64 grey copies, keeping the more novel one, or the new one with probability 0.05.
  Each shard keeps its own buffer (the paper had one global buffer), so shards are independent jobs and the result does
  not depend on the number of processes. A stored pair is an "episode" of two records whose `step` fields are the true
  time indices.

Record convention (one record per observation): `reward` is the reward of the transition into this frame (0 at
reset), `action` the action taken in this frame (-1 on an episode's last frame), `terminated`/`truncated` mark the
last frame.

Two random policies (`policy`), in both modes:
- `uniform`: a new uniformly random action every agent step (the default, and what a manifest without a policy means).
- `sticky`: each agent step, with probability `change_probability` a new uniformly random action, else the previous
  one again; an episode's first action is uniform. This is the policy's own choice, not ALE's sticky actions
  (repeat_action_probability), which stay off in both. Held actions carry the avatar across the screen, as the trained
  agents' rollouts of the PermaKey paper do, where a uniform policy jitters in place (docs/data_coverage.md).

The work is cut into shards of at most `shard_frames` frames; every shard has its own seed derived from the run seed,
its split and its index, so the dataset is a function of the config alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from data import storage
from data.atari import FRAME_SHAPE, NATIVE_SHAPE, GroundTruth, Objects, make_env, ram_of
from data.games import get_game

GENERATION_MODES = ("rollouts", "diverse_pairs")
"""What a dataset holds (config `mode`, `make data MODE=`): whole episodes, or Transporter's diverse frame pairs."""
POLICIES = ("uniform", "sticky")
LEGACY_GENERATOR = {"policy": "uniform", "change_probability": 1.0}
"""Generator settings added after datasets were made without them: a manifest that lacks one means this value."""
_EPISODES_PER_SHARD = 100_000
"""Episode ids are shard_number * this + index within the shard."""


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    game: str
    mode: str
    split_frames: dict[str, int]
    """Frames per split, e.g. {"train": 85000, "validation": 5000, "test": 5000}."""
    seed: int
    shard_frames: int
    max_episode_frames: int
    noop_max: int
    pair_trajectory_steps: int
    """diverse_pairs: maximum trajectory length in agent steps (100 in Appendix B)."""
    pair_budget: float
    """diverse_pairs: candidate pairs generated per stored pair."""
    pair_compare: int
    """diverse_pairs: buffer pairs compared with new pairs per replacement round."""
    pair_replace_prob: float
    """diverse_pairs: probability of replacing regardless of novelty (0.05 in Appendix B)."""
    policy: str = "uniform"
    """The random policy: `uniform` or `sticky` (see the module docstring)."""
    change_probability: float = 1.0
    """sticky: probability of drawing a new action at an agent step, in (0, 1]; uniform: 1 (every step)."""

    def __post_init__(self) -> None:
        get_game(self.game)
        if self.mode not in GENERATION_MODES:
            raise ValueError(f"Unknown generation mode {self.mode!r}; choose one of {GENERATION_MODES}.")
        check_policy(self.policy, self.change_probability)
        unknown = set(self.split_frames) - set(storage.SPLITS)
        if unknown:
            raise ValueError(f"Unknown splits {sorted(unknown)}; splits are {storage.SPLITS}.")
        if any(n < 2 for n in self.split_frames.values()):
            raise ValueError(f"Every split needs at least 2 frames, got {self.split_frames}.")
        if self.shard_frames < 2:
            raise ValueError(f"shard_frames must be >= 2, got {self.shard_frames}.")


def rollouts_config(
    game: str, split_frames: dict[str, int], seed: int, shard_frames: int, policy: str = "uniform", p: float = 1.0
) -> GenerationConfig:
    """A rollouts config with the episode settings of the data pipeline (108k-frame cap, up to 30 no-ops); the pair
    settings, unused by rollouts, at Appendix B's values."""
    return GenerationConfig(
        game=game,
        mode="rollouts",
        split_frames=split_frames,
        seed=seed,
        shard_frames=shard_frames,
        max_episode_frames=108_000,
        noop_max=30,
        pair_trajectory_steps=100,
        pair_budget=1.0,
        pair_compare=64,
        pair_replace_prob=0.05,
        policy=policy,
        change_probability=p,
    )


@dataclasses.dataclass(frozen=True)
class _Job:
    split: str
    index: int
    """Index of the shard within its split."""
    number: int
    """Index of the shard within the whole dataset, which makes its episode ids unique."""
    frames: int


def check_policy(policy: str, change_probability: float) -> None:
    """Fails naming the allowed values unless `policy` is one of POLICIES with a change probability it accepts."""
    if policy not in POLICIES:
        raise ValueError(f"Unknown policy {policy!r}; choose one of {POLICIES} (e.g. policy=sticky).")
    p = change_probability
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 < p <= 1.0:
        raise ValueError(f"change_probability must be a number in (0, 1], got {p!r} (e.g. change_probability=0.1).")
    if policy == "uniform" and p != 1.0:
        raise ValueError(
            f"policy 'uniform' draws a new action every step (change_probability 1), got change_probability={p!r}; "
            "use policy=sticky to hold actions."
        )


def parse_policy(spec: str) -> tuple[str, float]:
    """`uniform`, `sticky` (p = 0.1) or `sticky:<p>` as (policy, change probability), checked."""
    name, _, value = spec.strip().partition(":")
    try:
        p = float(value) if value else (1.0 if name == "uniform" else 0.1)
    except ValueError:
        raise ValueError(f"Policy {spec!r}: {value!r} is not a number; write e.g. sticky:0.1.") from None
    check_policy(name, p)
    return name, p


def policy_tag(policy: str, change_probability: float) -> str:
    """The policy in a folder name: '' for uniform (the datasets made before policies existed), e.g. 'sticky0.1'."""
    check_policy(policy, change_probability)
    return "" if policy == "uniform" else f"{policy}{change_probability:g}"


def manifest_policy(manifest: dict[str, Any]) -> tuple[str, float]:
    """The (policy, change probability) a dataset was generated with; `uniform` for a manifest older than policies."""
    generator = {**LEGACY_GENERATOR, **manifest.get("generator", {})}
    return generator["policy"], float(generator["change_probability"])


def plan_jobs(config: GenerationConfig) -> list[_Job]:
    jobs: list[_Job] = []
    for split in storage.SPLITS:
        total = config.split_frames.get(split, 0)
        num_shards = -(-total // config.shard_frames)
        for index in range(num_shards):
            frames = min(config.shard_frames, total - index * config.shard_frames)
            if config.mode == "diverse_pairs":
                frames -= frames % 2
            if frames > 0:
                jobs.append(_Job(split, index, len(jobs), frames))
    return jobs


def _job_rng(config: GenerationConfig, job: _Job) -> np.random.Generator:
    split_id = storage.SPLITS.index(job.split)
    return np.random.default_rng(np.random.SeedSequence([config.seed, split_id, job.index]))


class StickyActions:
    """A random policy over `num_actions` actions that draws a new uniform action with probability
    `change_probability` at each step and otherwise repeats its last one; the first action after `reset` is uniform.
    With probability 1 it is the uniform policy and draws exactly what it does: one integer per step, no coin."""

    def __init__(self, num_actions: int, change_probability: float, rng: np.random.Generator):
        self.num_actions = num_actions
        self.change_probability = change_probability
        self.rng = rng
        self.previous: int | None = None

    def reset(self) -> None:
        self.previous = None

    def __call__(self) -> int:
        hold = self.previous is not None and self.change_probability < 1.0
        if not (hold and self.rng.random() >= self.change_probability):
            self.previous = int(self.rng.integers(self.num_actions))
        assert self.previous is not None
        return self.previous


class _Recorder:
    """Samples the config's random policy in one environment and reports frames with their ground truth."""

    def __init__(self, config: GenerationConfig, rng: np.random.Generator):
        game = get_game(config.game)
        self.env = make_env(game, max_episode_frames=config.max_episode_frames, noop_max=config.noop_max)
        self.ground_truth = GroundTruth(game)
        self.rng = rng
        self.num_actions = int(self.env.action_space.n)  # type: ignore[attr-defined]
        self.random_action = StickyActions(self.num_actions, config.change_probability, rng)

    def reset(self) -> tuple[np.ndarray, Objects]:
        frame, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
        self.ground_truth.reset()
        self.random_action.reset()
        return frame, self.ground_truth.detect(ram_of(self.env))

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, Objects]:
        frame, reward, terminated, truncated, _ = self.env.step(action)
        return frame, float(reward), terminated, truncated, self.ground_truth.detect(ram_of(self.env))


@dataclasses.dataclass
class _Record:
    frame: np.ndarray
    objects: Objects
    action: int
    reward: float
    terminated: bool
    truncated: bool
    step: int

    def encode(self, episode: int) -> bytes:
        return storage.encode_step(
            self.frame,
            self.action,
            self.reward,
            self.terminated,
            self.truncated,
            episode,
            self.step,
            self.objects.categories,
            self.objects.boxes,
        )


def _rollout_records(recorder: _Recorder, frames: int, report: Callable[[int], None]) -> list[list[_Record]]:
    """Whole episodes, the last one cut (truncated) when the frame budget is reached."""
    episodes: list[list[_Record]] = []
    count = 0
    while count < frames:
        frame, objects = recorder.reset()
        reward, terminated, truncated = 0.0, False, False
        episode: list[_Record] = []
        while True:
            last = terminated or truncated or count + 1 == frames
            action = -1 if last else recorder.random_action()
            episode.append(_Record(frame, objects, action, reward, terminated, truncated or last, len(episode)))
            count += 1
            report(1)
            if last:
                break
            frame, reward, terminated, truncated, objects = recorder.step(action)
        episodes.append(episode)
    return episodes


def _trajectory_pair(recorder: _Recorder, state: dict[str, Any], steps: int) -> tuple[_Record, _Record]:
    """One pair from a random trajectory of up to `steps` agent steps that continues the running episode."""
    if state.get("frame") is None:
        state["frame"], state["objects"] = recorder.reset()
    trajectory = [_Record(state["frame"], state["objects"], -1, 0.0, False, False, 0)]
    for t in range(steps):
        action = recorder.random_action()
        trajectory[-1].action = action
        frame, reward, terminated, truncated, objects = recorder.step(action)
        trajectory.append(_Record(frame, objects, -1, reward, terminated, truncated, t + 1))
        if terminated or truncated:
            state["frame"] = None
            break
    else:
        state["frame"], state["objects"] = trajectory[-1].frame, trajectory[-1].objects
    half = len(trajectory) // 2
    first = trajectory[int(recorder.rng.integers(max(half, 1)))]
    second = trajectory[half + int(recorder.rng.integers(len(trajectory) - half))]
    return dataclasses.replace(first), dataclasses.replace(second, truncated=True)


def pair_descriptor(frames: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The novelty descriptor of Appendix B: both frames as 64x64 grey copies, concatenated, in [0, 1]."""
    grey = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (64, 64), interpolation=cv2.INTER_AREA) for f in frames]
    return np.concatenate([g.ravel() for g in grey]).astype(np.float32) / 255.0


def nearest_distances(queries: np.ndarray, buffer: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Squared L2 distance from each query to its nearest buffer row; `exclude[i]` is a row query i may not match."""
    d = (queries**2).sum(1)[:, None] + (buffer**2).sum(1)[None, :] - 2.0 * queries @ buffer.T
    if exclude is not None:
        d[np.arange(len(queries)), exclude] = np.inf
    return np.maximum(d.min(axis=1), 0.0)


def _diverse_pair_records(
    recorder: _Recorder, config: GenerationConfig, frames: int, report: Callable[[int], None]
) -> list[list[_Record]]:
    size = frames // 2
    budget = max(int(config.pair_budget * size), size)
    state: dict[str, Any] = {}
    pairs = []
    for _ in range(size):
        pairs.append(_trajectory_pair(recorder, state, config.pair_trajectory_steps))
        report(1)
    descriptors = np.stack([pair_descriptor((a.frame, b.frame)) for a, b in pairs])
    generated = size
    while generated < budget and size > 1:
        m = min(config.pair_compare, budget - generated, size)
        old = recorder.rng.choice(size, m, replace=False)
        new = [_trajectory_pair(recorder, state, config.pair_trajectory_steps) for _ in range(m)]
        new_desc = np.stack([pair_descriptor((a.frame, b.frame)) for a, b in new])
        old_dist = nearest_distances(descriptors[old], descriptors, exclude=old)
        new_dist = nearest_distances(new_desc, descriptors)
        replace = (new_dist > old_dist) | (recorder.rng.random(m) < config.pair_replace_prob)
        for i in np.flatnonzero(replace):
            pairs[old[i]] = new[i]
            descriptors[old[i]] = new_desc[i]
        generated += m
        report(m)
    return [list(pair) for pair in pairs]


_progress: Any = None
_parent: int | None = None
"""The pid of the process that started this worker (None in the generating process itself)."""

_PR_SET_PDEATHSIG = 1
"""Linux prctl option: the signal the calling process gets when its parent dies."""


def _init_worker(counter: Any, parent: int | None = None) -> None:
    """Sets up a worker process: the shared progress counter, and death with `parent` (the pid of the generation that
    started it), so that a killed generation (kill -9) leaves no worker writing into its folder after another run
    took the lock over."""
    global _progress, _parent
    _progress, _parent = counter, parent
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _exit_if_orphaned()  # the parent may have died before prctl took effect


def _exit_if_orphaned() -> None:
    """Ends this worker at once when the process that started it is gone (its parent pid changed); the work loop
    calls it where prctl is not available."""
    if _parent is not None and os.getppid() != _parent:
        os._exit(1)


def _run_job(config: GenerationConfig, job: _Job, folder: str) -> dict[str, Any]:
    """Generates and writes one shard; returns its manifest entry."""
    import tensorflow as tf

    pending = 0

    def report(n: int) -> None:
        nonlocal pending
        _exit_if_orphaned()
        pending += n
        if _progress is not None and pending >= 64:
            with _progress.get_lock():
                _progress.value += pending
            pending = 0

    recorder = _Recorder(config, _job_rng(config, job))
    if config.mode == "rollouts":
        episodes = _rollout_records(recorder, job.frames, report)
    else:
        episodes = _diverse_pair_records(recorder, config, job.frames, report)
    report(64)
    name = storage.shard_name(job.split, job.index)
    final = Path(folder) / name
    tmp = final.with_name(name + ".tmp")
    with tf.io.TFRecordWriter(str(tmp), options="GZIP") as writer:
        for k, episode in enumerate(episodes):
            for record in episode:
                writer.write(record.encode(job.number * _EPISODES_PER_SHARD + k))
    _exit_if_orphaned()  # never publish a shard into a folder whose generation is gone
    os.replace(tmp, final)
    entry = {
        "file": name,
        "frames": sum(len(e) for e in episodes),
        "episodes": len(episodes),
        "bytes": final.stat().st_size,
        "sha256": storage.sha256(final),
    }
    storage.write_json_atomic(final.with_name(name + ".json"), entry)
    return entry


def _progress_total(config: GenerationConfig, jobs: list[_Job]) -> int:
    if config.mode == "rollouts":
        return sum(j.frames for j in jobs)
    return sum(max(int(config.pair_budget * (j.frames // 2)), j.frames // 2) for j in jobs)


def _load_done(partial: Path, jobs: list[_Job]) -> dict[int, dict[str, Any]]:
    done = {}
    for job in jobs:
        sidecar = partial / (storage.shard_name(job.split, job.index) + ".json")
        if sidecar.exists():
            entry = json.loads(sidecar.read_text())
            shard = partial / entry["file"]
            if shard.exists() and shard.stat().st_size == entry["bytes"]:
                done[job.number] = entry
    return done


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("ale-py", "ocatari", "gymnasium", "numpy", "opencv-python-headless")}


def build_manifest(config: GenerationConfig, jobs: list[_Job], entries: dict[int, dict[str, Any]]) -> dict[str, Any]:
    game = get_game(config.game)
    splits: dict[str, Any] = {}
    for job in jobs:
        split = splits.setdefault(job.split, {"frames": 0, "episodes": 0, "shards": []})
        entry = entries[job.number]
        split["frames"] += entry["frames"]
        split["episodes"] += entry["episodes"]
        split["shards"].append(entry)
    return {
        "format": storage.FORMAT,
        "version": storage.FORMAT_VERSION,
        "game": game.name,
        "ale_id": game.ale_id,
        "mode": config.mode,
        "seed": config.seed,
        "frame_shape": list(FRAME_SHAPE),
        "native_shape": list(NATIVE_SHAPE),
        "preprocessing": "ALE frameskip 4, max over last 2 frames, <=30 no-ops, no sticky actions, "
        "210x160 -> 84x84 cv2.INTER_AREA, RGB uint8",
        "compression": "GZIP",
        "categories": list(GroundTruth(game).categories),
        "moving_categories": list(game.moving_categories),
        "generator": dataclasses.asdict(config),
        "splits": splits,
        "package_versions": _versions(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def generate(config: GenerationConfig, out: str | Path, *, workers: int, progress: bool = True) -> dict[str, Any]:
    """Writes the dataset to `out` and returns its manifest.

    What `out` already holds is checked before any work: a dataset of the same config is returned after every shard is
    verified, its corrupt or missing shards made again (the intact ones kept); a dataset whose manifest cannot be read
    is made again; another config's dataset, a manifest this project did not write, files that are not a dataset, or
    a file named `out` are an error that leaves no `<out>.partial` behind. An unfinished generation of the same config
    in `<out>.partial` is resumed; of another config, discarded. The generation holds the lock of `<out>.partial`
    while it runs, so a second one into the same `out` is refused (storage.FolderInUseError).
    """
    out = Path(out).resolve()
    partial = partial_folder(out)
    with storage.hold_folder(partial):
        try:
            manifest = _take_over(out, partial, config)
        except storage.DatasetError:
            remove_if_only_lock(partial)
            raise
        if manifest is not None:
            remove_if_only_lock(partial)
            return manifest
        manifest = _generate_into(partial, config, workers, progress)
        os.replace(partial, out)
    (out / storage.LOCK).unlink()
    return manifest


def partial_folder(out: str | Path) -> Path:
    """The folder a generation into `out` writes (and locks) until it is finished: `<out>.partial`."""
    out = Path(out).resolve()  # `.` has no name to put `.partial` after
    return out.with_name(out.name + ".partial")


def remove_if_only_lock(partial: Path) -> None:
    """Removes `partial` (its holder calls this) when it holds only the lock: this run made it, and made nothing."""
    if all(p.name == storage.LOCK for p in partial.iterdir()):
        shutil.rmtree(partial)


def _generate_into(partial: Path, config: GenerationConfig, workers: int, progress: bool) -> dict[str, Any]:
    """Makes the shards `partial` lacks and writes the manifest there."""
    config_path = partial / "generator.json"
    storage.write_json_atomic(config_path, dataclasses.asdict(config))

    jobs = plan_jobs(config)
    entries = _load_done(partial, jobs)
    todo = [j for j in jobs if j.number not in entries]
    entries.update(_run_jobs(config, todo, partial, workers, progress))

    manifest = build_manifest(config, jobs, entries)
    for job in jobs:
        (partial / (storage.shard_name(job.split, job.index) + ".json")).unlink()
    config_path.unlink()
    storage.write_json_atomic(partial / storage.MANIFEST, manifest)
    return manifest


def _discard_other_config(partial: Path, config: GenerationConfig) -> None:
    """Empties `partial` (but its lock) unless it holds an unfinished generation of `config`."""
    config_path = partial / "generator.json"
    if config_path.exists() and _with_legacy(json.loads(config_path.read_text())) == _asked(config):
        return
    for path in partial.iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        elif path.name != storage.LOCK:
            path.unlink()


_DATASET_FILE = re.compile(r"(manifest\.json|(train|validation|test)-\d{5}\.tfrecord\.gz(\.json)?)(\.tmp\d*)?|\.lock")


def _take_over(out: Path, partial: Path, config: GenerationConfig) -> dict[str, Any] | None:
    """The manifest of `out` when it holds this config's dataset intact. Otherwise clears the way for a generation
    into `partial`: an unfinished generation of another config there is discarded, the intact shards of a damaged
    dataset of this config in `out` move there (kept, not made again), and `out` is removed. Raises, before changing
    anything, when `out` holds another config's dataset or files that are not a dataset's."""
    manifest = _checked_manifest(out, config)
    intact = []
    if manifest is not None:
        shards = [shard for split in manifest["splits"].values() for shard in split["shards"]]
        intact = [shard for shard in shards if storage.shard_intact(out, shard)]
        if len(intact) == len(shards):
            return manifest
    _discard_other_config(partial, config)
    for shard in intact:
        os.replace(out / shard["file"], partial / shard["file"])
        storage.write_json_atomic(partial / (shard["file"] + ".json"), shard)
    if out.exists():
        shutil.rmtree(out)
    return None


def _checked_manifest(out: Path, config: GenerationConfig) -> dict[str, Any] | None:
    """The manifest of the dataset of `config` in `out`; None when `out` is missing or holds no readable manifest
    (then nothing in it can be verified). Raises when `out` holds another config's dataset, a manifest this project did
    not write, or files that are not a dataset's (or is a file)."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise storage.DatasetError(f"{out} is a file, not a folder; choose another OUT= or move the file away.")
    foreign = sorted(p.name for p in out.iterdir() if not _DATASET_FILE.fullmatch(p.name))
    if foreign:
        raise storage.DatasetError(
            f"{out} exists and holds files that are not a dataset's ({', '.join(foreign[:5])}); choose another OUT= "
            "or move them away."
        )
    try:
        manifest = storage.read_manifest(out)
    except storage.ForeignManifestError as e:
        raise storage.DatasetError(
            f"{out} holds a {storage.MANIFEST} this project did not write ({e.found}); it is left alone: choose "
            "another OUT= or move it away."
        ) from None
    except storage.DatasetError:
        return None  # this project's manifest, unreadable (corrupt, another version, fields missing): made again
    asked = _asked(config)
    made = _with_legacy(manifest["generator"])
    changed = sorted(k for k in set(asked) | set(made) if made.get(k) != asked.get(k))
    if changed:
        differences = "; ".join(f"{k}: {made.get(k)!r}, asked {asked.get(k)!r}" for k in changed)
        raise storage.DatasetError(
            f"{out} already holds a dataset generated with other settings ({differences}); choose another OUT= or "
            "delete it."
        )
    return manifest


def _asked(config: GenerationConfig) -> dict[str, Any]:
    """The config as its manifest records it (JSON types)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _with_legacy(generator: dict[str, Any]) -> dict[str, Any]:
    """A recorded generator config with the settings it predates at their old meaning (uniform policy)."""
    return {**LEGACY_GENERATOR, **generator}


def _run_jobs(
    config: GenerationConfig, jobs: list[_Job], folder: Path, workers: int, progress: bool
) -> dict[int, dict[str, Any]]:
    from tqdm import tqdm

    if not jobs:
        return {}
    unit = "frames" if config.mode == "rollouts" else "pairs"
    bar = tqdm(
        total=_progress_total(config, jobs),
        unit=unit,
        desc=f"{config.game} {config.mode}",
        disable=not progress,
        mininterval=2.0,
    )
    try:
        results = _run_jobs_with(config, jobs, folder, workers, bar)
    finally:
        bar.close()
    return results


class GenerationError(RuntimeError):
    """A shard's generation failed; the message names the shard and the cause."""


def _failed(job: _Job, error: BaseException) -> GenerationError:
    return GenerationError(
        f"Generating shard {storage.shard_name(job.split, job.index)} failed: {type(error).__name__}: {error}"
    )


def _exception(outcome: Any) -> BaseException:
    """The exception of a failed pool job, taken outside an `except` block: raising from inside one would chain the
    worker's RemoteTraceback, whose missing frames make Sacred's traceback filter fail (IndexError), burying the
    cause."""
    try:
        outcome.get()
    except Exception as e:
        return e
    raise AssertionError("the job succeeded")


def _run_jobs_with(
    config: GenerationConfig, jobs: list[_Job], folder: Path, workers: int, bar: Any
) -> dict[int, dict[str, Any]]:
    results: dict[int, dict[str, Any]] = {}
    if workers <= 1:
        _init_worker(None)
        for job in jobs:
            try:
                results[job.number] = _run_job(config, job, str(folder))
            except Exception as e:
                raise _failed(job, e) from e
            bar.update(_progress_total(config, [job]))
        return results
    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    by_number = {job.number: job for job in jobs}
    with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker, initargs=(counter, os.getpid())) as pool:
        pending = {job.number: pool.apply_async(_run_job, (config, job, str(folder))) for job in jobs}
        while pending:
            for number in [n for n, r in pending.items() if r.ready()]:
                outcome = pending.pop(number)
                if not outcome.successful():
                    raise _failed(by_number[number], _exception(outcome))
                results[number] = outcome.get()
            bar.update(min(counter.value, bar.total) - bar.n)
            time.sleep(0.5)
    bar.update(bar.total - bar.n)
    return results
