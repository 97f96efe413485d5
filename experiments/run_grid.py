"""Run a grid of the papers' tables (experiments/grids.py) on Ray, the runner of `make rl-benchmark`:
`python -m experiments.run_grid --grid table1 --preset quick --seeds 0,1,2`.

Every job (experiments/grids.py) is one Sacred run, started as its own process by a Ray task that asks for
`--cpus-per-job` CPUs (so local Ray runs one job per core by default) and sets TensorFlow's thread pools to match.
Ray runs locally on this machine's cores (its servers listening on loopback only, no dashboard) unless RAY_ADDRESS
names a cluster (`ray start --head` on one machine, `ray start --address=...` on the others, then
RAY_ADDRESS=<head>:6379 here; every machine needs this checkout and a shared runs/ and work/ folder, or MONGO_URL for
the run records).

Restarting: a job whose tagged run (Sacred comment `<grid>/<preset>/<job>`) COMPLETED in runs/ is skipped; a failed or
interrupted one is run again, and the experiments resume from their work folders. A job whose dependency failed is
reported as blocked, never run. Progress shows jobs done/running/failed; at the end each failed job is listed with
its run id and log file. Sacred's FileStorageObserver creates run folders with mkdir and retries on a clash, so
parallel jobs writing into one runs/ never share or lose a run (tests/test_run_grid.py checks it).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from experiments.grid_runs import job_status, tagged_runs
from experiments.grids import GRIDS, PRESETS, Job, expand
from training.workspace import Workspace

REPO = str(Path(__file__).resolve().parents[1])
"""The checkout's root: the job processes and Ray's workers import the project from here (on a cluster, every
machine needs the checkout at the same path)."""


def plan(jobs: list[Job], runs_dir: str | Path) -> dict[str, list[Job]]:
    """Which jobs are skipped (completed) and which run (missing, failed, unfinished)."""
    runs = tagged_runs(runs_dir)
    out: dict[str, list[Job]] = {"skip": [], "run": []}
    for job in jobs:
        out["skip" if job_status(job, runs)[0] == "completed" else "run"].append(job)
    return out


def run_job(command: list[str], log: str, threads: int, env: dict[str, str]) -> int:
    """Runs one job's process (its output into `log`) under experiments.job_guard and returns its exit code. When the
    grid is stopped and Ray's worker exits, the guard dies with it and the job gets SIGINT (its run: INTERRUPTED)."""
    environment = {**os.environ, **env, "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1"}
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, environment.get("PYTHONPATH")) if p)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        return subprocess.call(
            [sys.executable, "-m", "experiments.job_guard", *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
        )


LOOPBACK = "127.0.0.1"

_RAY_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch for a node that serves other machines. Off, Ray takes the loopback address as the node's address, and
its GCS, raylet and workers listen on loopback only (given 127.0.0.1 as its node address, ray.init replaces it with the
machine's network address, and every server listens on all interfaces)."""


def start_ray(workers: int | None) -> None:
    """Joins the cluster at RAY_ADDRESS (the user's explicit choice), else starts local Ray with `workers` CPUs
    (default: all cores), listening on loopback only and without a dashboard; the workers import the project from this
    checkout."""
    import ray

    if ray.is_initialized():
        return
    runtime = {"env_vars": {"PYTHONPATH": REPO}}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=runtime, log_to_driver=False)
        return
    _local_node_only()
    ray.init(
        num_cpus=workers or os.cpu_count(),
        runtime_env=runtime,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address=LOOPBACK,
    )
    address = ray.util.get_node_ip_address()
    if address != LOOPBACK:
        ray.shutdown()
        raise RuntimeError(
            f"Local Ray took {address} as its address, so it would listen beyond this machine; stopped. Set "
            f"{_RAY_CLUSTER_SWITCH}=0 before Ray is imported, or run a cluster and name it in RAY_ADDRESS."
        )


def _local_node_only() -> None:
    """Turns Ray's cluster switch off for this process and the Ray processes it starts, also when Ray was imported
    (and read the switch) before."""
    from ray._private import ray_constants

    os.environ[_RAY_CLUSTER_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def run_grid(
    jobs: list[Job],
    runs_dir: str,
    logs_dir: str,
    cpus_per_job: int = 1,
    workers: int | None = None,
    python: str = sys.executable,
    progress: bool = True,
) -> dict[str, Any]:
    """Runs the jobs not yet completed on Ray, dependencies first. Returns {"skipped", "completed", "failed",
    "blocked"} job names and, per failed job, its run id and log."""
    import ray

    todo = plan(jobs, runs_dir)
    skipped = {job.name for job in todo["skip"]}
    result: dict[str, Any] = {"skipped": sorted(skipped), "completed": [], "failed": {}, "blocked": []}
    if not todo["run"]:
        return result
    start_ray(workers)
    task = ray.remote(num_cpus=cpus_per_job)(run_job)
    env = {"RUNS_DIR": os.path.abspath(runs_dir)}  # run_job puts the checkout on PYTHONPATH
    pending = {job.name: job for job in todo["run"]}
    running: dict[Any, Job] = {}
    done: set[str] = set(skipped)
    failed: set[str] = set()
    bar = tqdm(total=len(pending), desc="jobs", disable=not progress)

    def log_of(job: Job) -> str:
        return str(Path(logs_dir) / (job.tag.replace("/", "_") + ".log"))

    def launch_ready() -> None:
        for name, job in list(pending.items()):
            if any(d in failed or d in result["blocked"] for d in job.depends):
                result["blocked"].append(name)
                del pending[name]
                bar.update(1)
            elif all(d in done for d in job.depends):
                running[task.remote(job.command(python), log_of(job), cpus_per_job, env)] = job
                del pending[name]

    slots = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_job)  # jobs Ray runs at once
    launch_ready()
    while running:
        active = min(len(running), slots)
        bar.set_postfix(done=len(result["completed"]), running=active, queued=len(running) - active, failed=len(failed))
        ready, _ = ray.wait(list(running), num_returns=1)
        job = running.pop(ready[0])
        code = ray.get(ready[0])
        status, run_id = job_status(job, tagged_runs(runs_dir))
        if code == 0 and status == "completed":
            done.add(job.name)
            result["completed"].append(job.name)
        else:
            failed.add(job.name)
            result["failed"][job.name] = {"run": run_id, "exit_code": code, "log": log_of(job)}
        bar.update(1)
        launch_ready()
    bar.close()
    return result


def seed_list(text: str) -> list[int]:
    """The seeds of `--seeds` ("0,1,2"); an argparse error naming the value that is not an integer >= 0."""
    seeds = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if not part.isdigit():
            raise argparse.ArgumentTypeError(f"{part!r} is not a seed: give integers >= 0 separated by commas (0,1,2)")
        seeds.append(int(part))
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default="table1", choices=sorted(GRIDS))
    parser.add_argument("--preset", default="quick", choices=list(PRESETS), help="cpu: the atari100k grid only")
    parser.add_argument("--seeds", default="0,1,2", type=seed_list, help="comma-separated agent seeds")
    parser.add_argument("--games", default="", help="comma-separated subset of the grid's games (table1, table2)")
    parser.add_argument("--keypointers", default="", help="comma-separated subset of atari100k's: oracle, motion")
    parser.add_argument("--runs", default=str(Workspace.here().runs), help="Sacred FileStorage folder")
    parser.add_argument("--logs", default="logs/grid", help="one log file per job")
    parser.add_argument("--cpus-per-job", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="local Ray CPUs (default: all cores)")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and what would run, run nothing")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {}
    if args.games:
        options["games"] = [game for game in args.games.split(",") if game]
    if args.keypointers:
        options["keypointers"] = [name for name in args.keypointers.split(",") if name]
    try:
        jobs = expand(args.grid, args.preset, args.seeds, **options)
    except ValueError as error:
        parser.error(str(error))
    todo = plan(jobs, args.runs)
    print(f"{args.grid} ({args.preset}): {len(jobs)} jobs, {len(todo['skip'])} completed, {len(todo['run'])} to run")
    if args.dry_run:
        for job in jobs:
            mark = "skip" if job in todo["skip"] else "run "
            print(f"  {mark} {job.tag:45s} {' '.join(job.command()[2:])}")
        return 0
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when started in the background
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill`, a scheduler's time limit: the same
    start = time.perf_counter()
    try:
        result = run_grid(jobs, args.runs, args.logs, args.cpus_per_job, args.workers)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted after {(time.perf_counter() - start) / 60:.1f} min: the running jobs are stopped (their "
            "runs record INTERRUPTED). Run the same command again to skip what completed and resume the rest."
        )
        return 130
    minutes = (time.perf_counter() - start) / 60
    print(
        f"done in {minutes:.1f} min: {len(result['completed'])} completed, {len(result['skipped'])} skipped, "
        f"{len(result['failed'])} failed, {len(result['blocked'])} blocked"
    )
    for name, failure in result["failed"].items():
        print(f"  FAILED {name}: run {failure['run']}, exit code {failure['exit_code']}, log {failure['log']}")
    for name in result["blocked"]:
        print(f"  BLOCKED {name}: a job it depends on failed")
    return 1 if result["failed"] or result["blocked"] else 0


if __name__ == "__main__":
    sys.exit(main())
