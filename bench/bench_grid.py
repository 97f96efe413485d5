"""How the Ray grid runner scales with workers: `python -m bench.bench_grid [--jobs 4] [--steps 30]`.

The same set of independent jobs goes through `experiments.run_grid.run_grid` (the runner of `make rl-benchmark`)
once per layout, each time into fresh runs/ and work folders, and the wall time of each layout is printed beside the
one-worker time. Two kinds of job, both real Sacred runs:
  - `data`: generate_data on pong (emulation and OCAtari ground truth; one thread of Python);
  - `transporter`: a short quick-preset Transporter training run (TensorFlow) on a dataset generated once beforehand.
Layouts: 1 worker x 1 thread, N workers x 1 thread (the runner's default, one job per core), and 1 worker x N
threads (one job at a time using every core), N = the machine's cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.grids import Job
from experiments.run_grid import run_grid


def jobs(kind: str, count: int, root: Path, steps: int, frames: int, dataset: Path) -> list[Job]:
    out = []
    for i in range(count):
        if kind == "data":
            config = {"game": "pong", "frames": frames, "seed": i, "out": str(root / f"data{i}"), "workers": 1}
            config["progress"] = False
            out.append(Job(f"data{i}", "generate_data", tuple(sorted(config.items())), grid="bench"))
        else:
            config = {
                "game": "pong",
                "seed": i,
                "dataset": str(dataset),
                "generate_missing": False,
                "batch_size": 8,
                "epochs": 1,
                "steps_per_epoch": steps,
                "picture_frames": 2,
                "work": str(root / f"work{i}"),
                "progress": False,
            }
            out.append(
                Job(f"transporter{i}", "train_transporter", tuple(sorted(config.items())), ("quick",), (), "bench")
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4, help="independent jobs per layout")
    parser.add_argument("--steps", type=int, default=30, help="training steps of a transporter job")
    parser.add_argument("--frames", type=int, default=2000, help="frames of a data job")
    parser.add_argument("--kinds", default="data,transporter")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    layouts = [(1, 1), (cores, 1), (1, cores)] if cores > 1 else [(1, 1)]
    with tempfile.TemporaryDirectory(prefix="bench_grid_") as tmp:
        root = Path(tmp)
        dataset = root / "dataset"
        if "transporter" in args.kinds:
            print("generating the training dataset (not timed) ...", flush=True)
            subprocess.run(
                [sys.executable, "-m", "experiments.generate_data", "with", "game=pong", "frames=600", f"out={dataset}",
                 "progress=False", "-l", "WARNING"],
                check=True,
                env={**os.environ, "RUNS_DIR": str(root / "data_runs")},
            )  # fmt: skip
        rows = []
        for kind in args.kinds.split(","):
            baseline = None
            for workers, threads in layouts:
                folder = root / f"{kind}-{workers}x{threads}"
                todo = jobs(kind, args.jobs, folder, args.steps, args.frames, dataset)
                start = time.perf_counter()
                result = run_grid(
                    todo, str(folder / "runs"), str(folder / "logs"), threads, workers * threads, progress=False
                )
                seconds = time.perf_counter() - start
                _shutdown_ray()
                if result["failed"]:
                    raise RuntimeError(f"{kind} jobs failed: {result['failed']}")
                baseline = baseline or seconds
                rows.append((kind, workers, threads, seconds, baseline / seconds))
                print(f"{kind}: {workers} worker(s) x {threads} thread(s): {seconds:.1f} s", flush=True)
    print(f"\n{args.jobs} jobs per layout, {cores} cores\n")
    print("| jobs | workers x threads per job | wall s | speed-up vs 1 x 1 |")
    print("|---|---|---|---|")
    for kind, workers, threads, seconds, speedup in rows:
        print(f"| {kind} | {workers} x {threads} | {seconds:.1f} | {speedup:.2f} |")
    return 0


def _shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
