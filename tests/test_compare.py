"""Comparison tables and plots from synthetic run folders, including missing and failed jobs."""

import json
import logging

import pytest
from sacred.observers import FileStorageObserver


def _write_run(runs, run_id, experiment, status, tag=None, config=None, info=None, metrics=None, result=None):
    folder = runs / str(run_id)
    folder.mkdir(parents=True)
    run = {"experiment": {"name": experiment}, "status": status, "meta": {"comment": tag}, "result": result}
    (folder / "run.json").write_text(json.dumps(run))
    (folder / "config.json").write_text(json.dumps(config or {}))
    (folder / "info.json").write_text(json.dumps(info or {}))
    (folder / "metrics.json").write_text(json.dumps(metrics or {}))


def _keypointer(tmp_path, kind, k=7):
    folder = tmp_path / "kp" / kind
    folder.mkdir(parents=True)
    (folder / "keypointer.json").write_text(json.dumps({"kind": kind, "config": {"num_keypoints": k}}))
    return str(folder)


def test_compare_renders_tables_curves_and_aggregate_with_gaps_shown(tmp_path):
    runs = tmp_path / "runs"
    permakey = _keypointer(tmp_path, "permakey")
    scores = {0: 800.0, 1: 1000.0}
    for i, (seed, score) in enumerate(scores.items(), start=1):
        _write_run(
            runs,
            i,
            "train_agent",
            "COMPLETED",
            tag=f"table1/quick/ms_pacman/permakey/gnn-s{seed}",
            config={"game": "ms_pacman", "keypointer": permakey, "encoder": "gnn", "distractors": "none", "seed": seed},
            info={"test": {"agent": {"mean": score}, "random": {"mean": 300.0}}},
            metrics={"validation.score": {"steps": [50, 100], "values": [score / 2, score]}},
        )
    _write_run(
        runs,
        3,
        "train_agent",
        "FAILED",
        tag="table1/quick/ms_pacman/permakey/cnn-s0",
        config={"game": "ms_pacman", "keypointer": permakey, "encoder": "cnn", "seed": 0},
    )
    _write_run(
        runs,
        4,
        "eval_keypoints",
        "COMPLETED",
        config={"game": "ms_pacman"},
        result={"permakey/none/precision@1": 0.5, "permakey/none/recall@1": 0.25},
    )
    _write_run(runs, 5, "train_transporter", "COMPLETED")  # a keypointer run, named by its id below
    (runs / "5" / "keypointer.json").write_text(json.dumps({"kind": "transporter", "config": {"num_keypoints": 7}}))
    _write_run(
        runs,
        6,
        "train_agent",
        "COMPLETED",
        tag="table1/quick/seaquest/transporter/cnn-s0",
        config={"game": "seaquest", "keypointer": 5, "encoder": "cnn", "distractors": "none", "seed": 0},
        info={"test": {"agent": {"mean": 400.0}, "random": {"mean": 70.0}}},
    )

    returns = {"random actions": {"mean": 210.0, "p90": 400.0}, "random options": {"mean": 250.0, "p90": 520.0}}
    returns["repeated random actions"] = {"mean": 230.0}
    _write_run(
        runs,
        7,
        "explore",
        "COMPLETED",
        config={"game": "ms_pacman", "keypointer": permakey, "seed": 0},
        info={"exploration": {"returns": returns}, "avatar": {"most_controllable": 0.4}},
    )

    from experiments import compare

    ex = compare.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "compare_runs"))]
    out = tmp_path / "report"
    run = ex.run(
        config_updates={"runs_dir": str(runs), "grid": "table1", "seeds": [0, 1], "out": str(out), "bootstrap": 200}
    )
    assert run.status == "COMPLETED" and run.result == {"runs": 7, "agent_runs": 3}
    text = (out / "compare.md").read_text()
    pacman = next(line for line in text.splitlines() if line.startswith("| ms_pacman"))
    assert "900.0 (100.0) [n=2]" in pacman  # mean (std) over the two policies
    assert "906.3 (382.2)" in pacman  # the paper's PKey+GNN beside it
    assert "(seed 0: failed run 3)" in pacman and "(seed 1: missing)" in pacman  # never silently dropped
    assert "300.0 (0.0) [n=2]" in pacman  # our random policy, one per agent run
    assert "| 4 | ms_pacman | permakey | none | 1 | 0.5 | 0.25 |" in text
    seaquest = next(line for line in text.splitlines() if line.startswith("| seaquest"))
    # the keypointer is named by its run id (5) and found in runs_dir
    assert "| 400.0 [n=1] (seed 1: missing) | 455.3 (160.6) |" in seaquest
    assert "## Aggregate" in text
    assert "| 7 | ms_pacman | PKey | 0 | 210 | 230 | 250 | 400 | 520 | 0.4 |" in text  # the exploration table
    for name in ("learning_curves.png", "aggregate.png", "runs.csv", "agents.csv"):
        assert (out / name).stat().st_size > 100, name


def test_iqm_interval_contains_the_point_and_trims_outliers():
    import numpy as np

    from experiments.compare import iqm_with_ci

    groups = [np.array([0.1, 0.2, 0.3, 100.0]), np.array([0.2, 0.25, 0.3, -50.0])]
    point, low, high = iqm_with_ci(groups, reps=500)
    assert low <= point <= high
    assert 0.1 < point < 0.35  # the outliers are trimmed


def test_a_running_run_with_a_stale_heartbeat_is_shown_as_probably_dead():
    import datetime

    from experiments.compare import run_status

    now = datetime.datetime(2026, 1, 1, 12, 0, 0)
    fresh = {"status": "RUNNING", "heartbeat": "2026-01-01T11:59:50.000000"}
    stale = {"status": "RUNNING", "heartbeat": "2026-01-01T11:30:00.000000"}
    assert run_status(fresh, now) == "RUNNING"
    assert run_status(stale, now) == "PROBABLY_DEAD"
    assert run_status({"status": "COMPLETED", "heartbeat": "2026-01-01T11:30:00"}, now) == "COMPLETED"


def test_unreadable_run_records_are_shown_with_a_warning_never_dropped_or_a_crash(tmp_path, caplog):
    runs = tmp_path / "runs"
    _write_run(runs, 1, "train_permakey", "COMPLETED")
    _write_run(runs, 2, "train_permakey", "COMPLETED")
    (runs / "2" / "run.json").write_text('{"experiment": {"name": "train_perm')  # truncated
    _write_run(runs, 3, "train_permakey", "COMPLETED")
    (runs / "3" / "run.json").write_text("[]")

    from experiments import compare

    compare.ex.observers[:] = [FileStorageObserver(str(tmp_path / "compare_runs"))]
    out = tmp_path / "report"
    with caplog.at_level(logging.WARNING):
        run = compare.ex.run(config_updates={"runs_dir": str(runs), "out": str(out), "bootstrap": 10})
    assert run.status == "COMPLETED" and run.result["runs"] == 3
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{runs / '2' / 'run.json'} is not valid JSON" in m and "UNREADABLE" in m for m in warned)
    assert any(f"{runs / '3' / 'run.json'} holds a JSON list, not a run record" in m for m in warned)
    text = (out / "compare.md").read_text()
    assert "| unknown | UNREADABLE | 2 |" in text
    assert "- run 2: " in text and "- run 3: " in text and "| train_permakey | COMPLETED | 1 |" in text


def test_agents_on_the_oracle_are_named_as_such_with_the_games_k():
    from experiments.compare import KIND_NAMES, _keypointer_facts

    assert _keypointer_facts("oracle", None, "ms_pacman") == ("oracle", 7)
    assert KIND_NAMES["oracle"] == "Oracle"


def test_the_atari100k_grid_shows_oracle_and_motion_agents_beside_the_papers_table1(tmp_path):
    runs = tmp_path / "runs"
    for i, (keypointer, score) in enumerate((("oracle", 2000.0), ("motion", 500.0)), start=1):
        _write_run(
            runs,
            i,
            "train_agent",
            "COMPLETED",
            tag=f"atari100k/quick/ms_pacman/{keypointer}/gnn-s0",
            config={"game": "ms_pacman", "keypointer": keypointer, "encoder": "gnn", "distractors": "none", "seed": 0},
            info={"test": {"agent": {"mean": score}, "random": {"mean": 300.0}}},
        )
    from experiments import compare

    ex = compare.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "compare_runs"))]
    out = tmp_path / "report"
    config = {"runs_dir": str(runs), "grid": "atari100k", "seeds": [0], "out": str(out), "bootstrap": 50}
    assert ex.run(config_updates=config).status == "COMPLETED"
    text = (out / "compare.md").read_text()
    assert "## table1" in text
    header = next(line for line in text.splitlines() if line.startswith("| game"))
    assert "Oracle+GNN (ours)" in header and "Motion+GNN (ours)" in header and "PKey+GNN (paper)" in header
    pacman = next(line for line in text.splitlines() if line.startswith("| ms_pacman"))
    assert "2000.0 [n=1]" in pacman and "500.0 [n=1]" in pacman and "906.3 (382.2)" in pacman
    seaquest = next(line for line in text.splitlines() if line.startswith("| seaquest"))
    assert seaquest.count("(seed 0: missing)") == 2  # the oracle's and the motion baseline's jobs, never dropped
    from experiments.compare import KIND_NAMES, _keypointer_facts

    assert _keypointer_facts("motion", None, "ms_pacman") == ("motion", 7) and KIND_NAMES["motion"] == "Motion"


def test_agent_runs_recorded_with_noise_are_read_as_distractors(tmp_path):
    """Runs recorded when the distractors' config key was `noise` count under `distractors`: Table 2's rows."""
    from experiments import compare

    runs = tmp_path / "runs"
    keypointer = _keypointer(tmp_path, "permakey")
    for run_id, config in ((1, {"noise": "both"}), (2, {"distractors": "both"}), (3, {})):
        config = {"game": "seaquest", "keypointer": keypointer, "encoder": "cnn", "seed": run_id, **config}
        info = {"test": {"agent": {"mean": 100.0 * run_id}, "random": {"mean": 10.0}}}
        _write_run(runs, run_id, "train_agent", "COMPLETED", config=config, info=info)
    loaded = compare.load_file_runs(runs)
    assert all("noise" not in config for config in loaded["config"])
    agents = compare.agent_table(loaded, str(runs))
    assert agents.set_index("id")["distractors"].to_dict() == {1: "both", 2: "both", 3: "none"}


def test_the_margin_over_random_is_in_units_of_the_spread_over_seeds_and_the_page_is_stamped(tmp_path):
    """Three oracle agents on pong scoring -15, -17, -19 beside a random -21: margin 4, sample spread 2, ratio 2 (short
    of the bar of 3); the page carries the date, the commit and the learning curves."""
    runs = tmp_path / "runs"
    for seed, score in enumerate((-15.0, -17.0, -19.0)):
        _write_run(
            runs,
            seed + 1,
            "train_agent",
            "COMPLETED",
            config={"game": "pong", "keypointer": "oracle", "encoder": "gnn", "seed": seed, "preset": "cpu"},
            info={"test": {"agent": {"mean": score}, "random": {"mean": -21.0}}},
            metrics={"validation.score": {"steps": [10, 20], "values": [-21.0, score]}},
        )
        run = json.loads((runs / str(seed + 1) / "run.json").read_text())
        run |= {"start_time": "2026-12-07T01:00:00", "stop_time": f"2026-12-07T01:{10 * (seed + 1)}:00"}
        (runs / str(seed + 1) / "run.json").write_text(json.dumps(run))
    from experiments import compare

    margins = compare.margin_table(compare.agent_table(compare.load_file_runs(runs)))
    row = margins.iloc[0]
    assert (row["game"], row["method"], row["preset"], row["seeds"]) == ("pong", "Oracle+GNN", "cpu", "0, 1, 2")
    assert row["margin"] == pytest.approx(4.0) and row["spread"] == pytest.approx(2.0)
    assert row["margin / spread"] == pytest.approx(2.0) and row["minutes per run"] == pytest.approx(20.0)
    ex = compare.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "compare_runs"))]
    page = tmp_path / "docs" / "agents.md"
    config = {"runs_dir": str(runs), "out": str(tmp_path / "report"), "page": str(page), "bootstrap": 50}
    assert ex.run(config_updates=config).status == "COMPLETED"
    text = page.read_text()
    assert "Written by `python -m experiments.compare with runs_dir=" in text and " at commit " in text
    assert "| pong | Oracle+GNN | none | cpu | 0, 1, 2 | -15, -17, -19 | -17 | 2 | -21 | 4 | 2 | 20 |" in text
    assert (tmp_path / "docs" / "images" / "agents_learning_curves.png").stat().st_size > 0
    assert "](images/agents_learning_curves.png)" in text


def test_a_resumed_agent_runs_minutes_include_the_interrupted_runs_before_it(tmp_path):
    """The wall time of a training that was interrupted and resumed is the sum of its runs in that work folder; a run
    of another folder, or a completed one, is not added."""
    runs = tmp_path / "runs"
    times = {1: ("INTERRUPTED", "w/s0", 7), 2: ("INTERRUPTED", "w/s1", 5), 3: ("COMPLETED", "w/s0", 10)}
    times |= {4: ("INTERRUPTED", "w/s0", 100), 5: ("COMPLETED", "w/s1", 9)}  # run 4 came after run 3
    for run_id, (status, work, minutes) in times.items():
        config = {"game": "pong", "keypointer": "oracle", "encoder": "gnn", "seed": int(work[-1]), "work": work}
        _write_run(runs, run_id, "train_agent", status, config=config, info={"test": {"agent": {"mean": -20.0}}})
        run = json.loads((runs / str(run_id) / "run.json").read_text())
        stop = f"2026-12-07T{1 + minutes // 60:02d}:{minutes % 60:02d}:00"
        run |= {"start_time": "2026-12-07T01:00:00", "stop_time": stop}
        (runs / str(run_id) / "run.json").write_text(json.dumps(run))
    from experiments import compare

    agents = compare.agent_table(compare.load_file_runs(runs))
    assert dict(zip(agents.id, agents.minutes, strict=True)) == {3: pytest.approx(17.0), 5: pytest.approx(14.0)}
