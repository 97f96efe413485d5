"""The grids and their runner (experiments/grids.py, experiments/run_grid.py): expansion, dependency order, skip/rerun
decisions on run folders, concurrent run creation, and a tiny grid run on local Ray with real Sacred experiments."""

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from experiments.grid_runs import job_status, tagged_runs
from experiments.grids import Job, dependency_order, expand
from experiments.run_grid import REPO, main, plan, run_grid, start_ray


def test_table1_expands_to_shared_keypointers_then_agents():
    jobs = expand("table1", "quick", seeds=[0, 1, 2])
    assert len(jobs) == 4 * (2 + 2 * 2 * 3)  # per game: 2 keypointers + 2 keypointers x 2 encoders x 3 seeds
    position = {job.name: i for i, job in enumerate(jobs)}
    agents = [job for job in jobs if job.experiment == "train_agent"]
    assert all(position[job.depends[0]] < position[job.name] for job in agents)
    kp = {job.name: job for job in jobs}["ms_pacman/permakey"]
    users = [job for job in agents if job.depends == ("ms_pacman/permakey",)]
    assert len(users) == 2 * 3 and all(job.settings["keypointer"] == kp.settings["work"] + "/best" for job in users)
    assert all("quick" in job.named for job in jobs)
    assert len({job.settings["work"] for job in jobs}) == len(jobs)  # every job works in its own folder


def test_other_grids_and_bad_requests():
    assert {j.settings["distractors"] for j in expand("table2", "paper", [0]) if j.experiment == "train_agent"} == {
        "both"
    }
    ks = {j.settings.get("num_keypoints") for j in expand("table3", "quick", [0]) if j.experiment != "train_agent"}
    assert ks == {5, 7, 10}
    evaluation = [j for j in expand("keypoints", "quick", [0], games=["pong"]) if j.experiment == "eval_keypoints"]
    assert len(evaluation) == 1 and len(evaluation[0].depends) == 2
    explore = expand("explore", "quick", [0, 1])
    runs = [j for j in explore if j.experiment == "explore"]
    assert len(runs) == 3 * 2 * 2  # 3 games x 2 keypointers x 2 seeds
    table1_work = {j.settings["work"] for j in expand("table1", "quick", [0]) if j.experiment != "train_agent"}
    shared = {
        j.settings["work"] for j in explore if j.experiment != "explore" and j.settings["game"] != "montezuma_revenge"
    }
    assert len(shared) == 4 and shared <= table1_work  # ms_pacman's and seaquest's keypointers are table1's
    assert all(j.settings["keypointer"].endswith("/best") and j.depends for j in runs)
    with pytest.raises(ValueError, match="Unknown grid"):
        expand("table9")
    with pytest.raises(ValueError, match="preset"):
        expand("table1", "huge")


def test_dependency_order_puts_dependencies_first_and_names_problems():
    a, b, c = Job("a", "x", ()), Job("b", "x", (), depends=("c",)), Job("c", "x", (), depends=("a",))
    assert [j.name for j in dependency_order([b, c, a])] == ["a", "c", "b"]
    with pytest.raises(ValueError, match="not in the grid"):
        dependency_order([Job("d", "x", (), depends=("zz",))])
    with pytest.raises(ValueError, match="depends on itself"):
        dependency_order([Job("e", "x", (), depends=("f",)), Job("f", "x", (), depends=("e",))])


def _record(runs, run_id, tag, status, updates=None):
    folder = runs / str(run_id)
    folder.mkdir(parents=True)
    meta = {"comment": tag, **({"config_updates": updates} if updates is not None else {})}
    (folder / "run.json").write_text(json.dumps({"status": status, "meta": meta}))


def test_restart_skips_completed_and_reruns_failed_or_interrupted(tmp_path):
    runs = tmp_path / "runs"
    jobs = [Job(n, "x", (), grid="g") for n in ("done", "failed", "killed", "new", "retried")]
    _record(runs, 1, "g/done", "COMPLETED")
    _record(runs, 2, "g/failed", "FAILED")
    _record(runs, 3, "g/killed", "RUNNING")  # the process died without saying so
    _record(runs, 4, "g/retried", "FAILED")
    _record(runs, 5, "g/retried", "COMPLETED")
    (runs / "6").mkdir()  # a run being created: no run.json yet
    found = tagged_runs(runs)
    assert [job_status(j, found) for j in jobs] == [
        ("completed", 1),
        ("failed", 2),
        ("unfinished", 3),
        ("missing", None),
        ("completed", 5),
    ]
    todo = plan(jobs, runs)
    assert [j.name for j in todo["skip"]] == ["done", "retried"]
    assert [j.name for j in todo["run"]] == ["failed", "killed", "new"]


def test_an_unreadable_run_record_is_a_warning_naming_it_not_a_crash(tmp_path, caplog):
    runs = tmp_path / "runs"
    _record(runs, 1, "g/done", "COMPLETED")
    _record(runs, 2, "g/listed", "COMPLETED")
    (runs / "2" / "run.json").write_text("[]")
    _record(runs, 3, "g/cut", "COMPLETED")
    (runs / "3" / "run.json").write_text('{"status": "COMPL')
    jobs = [Job(n, "x", (), grid="g") for n in ("done", "listed", "cut")]
    with caplog.at_level(logging.WARNING):
        assert [j.name for j in plan(jobs, runs)["run"]] == ["listed", "cut"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith(f"{runs / '2' / 'run.json'} holds a JSON list") for m in warned)
    assert any(m.startswith(f"{runs / '3' / 'run.json'} is not valid JSON") for m in warned)


def test_a_completed_quick_job_does_not_make_the_paper_job_skip(tmp_path, capsys):
    runs = tmp_path / "runs"
    quick, paper = (expand("table1", preset, [0], games=["ms_pacman"]) for preset in ("quick", "paper"))
    for i, job in enumerate(quick, start=1):
        _record(runs, i, job.tag, "COMPLETED")
    assert [len(plan(quick, runs)["skip"]), len(plan(paper, runs)["skip"])] == [len(quick), 0]
    assert main(["--grid", "table1", "--preset", "paper", "--games", "ms_pacman", "--seeds", "0", "--runs", str(runs),
                 "--dry-run"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "6 jobs, 0 completed, 6 to run" in out and "skip" not in out


def test_atari100k_plans_oracle_and_motion_gnn_agents_on_table1_games_for_each_preset(tmp_path, capsys):
    """The Atari 100k grid: Table 1's games x {oracle, motion} x seeds of GNN agents, no keypointer to train."""
    quick, paper = (expand("atari100k", preset, [0, 1]) for preset in ("quick", "paper"))
    assert len(quick) == len(paper) == 4 * 2 * 2
    assert {job.settings["game"] for job in quick} == {"battlezone", "ms_pacman", "seaquest", "frostbite"}
    assert {job.settings["keypointer"] for job in quick} == {"oracle", "motion"}
    assert all(job.experiment == "train_agent" and job.settings["encoder"] == "gnn" for job in quick)
    assert not any(job.depends for job in quick)
    assert all(job.named == ("quick",) for job in quick) and all(job.named == () for job in paper)
    assert quick[0].tag == "atari100k/quick/battlezone/oracle/gnn-s0" and quick[0].command()[-1] == quick[0].tag
    assert len({job.settings["work"] for job in quick + paper}) == 2 * len(quick)
    runs = tmp_path / "runs"
    assert main(["--grid", "atari100k", "--preset", "paper", "--games", "seaquest", "--seeds", "0", "--runs",
                 str(runs), "--dry-run"]) == 0  # fmt: skip
    assert "atari100k (paper): 2 jobs, 0 completed, 2 to run" in capsys.readouterr().out


def test_the_agents_cpu_preset_runs_the_atari100k_grid_and_is_refused_where_keypointers_train(tmp_path, capsys):
    cpu = expand("atari100k", "cpu", [0])
    assert all(job.named == ("cpu",) for job in cpu) and cpu[0].tag == "atari100k/cpu/battlezone/oracle/gnn-s0"
    assert len({job.settings["work"] for job in cpu + expand("atari100k", "quick", [0])}) == 2 * len(cpu)
    with pytest.raises(ValueError, match="cpu preset is the agent's only.*table1 grid trains keypointers"):
        expand("table1", "cpu", [0])
    runs = tmp_path / "runs"
    assert main(["--grid", "atari100k", "--preset", "cpu", "--games", "pong", "--seeds", "0", "--runs", str(runs),
                 "--dry-run"]) == 0  # fmt: skip
    assert "atari100k (cpu): 2 jobs, 0 completed, 2 to run" in capsys.readouterr().out
    assert main(["--grid", "atari100k", "--preset", "cpu", "--games", "pong", "--keypointers", "oracle", "--seeds",
                 "0,1", "--runs", str(runs), "--dry-run"]) == 0  # fmt: skip
    assert "atari100k (cpu): 2 jobs, 0 completed, 2 to run" in capsys.readouterr().out
    assert {job.settings["keypointer"] for job in expand("atari100k", "cpu", [0], keypointers=["motion"])} == {"motion"}
    with pytest.raises(ValueError, match="keypointers are oracle, motion.*'permakey'"):
        expand("atari100k", "cpu", [0], keypointers=["permakey"])


def test_runs_tagged_before_tags_named_the_preset_count_for_the_preset_they_ran(tmp_path):
    """Old tags were `<grid>/<name>`; the config updates a run started with name its preset's work folder. Those runs
    are older than the `distractors` key too: their updates say `noise`, which counts as it."""
    runs = tmp_path / "runs"
    quick, paper = (expand("table1", preset, [0], games=["ms_pacman"])[0] for preset in ("quick", "paper"))
    assert quick.legacy_tag == paper.legacy_tag == "table1/ms_pacman/permakey" != quick.tag
    old = {("noise" if key == "distractors" else key): value for key, value in quick.settings.items()}
    assert old["noise"] == "none" and "distractors" not in old
    _record(runs, 1, quick.legacy_tag, "COMPLETED", updates=old)
    found = tagged_runs(runs)
    assert [job_status(quick, found), job_status(paper, found)] == [("completed", 1), ("missing", None)]


def test_two_processes_creating_runs_at_once_lose_nothing(tmp_path):
    script = textwrap.dedent(
        f"""
        from sacred import Experiment
        from sacred.observers import FileStorageObserver
        ex = Experiment("race", save_git_info=False, interactive=True)
        ex.observers.append(FileStorageObserver({str(tmp_path / "runs")!r}))
        ex.main(lambda: None)
        for _ in range(15):
            ex.run()
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    folders = [p for p in (tmp_path / "runs").iterdir() if p.name.isdigit()]
    assert len(folders) == 30
    assert all(json.loads((f / "run.json").read_text())["status"] == "COMPLETED" for f in folders)


def test_tiny_grid_runs_on_local_ray_and_restarts_without_redoing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = ("frames", 30), ("progress", False), ("workers", 1), ("shard_frames", 30)
    jobs = [
        Job("pong", "generate_data", (("game", "pong"), ("out", str(tmp_path / "d1")), *data), grid="tiny"),
        Job("after", "generate_data", (("game", "pong"), ("out", str(tmp_path / "d2")), *data), (), ("pong",), "tiny"),
        Job("bad", "generate_data", (("game", "tetris"), ("out", str(tmp_path / "d3")), *data), grid="tiny"),
        Job("blocked", "generate_data", (("game", "pong"),), (), ("bad",), "tiny"),
    ]
    runs, logs = str(tmp_path / "runs"), str(tmp_path / "logs")
    first = run_grid(jobs, runs, logs, workers=2, progress=False)
    assert sorted(first["completed"]) == ["after", "pong"]
    assert list(first["failed"]) == ["bad"] and first["failed"]["bad"]["exit_code"] != 0
    assert "tetris" in open(first["failed"]["bad"]["log"]).read()  # the log says why
    assert first["blocked"] == ["blocked"]
    second = run_grid(jobs, runs, logs, workers=2, progress=False)
    assert sorted(second["skipped"]) == ["after", "pong"] and not second["completed"]
    assert list(second["failed"]) == ["bad"]


def _wait_for(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_job_is_interrupted_when_the_worker_that_started_it_dies(tmp_path):
    """A stand-in Ray worker: its own process group, SIGINT ignored and blocked (Ray's workers block it, and the mask
    is inherited through fork and exec). It runs a job through run_job and its group is SIGKILLed, as Ray's shutdown
    does; the job must get SIGINT (KeyboardInterrupt, which lets Sacred record INTERRUPTED), not die silently or run
    on. Without job_guard's unblocking the job never sees the signal."""
    marker, log = tmp_path / "interrupted", tmp_path / "job.log"
    job = f"import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    open({str(marker)!r}, 'w').close()\n"
    worker = textwrap.dedent(
        f"""
        import signal, sys
        from experiments.run_grid import run_job
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGINT}})
        run_job([sys.executable, "-c", {job!r}], {str(log)!r}, 1, {{}})
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", worker], start_new_session=True)
    time.sleep(3)  # the job has started and sleeps
    os.killpg(parent.pid, signal.SIGKILL)
    parent.wait()
    assert _wait_for(marker.exists, 10)


def test_a_stopped_grid_on_ray_records_its_running_job_as_interrupted(tmp_path):
    """The real path: a runner on local Ray, started in its own process group, runs a long generate_data job; a
    SIGINT to the group (a Ctrl-C at the terminal) stops the runner, Ray shuts down, and the job's Sacred run must
    end INTERRUPTED (not stay RUNNING), with the runner exiting 130."""
    runs = tmp_path / "runs"
    data = ("frames", 200_000), ("progress", False), ("workers", 1), ("out", str(tmp_path / "data"))
    runner = textwrap.dedent(
        f"""
        import signal, sys
        from experiments.run_grid import run_grid
        from experiments.grids import Job
        signal.signal(signal.SIGINT, signal.default_int_handler)
        job = Job("long", "generate_data", (("game", "pong"), *{data!r}), grid="stop")
        try:
            run_grid([job], {str(runs)!r}, {str(tmp_path / "logs")!r}, workers=1, progress=False)
        except KeyboardInterrupt:
            sys.exit(130)
        """
    )
    env = {**os.environ, "PYTHONPATH": REPO}
    process = subprocess.Popen([sys.executable, "-c", runner], start_new_session=True, cwd=tmp_path, env=env)

    def status() -> str | None:
        found = tagged_runs(runs).get("stop/long", [])
        return found[-1]["status"] if found else None

    assert _wait_for(lambda: status() == "RUNNING", 120), "the job did not start"
    time.sleep(2)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert _wait_for(lambda: status() == "INTERRUPTED", 30), status()


def _pid() -> int:
    return os.getpid()


def _listening(processes) -> list[tuple[str, str]]:
    """(process name, address) of every listening TCP socket of `processes`."""
    import psutil  # ray's own copy, on the path once ray is imported

    found = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            name = process.name()
            found += [(name, c.laddr.ip) for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    return found


def test_local_ray_listens_on_loopback_only(monkeypatch):
    """The grid's local Ray (GCS, raylet, agents, a worker and this driver) accepts connections from this machine
    only: without the fix every server listened on all interfaces (`::`)."""
    import ipaddress

    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if ray.is_initialized():
        ray.shutdown()
    start_ray(1)
    try:
        assert ray.get(ray.remote(_pid).remote()) != os.getpid()  # a worker runs
        import psutil

        me = psutil.Process()
        sockets = _listening([me, *me.children(recursive=True)])
        assert {name for name, _ in sockets} >= {"gcs_server", "raylet"}
        for name, address in sockets:
            ip = ipaddress.ip_address(address)
            ip = getattr(ip, "ipv4_mapped", None) or ip
            assert ip.is_loopback, f"{name} listens on {address}"
    finally:
        ray.shutdown()
