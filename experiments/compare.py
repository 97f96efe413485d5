"""Compare recorded runs: `python -m experiments.compare with [runs_dir=runs] [grid=table1 preset=quick]`.

Loads every Sacred run of a FileStorage folder (or, with `mongo=True`, of MongoDB at MONGO_URL: the URL stays in the
environment, out of this run's record) into a pandas table of config,
status and results, and writes (into `out`, and as artifacts of this run):
  - compare.md: Tables 1-3 in the paper's layout (game x method, mean (std) over policies of each policy's median test
    score over seeds, PermaKey paper Appendix A.2.3), our numbers beside the published ones (docs/method.md section 5)
    and our random policy on the same seeds; the keypoint-quality table; the exploration table (explore runs: random
    options vs random actions, Transporter paper figure 7); an aggregate across games and seeds;
  - runs.csv (one row per run), agents.csv (one row per agent run);
  - learning_curves.png (validation score by agent step, per game and method, mean over seeds);
  - aggregate.png (interquartile mean of human-normalised test scores with 95% stratified-bootstrap intervals).
With `grid=`, every job of that grid appears: a job without a completed run is shown as missing, failed or
unfinished (running, interrupted or killed) with its run id, never silently dropped; `grid=atari100k` (the oracle's
and the motion baseline's agents) is shown in Table 1's layout beside the paper's Table 1.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from data.games import get_game
from data.storage import write_bytes_atomic
from experiments.common import check_mongo, experiment, masked_url, mongo_client, mongo_from_environment
from experiments.grid_runs import UnreadableRunFile, job_status, read_run_file, tagged_runs
from experiments.grids import expand
from training.checks import current_names
from training.keypointers import builtin_name, keypointer_folder
from training.tables import markdown_table
from training.workspace import Workspace

ex = experiment("compare", __doc__)
log = logging.getLogger(__name__)

# PermaKey paper, Tables 1-3 (docs/method.md section 5): mean (std) over 3 policies; None where the paper gives no std.
PUBLISHED: dict[str, dict[tuple[str, str], tuple[float | None, float | None]]] = {
    "table1": {
        ("battlezone", "PKey+CNN"): (10266.7, 3272.1),
        ("battlezone", "PKey+GNN"): (12566.7, 3297.9),
        ("battlezone", "Transporter+CNN"): (None, None),  # "N/A": no progress over random
        ("ms_pacman", "PKey+CNN"): (1038.5, 417.1),
        ("ms_pacman", "PKey+GNN"): (906.3, 382.2),
        ("ms_pacman", "Transporter+CNN"): (983.0, 806.3),
        ("ms_pacman", "Transporter+GNN"): (838.3, None),
        ("seaquest", "PKey+CNN"): (520.0, 159.9),
        ("seaquest", "PKey+GNN"): (375.3, None),
        ("seaquest", "Transporter+CNN"): (455.3, 160.6),
        ("seaquest", "Transporter+GNN"): (296.0, None),
        ("frostbite", "PKey+CNN"): (310.7, 150.1),
        ("frostbite", "PKey+GNN"): (657.3, 556.8),
        ("frostbite", "Transporter+CNN"): (263.7, None),
        ("frostbite", "Transporter+GNN"): (465.0, None),
    },
    "table2": {
        ("seaquest", "Transporter+CNN"): (357.3, 99.10),
        ("seaquest", "PKey+CNN"): (562.0, 114.78),
        ("ms_pacman", "Transporter+CNN"): (470.0, None),  # the std is illegible in our copy of the paper
        ("ms_pacman", "PKey+CNN"): (574.7, 290.07),
    },
    "table3": {
        ("K=5", "Transporter+CNN"): (923.0, 433.95),
        ("K=7", "Transporter+CNN"): (983.0, 806.3),
        ("K=10", "Transporter+CNN"): (907.0, 317.41),
        ("K=5", "PKey+CNN"): (1004.3, 319.15),
        ("K=7", "PKey+CNN"): (1038.5, 417.1),
        ("K=10", "PKey+CNN"): (1003.3, 313.57),
    },
}

# Human and random reference scores (Mnih et al. 2015, as tabulated by Badia et al. 2020); the random ones agree
# with docs/method.md section 5. Used only to normalise scores across games for the aggregate.
HUMAN_RANDOM = {
    "battlezone": (37187.5, 2360.0),
    "ms_pacman": (6951.6, 307.3),
    "seaquest": (42054.7, 68.4),
    "frostbite": (4334.7, 65.2),
    "pong": (14.6, -20.7),
    "breakout": (30.5, 1.7),
}

KIND_NAMES = {"permakey": "PKey", "transporter": "Transporter", "oracle": "Oracle", "motion": "Motion"}
PUBLISHED_BESIDE = {"atari100k": "table1"}
"""Grids without a table of their own, shown in the layout and beside the published numbers of a paper's table: the
oracle's and the motion baseline's agents (experiments/grids.py atari100k) beside Table 1."""


@ex.config
def config():
    runs_dir = str(Workspace.here().runs)  # a Sacred FileStorage folder
    mongo = False  # or the runs in MongoDB at MONGO_URL (database MONGO_DB), the many-machine option
    grid = ""  # table1 / table2 / table3 / keypoints / atari100k: show every job of the grid, missing ones included
    preset = "quick"
    seeds = [0, 1, 2]
    out = "reports/compare"
    page = ""  # also write the report as this markdown page (e.g. docs/agents_cpu.md), its learning curves beside it
    bootstrap = 2000


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


STALE_HEARTBEAT_S = 300
"""Sacred beats every 10 s: a RUNNING run silent for longer than this was killed without saying so."""


def run_minutes(run: dict) -> float | None:
    """Wall minutes from the run's start to its stop (None while it has not stopped)."""
    start, stop = run.get("start_time"), run.get("stop_time")
    if not start or not stop:
        return None
    start, stop = (datetime.datetime.fromisoformat(t) if isinstance(t, str) else t for t in (start, stop))
    return (stop - start).total_seconds() / 60


def run_status(run: dict, now: datetime.datetime | None = None) -> str:
    """The run's Sacred status, with a RUNNING run whose heartbeat (UTC) is stale shown as PROBABLY_DEAD."""
    status = str(run.get("status"))
    beat = run.get("heartbeat") or run.get("start_time")  # killed before its first beat: its start
    if status == "RUNNING" and beat:
        if isinstance(beat, str):
            beat = datetime.datetime.fromisoformat(beat)
        now = now or datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        if (now - beat.replace(tzinfo=None)).total_seconds() > STALE_HEARTBEAT_S:
            return "PROBABLY_DEAD"
    return status


RUN_COLUMNS = ["id", "experiment", "status", "tag", "config", "result", "info", "metrics", "problem", "minutes"]
UNREADABLE = "UNREADABLE"
"""The status of a run whose run.json cannot be read."""


def load_file_runs(runs_dir: str | Path) -> pd.DataFrame:
    """One row per run: id, experiment, status, tag (Sacred comment), config, result, info, metrics (dicts), and the
    problem of an unreadable record (status UNREADABLE, with a warning naming the file), never left out."""
    root = Path(runs_dir)
    folders = sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return pd.DataFrame([_file_run(folder) for folder in folders], columns=RUN_COLUMNS)


def _file_run(folder: Path) -> dict[str, Any]:
    """One run folder's row (load_file_runs)."""
    try:
        run = read_run_file(folder / "run.json")
    except UnreadableRunFile as e:
        log.warning("%s; the run is shown as %s", e, UNREADABLE)
        row: dict[str, Any] = {"id": int(folder.name), "experiment": "unknown", "status": UNREADABLE, "tag": None}
        return row | {"config": {}, "result": None, "info": {}, "metrics": {}, "problem": str(e), "minutes": None}
    return {
        "id": int(folder.name),
        "experiment": (run.get("experiment") or {}).get("name"),
        "status": run_status(run),
        "tag": (run.get("meta") or {}).get("comment"),
        "config": current_names(_optional_run_file(folder / "config.json")),  # an older run's `noise`: `distractors`
        "result": run.get("result"),
        "info": _optional_run_file(folder / "info.json"),
        "metrics": _optional_run_file(folder / "metrics.json"),
        "problem": None,
        "minutes": run_minutes(run),
    }


def _optional_run_file(path: Path) -> dict[str, Any]:
    """A run file Sacred writes only when it has something (info, metrics): {} when missing, and when unreadable, with
    a warning naming the file."""
    if not path.exists():
        return {}
    try:
        return read_run_file(path)
    except UnreadableRunFile as e:
        log.warning("%s; the run is shown without it", e)
        return {}


def load_mongo_runs(url: str, db: str) -> pd.DataFrame:
    """The runs of database `db` at MongoDB `url`, as load_file_runs gives them; an error naming the (masked) URL
    when the server is unreachable."""
    client = mongo_client(url)
    check_mongo(client, url)
    database: Any = client[db]
    rows = []
    for run in database.runs.find():
        metrics = {
            m["name"]: {"steps": m["steps"], "values": m["values"]}
            for m in database.metrics.find({"run_id": run["_id"]})
        }
        rows.append(
            {
                "id": run["_id"],
                "experiment": run.get("experiment", {}).get("name"),
                "status": run_status(run),
                "tag": (run.get("meta") or {}).get("comment"),
                "config": current_names(run.get("config", {})),
                "result": run.get("result"),
                "info": run.get("info", {}),
                "metrics": metrics,
                "problem": None,
                "minutes": run_minutes(run),
            }
        )
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _keypointer_facts(keypointer: Any, runs_dir: str | None, game: str | None = None) -> tuple[str, int | None]:
    """(kind, K) of an agent's keypointer, given as a run id (in runs_dir), a folder, `oracle` (the game's ground
    truth) or `motion` (the game's motion baseline), K the game's for the last two."""
    name = builtin_name(keypointer)
    if name:
        return name, get_game(game).num_keypoints if game else None
    try:
        folder = keypointer_folder(str(keypointer), runs_dir)
    except FileNotFoundError:
        return "unknown", None
    saved = _read_json(folder / "keypointer.json") or {}
    return saved.get("kind", "unknown"), (saved.get("config") or {}).get("num_keypoints")


def training_minutes(runs: pd.DataFrame, r: Any) -> float | None:
    """The wall minutes of completed run `r` with those of the runs that trained in its work folder before it and did
    not complete (interrupted or failed, then resumed by `r`): the training's whole time. A run killed without a stop
    time adds nothing, so the sum is then a lower bound."""
    work = (r.config or {}).get("work")
    if r.minutes is None or pd.isna(r.minutes) or not work:
        return r.minutes
    earlier = runs[(runs.experiment == r.experiment) & (runs.id < r.id) & (runs.status != "COMPLETED")]
    resumed = [m for c, m in zip(earlier.config, earlier.minutes, strict=True) if (c or {}).get("work") == work]
    return r.minutes + sum(m for m in resumed if m is not None and not pd.isna(m))


def agent_table(runs: pd.DataFrame, runs_dir: str | None = None) -> pd.DataFrame:
    """One row per completed train_agent run: game, method, distractors, K, seed, test scores, tag, and its wall
    minutes (training_minutes: a resumed run's include the interrupted runs before it)."""
    rows = []
    for _, r in runs[(runs.experiment == "train_agent") & (runs.status == "COMPLETED")].iterrows():
        c, test = r["config"], (r["info"] or {}).get("test", {})
        kind, k = _keypointer_facts(c.get("keypointer", ""), runs_dir, c.get("game"))
        rows.append(
            {
                "id": r.id,
                "tag": r.tag,
                "game": c.get("game"),
                "method": f"{KIND_NAMES.get(kind, kind)}+{str(c.get('encoder', '?')).upper()}",
                "distractors": c.get("distractors", "none"),
                "K": k,
                "seed": c.get("seed"),
                "steps": c.get("steps"),
                "score": (test.get("agent") or {}).get("mean"),
                "random": (test.get("random") or {}).get("mean"),
                "preset": c.get("preset"),
                "minutes": training_minutes(runs, r),
            }
        )
    columns = [
        "id",
        "tag",
        "game",
        "method",
        "distractors",
        "K",
        "seed",
        "steps",
        "score",
        "random",
        "preset",
        "minutes",
    ]
    return pd.DataFrame(rows, columns=columns)


def _cell(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "-"
    std = f" ({values.std(ddof=0):.1f})" if len(values) > 1 else ""
    return f"{values.mean():.1f}{std} [n={len(values)}]"


def _published(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "N/A"
    return f"{mean:.1f}" + (f" ({std:.1f})" if std is not None else "")


def score_table(agents: pd.DataFrame, table: str, missing: dict[tuple[str, str], list[str]]) -> pd.DataFrame:
    """Rows (game or K) x methods: ours, published, and our random policy; `missing` adds the jobs without a
    completed run to their cell."""
    key = "K" if table == "table3" else "game"
    frame = agents.copy()
    if table == "table3":
        frame["K"] = frame["K"].map(lambda k: f"K={k}")
    published = PUBLISHED.get(table, {})
    rows = sorted(
        {k for k, _ in published} | set(frame[key].dropna()) | {k for k, _ in missing},
        key=lambda k: (len(k), k),  # K=5, K=7, K=10; game names alphabetically within a length
    )
    methods = sorted({m for _, m in published} | set(frame["method"]) | {m for _, m in missing})
    out = []
    for row in rows:
        line: dict[str, Any] = {key: row}
        mine = frame[frame[key] == row]
        for method in methods:
            cell = _cell(mine[mine["method"] == method]["score"])
            if (row, method) in missing:
                cell += " " + "; ".join(missing[(row, method)])
            line[f"{method} (ours)"] = cell
            known = (row, method) in published
            line[f"{method} (paper)"] = _published(*published[(row, method)]) if known else ""
        line["random (ours)"] = _cell(mine.drop_duplicates("seed")["random"]) if len(mine) else "-"
        out.append(line)
    return pd.DataFrame(out)


def margin_table(agents: pd.DataFrame) -> pd.DataFrame:
    """Per game, method, distractors and preset: how far the agents' mean test score is above the random policy's on
    the same test seeds, in units of the spread of the agents' scores over training seeds (sample std): "beats random
    by at least 3 times the seed spread" is `margin / spread >= 3`. Also the runs' wall minutes."""
    rows = []
    for (game, method, distractors, preset), mine in agents.groupby(
        ["game", "method", "distractors", "preset"], dropna=False
    ):
        mine = mine.sort_values("seed")  # scores listed in the order of their seeds
        scores, random = mine["score"].dropna(), mine.drop_duplicates("seed")["random"].dropna()
        spread = scores.std(ddof=1) if len(scores) > 1 else np.nan
        margin = scores.mean() - random.mean() if len(scores) and len(random) else np.nan
        rows.append(
            {
                "game": game,
                "method": method,
                "distractors": distractors,
                "preset": preset,
                "seeds": ", ".join(str(v) for v in sorted(mine["seed"].dropna().astype(int))),
                "scores": ", ".join(f"{v:g}" for v in scores),
                "mean": scores.mean(),
                "spread": spread,
                "random": random.mean(),
                "margin": margin,
                "margin / spread": margin / spread if spread and np.isfinite(spread) else np.nan,
                "minutes per run": mine["minutes"].mean(),
            }
        )
    return pd.DataFrame(rows)


def grid_gaps(runs_dir: str, grid: str, preset: str, seeds: list[int]) -> dict[tuple[str, str], list[str]]:
    """For each agent job of the grid without a completed run: '(seed s: missing | failed run N | ...)' by cell."""
    found = tagged_runs(runs_dir)
    gaps: dict[tuple[str, str], list[str]] = {}
    for job in expand(grid, preset, seeds):
        if job.experiment != "train_agent":
            continue
        status, run_id = job_status(job, found)
        if status == "completed":
            continue
        s = job.settings
        kind = builtin_name(s["keypointer"]) or ("permakey" if "/permakey" in job.name else "transporter")
        row = s["game"] if grid != "table3" else "K=" + job.name.split("-k")[1].split("/")[0]
        method = f"{KIND_NAMES[kind]}+{s['encoder'].upper()}"
        gaps.setdefault((row, method), []).append(
            f"(seed {s['seed']}: {status}{f' run {run_id}' if run_id is not None else ''})"
        )
    return gaps


def human_normalised(agents: pd.DataFrame) -> pd.DataFrame:
    frame = agents[agents["game"].isin(list(HUMAN_RANDOM)) & agents["score"].notna()].copy()
    human = frame["game"].map(lambda g: HUMAN_RANDOM[g][0])
    random = frame["game"].map(lambda g: HUMAN_RANDOM[g][1])
    frame["normalised"] = (frame["score"] - random) / (human - random)
    return frame


def iqm_with_ci(groups: list[np.ndarray], reps: int, seed: int = 0) -> tuple[float, float, float]:
    """Interquartile mean over all runs, with a 95% stratified bootstrap interval (runs resampled within each game)."""
    everything = np.concatenate(groups)
    point = float(stats.trim_mean(everything, 0.25))
    rng = np.random.default_rng(seed)
    samples = [
        stats.trim_mean(np.concatenate([g[rng.integers(len(g), size=len(g))] for g in groups]), 0.25)
        for _ in range(reps)
    ]
    low, high = np.percentile(samples, [2.5, 97.5])
    return point, float(low), float(high)


def aggregate(agents: pd.DataFrame, reps: int) -> pd.DataFrame:
    frame = human_normalised(agents)
    rows = []
    for method, mine in frame.groupby("method"):
        groups = [g["normalised"].to_numpy() for _, g in mine.groupby("game")]
        point, low, high = iqm_with_ci(groups, reps)
        rows.append({"method": method, "runs": len(mine), "games": len(groups), "IQM": point, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["method", "runs", "games", "IQM", "low", "high"])


def keypoint_table(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in runs[(runs.experiment == "eval_keypoints") & (runs.status == "COMPLETED")].iterrows():
        for name, value in (r["result"] or {}).items():
            model, distractors, measure = name.split("/")
            metric, length = measure.split("@")
            rows.append(
                {
                    "run": r.id,
                    "game": r["config"].get("game"),
                    "model": model,
                    "distractors": distractors,
                    "L": int(length),
                    metric: value,
                }
            )
    if not rows:
        return pd.DataFrame(columns=["run", "game", "model", "distractors", "L", "precision", "recall"])
    frame = pd.DataFrame(rows)
    return frame.groupby(["run", "game", "model", "distractors", "L"], as_index=False).first()


def exploration_table(runs: pd.DataFrame, runs_dir: str | None = None) -> pd.DataFrame:
    """One row per completed explore run (Transporter paper, figure 7): game, keypointer, seed, the mean episodic return
    of random actions, of a random action held for T steps and of random options at the same frame budget, the 90th
    percentiles of random actions and options, and how often the most controllable keypoint was on the player."""
    rows = []
    for _, r in runs[(runs.experiment == "explore") & (runs.status == "COMPLETED")].iterrows():
        c, info = r["config"], r["info"] or {}
        returns = (info.get("exploration") or {}).get("returns", {})
        kind, _ = _keypointer_facts(c.get("keypointer", ""), runs_dir)
        actions, options = returns.get("random actions", {}), returns.get("random options", {})
        repeated = returns.get("repeated random actions", {})
        rows.append(
            {
                "id": r.id,
                "game": c.get("game"),
                "keypointer": KIND_NAMES.get(kind, kind),
                "seed": c.get("seed"),
                "actions mean": actions.get("mean"),
                "repeated mean": repeated.get("mean"),
                "options mean": options.get("mean"),
                "actions p90": actions.get("p90"),
                "options p90": options.get("p90"),
                "avatar": (info.get("avatar") or {}).get("most_controllable"),
            }
        )
    columns = ["id", "game", "keypointer", "seed", "actions mean", "repeated mean", "options mean"]
    return pd.DataFrame(rows, columns=[*columns, "actions p90", "options p90", "avatar"])


def plot_learning_curves(runs: pd.DataFrame, agents: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = sorted(agents["game"].dropna().unique()) or ["(no agent runs)"]
    fig, axes = plt.subplots(1, len(games), figsize=(4.5 * len(games), 3.4), squeeze=False)
    metrics = runs.set_index("id")["metrics"]
    for ax, game in zip(axes[0], games, strict=True):
        for method, mine in agents[agents["game"] == game].groupby("method"):
            curves = [metrics[i].get("validation.score") for i in mine["id"]]
            curves = [c for c in curves if c]
            if not curves:
                continue
            steps = sorted({s for c in curves for s in c["steps"]})
            values = [[dict(zip(c["steps"], c["values"], strict=True)).get(s, np.nan) for s in steps] for c in curves]
            ax.plot(steps, np.nanmean(np.array(values, float), axis=0), "o-", label=f"{method} (n={len(curves)})")
        ax.set(title=game, xlabel="agent step", ylabel="validation score")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_aggregate(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 0.5 + 0.5 * max(1, len(table))))
    for i, r in enumerate(table.itertuples()):
        ax.errorbar(r.IQM, i, xerr=[[r.IQM - r.low], [r.high - r.IQM]], fmt="o", capsize=4)
    ax.set_yticks(range(len(table)), list(table["method"]))
    ax.set(xlabel="IQM human-normalised test score (95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def mongo_source() -> str:
    """The MongoDB database the runs are read from, `<MONGO_DB> at <MONGO_URL with its password masked>`."""
    url, db = mongo_from_environment()
    return f"{db} at {masked_url(url)}"


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    """What the comparison reads and shows: runs from `runs_dir` (or, when `mongo` names it, MongoDB), a `grid`'s
    jobs (with its `preset` and `seeds`) when one is given, and a `bootstrap`-sample confidence interval for the
    aggregate."""

    runs_dir: str
    mongo: str
    """Where in MongoDB the runs come from, its password masked; empty for `runs_dir`."""
    grid: str
    preset: str
    seeds: tuple[int, ...]
    bootstrap: int

    @classmethod
    def from_config(cls, c: dict) -> ReportSettings:
        return cls(
            c["runs_dir"],
            mongo_source() if c["mongo"] else "",
            c["grid"],
            c["preset"],
            tuple(c["seeds"]),
            c["bootstrap"],
        )


def report(runs: pd.DataFrame, settings: ReportSettings) -> tuple[str, dict[str, pd.DataFrame]]:
    s = settings
    agents = agent_table(runs, None if s.mongo else s.runs_dir)
    if s.grid:
        agents = agents[agents["tag"].fillna("").str.startswith(s.grid + "/")]
    tables = {}
    lines = [f"# Comparison of {len(runs)} runs ({s.mongo or s.runs_dir})", ""]
    status = runs.groupby(["experiment", "status"]).size().rename("runs").reset_index()
    lines += ["## Runs by experiment and status", "", markdown_table(status), ""]
    unreadable = runs[runs["status"] == UNREADABLE]
    if len(unreadable):
        lines += ["## Unreadable run records", "", *[f"- run {r.id}: {r.problem}" for r in unreadable.itertuples()], ""]
    shown = PUBLISHED_BESIDE.get(s.grid, s.grid)
    wanted = [shown] if shown in PUBLISHED else (list(PUBLISHED) if not s.grid else [])
    for table in wanted:
        gaps = grid_gaps(s.runs_dir, s.grid, s.preset, list(s.seeds)) if s.grid else {}
        if table == "table1":
            mine = agents[agents["distractors"] == "none"]
        elif table == "table2":
            mine = agents[agents["distractors"] != "none"]
        else:
            mine = agents[(agents["game"] == "ms_pacman") & agents["K"].notna()]
        tables[table] = score_table(mine, table, gaps)
        lines += [
            f"## {table}: test score, mean (std) over policies [n policies]",
            "",
            markdown_table(tables[table]),
            "",
        ]
    tables["margins"] = margin_table(agents) if len(agents) else pd.DataFrame()
    if len(tables["margins"]):
        lines += [
            "## Agents against the random policy: margin in units of the spread over training seeds",
            "",
            markdown_table(tables["margins"]),
            "",
        ]
    keypoints = keypoint_table(runs)
    tables["keypoints"] = keypoints
    if len(keypoints):
        lines += ["## Keypoint tracking precision / recall", "", markdown_table(keypoints), ""]
    explore = exploration_table(runs, None if s.mongo else s.runs_dir)
    tables["exploration"] = explore
    if len(explore):
        lines += [
            "## Exploration with keypoint options: episodic return at the same frame budget (Transporter figure 7)",
            "",
            markdown_table(explore),
            "",
        ]
    tables["aggregate"] = aggregate(agents, s.bootstrap) if len(agents) else pd.DataFrame()
    if len(tables["aggregate"]):
        lines += [
            "## Aggregate: IQM of human-normalised test scores (95% stratified bootstrap CI)",
            "",
            markdown_table(tables["aggregate"]),
            "",
        ]
    tables["agents"] = agents
    return "\n".join(lines), tables


def write_page(page: Path, text: str, curves: Path, command: str) -> None:
    """The report as a markdown page stamped with the date and commit it was made at, its learning curves saved as
    images/<page name>_learning_curves.png beside it and shown; each file written whole or not at all."""
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    stamp = (
        f"Written by `{command}` on {datetime.date.today().isoformat()}"
        f" at commit {commit.stdout.strip() or 'unknown'}."
    )
    image = page.parent / "images" / f"{page.stem}_learning_curves.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    lines = text.split("\n")
    body = "\n".join([lines[0], "", stamp, *lines[1:]])
    body += f"\n## Learning curves (validation score, mean over seeds)\n\n![learning curves](images/{image.name})\n"
    write_bytes_atomic(image, curves.read_bytes())
    write_bytes_atomic(page, body.encode())


@ex.automain
def main(_config, _run):
    c = _config
    settings = ReportSettings.from_config(c)
    runs = load_mongo_runs(*mongo_from_environment()) if c["mongo"] else load_file_runs(c["runs_dir"])
    runs = runs[runs.experiment != "compare"]
    if runs.empty:
        raise ValueError(f"No runs found in {settings.mongo or c['runs_dir']}: run some experiments first.")
    text, tables = report(runs, settings)
    out = Path(c["out"])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "compare.md").write_text(text)
        runs.drop(columns=["metrics"]).to_csv(folder / "runs.csv", index=False)
        tables["agents"].to_csv(folder / "agents.csv", index=False)
        plot_learning_curves(runs, tables["agents"], folder / "learning_curves.png")
        if len(tables["aggregate"]):
            plot_aggregate(tables["aggregate"], folder / "aggregate.png")
        for path in sorted(folder.iterdir()):
            _run.add_artifact(str(path))
            (out / path.name).write_bytes(path.read_bytes())
        if c["page"]:
            command = f"python -m experiments.compare with runs_dir={c['runs_dir']} page={c['page']}"
            command += f" grid={c['grid']} preset={c['preset']}" if c["grid"] else ""
            write_page(Path(c["page"]), text, folder / "learning_curves.png", command)
    return {"runs": len(runs), "agent_runs": len(tables["agents"])}
