"""Data pipeline throughput: `python -m bench.bench_data [--games pong ms_pacman] [--frames 2000]`.

Prints, measured in one run so that the ratios are meaningful on a shared machine:
- raw ALE agent steps/s (ale-py AtariEnv, frame skip 4, random actions, nothing else);
- our environment (max-pooled frame skip + resize, data/atari.py) steps/s;
- generation with OCAtari ground truth and TFRecord storage, 1 process and 2 processes (steady state: the pool is
  started and TensorFlow imported before the clock starts), frames/s and the ratio to raw ALE per process;
- tf.data reading: frames/s (frames_dataset) and pairs/s (pairs_dataset) over the generated data.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np


def steps_per_second(env, steps: int) -> float:
    """Agent steps/s of `env` under a seeded uniformly random policy, resetting at episode ends."""
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        *_, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def raw_ale_env(ale_id: str):
    """ALE alone: frame skip 4 inside the emulator loop, no max-pooling, no resize, no ground truth."""
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    return gym.make(ale_id, frameskip=4, repeat_action_probability=0.0)


def _warm(_: int) -> None:
    import tensorflow  # noqa: F401

    import data.generate  # noqa: F401


def generation_frames_per_second(config, folder: Path, processes: int) -> float:
    from data import generate as gen

    jobs = gen.plan_jobs(config)[:processes]
    if processes == 1:
        gen._run_job(config, jobs[0], str(folder))  # warm-up: imports, first env
        start = time.perf_counter()
        gen._run_job(config, jobs[0], str(folder))
        return jobs[0].frames / (time.perf_counter() - start)
    with mp.get_context("spawn").Pool(processes) as pool:
        pool.map(_warm, range(processes))
        start = time.perf_counter()
        pool.starmap(gen._run_job, [(config, job, str(folder)) for job in jobs])
        return sum(j.frames for j in jobs) / (time.perf_counter() - start)


def read_rates(root: Path) -> tuple[float, float]:
    from data.readers import frames_dataset, pairs_dataset

    def rate(ds) -> float:
        for _ in ds.take(1):
            pass
        start, n = time.perf_counter(), 0
        for _ in range(3):
            for batch in ds:
                n += int((batch[0] if isinstance(batch, tuple) else batch).shape[0])
        return n / (time.perf_counter() - start)

    return (
        rate(frames_dataset(root, "train", batch_size=32, seed=0)),
        rate(pairs_dataset(root, "train", batch_size=32, seed=0)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=["pong", "ms_pacman"])
    parser.add_argument("--frames", type=int, default=2000, help="frames per process and measurement")
    args = parser.parse_args()

    from data.atari import make_env
    from data.games import get_game
    from data.generate import generate, rollouts_config

    rows = []
    for name in args.games:
        game = get_game(name)
        config = rollouts_config(game.name, {"train": 2 * args.frames, "validation": 2, "test": 2}, 0, args.frames)
        with tempfile.TemporaryDirectory() as tmp:
            raw = steps_per_second(raw_ale_env(game.ale_id), args.frames)
            ours = steps_per_second(make_env(game), args.frames)
            one = generation_frames_per_second(config, Path(tmp), 1)
            two = generation_frames_per_second(config, Path(tmp), 2)
            root = Path(tmp) / "dataset"
            generate(
                dataclasses.replace(config, split_frames={"train": args.frames, "validation": 2, "test": 2}),
                root,
                workers=1,
                progress=False,
            )
            frames_rate, pairs_rate = read_rates(root)
        rows.append((name, raw, ours, one, two, frames_rate, pairs_rate))

    header = (
        "| game | raw ALE steps/s | our env steps/s | gen+GT+store 1 proc frames/s | ratio to raw "
        "| gen 2 procs frames/s | 2-proc speed-up | read frames/s | read pairs/s |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, raw, ours, one, two, fr, pr in rows:
        print(
            f"| {name} | {raw:,.0f} | {ours:,.0f} | {one:,.0f} | {one / raw:.2f} | {two:,.0f} | {two / one:.2f} "
            f"| {fr:,.0f} | {pr:,.0f} |"
        )


if __name__ == "__main__":
    main()
