"""The paper's test protocol over trained agents: `python -m experiments.evaluate_agent with 'runs=[21,22,23]'`
(`make evaluate-agent RUNS=21,22,23`, or its older name `make test-agent`).

PermaKey paper, Appendix A.2.3: the best checkpointed policy of each run (3 runs in the paper) plays `episodes` greedy
episodes on each of `seeds` unseen test seeds; reported: mean (std) over policies of the median over seeds of the
mean over a seed's episodes (rl/evaluation.py), next to the random policy on the same seeds. Every run must be of
the same game and distractors. info.json's `keypointers` says, per run, which keypointer it saw through and whether
that was the ground truth (`keypointer=oracle`). Artifacts: test_scores.csv (every episode) and test.md.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from data.atari import MAX_EPISODE_FRAMES
from experiments.common import experiment
from rl.actor import QPolicy, RandomPolicy
from rl.envs import make_agent_env
from rl.evaluation import protocol_summary
from training.agents import agent_env, load_agent
from training.keypointers import describe_keypointer
from training.precision import detect_precision
from training.scoring import TEST_SEED, capped, score_policies

ex = experiment("evaluate_agent", __doc__)
EXPERIMENT_NAMES = ("evaluate_agent", "test_agent")
"""The Sacred experiment names of this experiment's runs (run.json's experiment.name): runs recorded before the module
was renamed from experiments/test_agent.py say test_agent. Nothing selects runs by this name today (compare reads
train_agent, eval_keypoints and explore runs); whatever comes to must take both."""


@ex.config
def config():
    runs = []  # agent runs (ids under runs/, or folders holding agent.json): one policy each
    seeds = 10
    episodes = 10
    max_episode_frames = MAX_EPISODE_FRAMES
    random_baseline = True
    precision = "auto"  # the frozen keypointers' compute precision (training/precision.py); networks stay float32
    progress = True


def reproducing_command(c: dict) -> str:
    """The command that repeats this evaluation: run ids bare, folders quoted, and the protocol's sizes."""
    runs = ",".join(str(r) if str(r).isdigit() else json.dumps(str(r)) for r in c["runs"])
    return (
        f"python -m experiments.evaluate_agent with 'runs=[{runs}]' seeds={c['seeds']} episodes={c['episodes']} "
        f"max_episode_frames={c['max_episode_frames']}"
    )


def summary_markdown(summaries: dict[str, dict], command: str, seeds: int, episodes: int) -> str:
    lines = [
        f"Test protocol: {seeds} unseen seeds x {episodes} episodes, greedy; score = mean (std) over policies of the "
        "median over seeds of the mean over episodes.",
        "",
        "| policies | score | per-policy medians | episodes ended by the frame cap |",
        "|---|---|---|---|",
    ]
    for name, s in summaries.items():
        medians = ", ".join(f"{m:.1f}" for m in s["medians"])
        lines.append(f"| {name} | {s['mean']:.1f} ({s['std']:.1f}) | {medians} | {s['truncated_share']:.0%} |")
    return "\n".join(lines + ["", f"Command: `{command}`", ""])


@ex.automain
def main(_config, _run):
    c = _config
    if not c["runs"]:
        raise ValueError("No agents given: pass runs=[<train_agent run id or folder>, ...] (one policy per run).")
    policy, reason = detect_precision(c["precision"])
    _run.info["precision"] = {"policy": policy, "reason": reason, "applies_to": "the frozen keypointers"}
    agents = [load_agent(run, policy=policy) for run in c["runs"]]
    _run.info["keypointers"] = [describe_keypointer(keypointer) for _, _, keypointer in agents]
    games = {(info["game"], info["distractors"]) for info, _, _ in agents}
    if len(games) != 1:
        raise ValueError(f"The runs mix games or distractors {sorted(games)}: test one game and distractors at a time.")
    game, distractors = games.pop()
    seeds = [TEST_SEED + i for i in range(c["seeds"])]
    arrays, tables = [], []
    for i, (_, network, keypointer) in enumerate(agents):
        env = agent_env(
            game, keypointer, network, train=False, distractors=distractors, max_episode_frames=c["max_episode_frames"]
        )
        table, scores = score_policies(
            {f"agent{i}": QPolicy(network, epsilon=0.0, seed=0)},
            {f"agent{i}": env},
            seeds,
            c["episodes"],
            c["progress"],
        )
        tables.append(table.assign(run=str(c["runs"][i])))
        arrays.append(scores[0])
    summaries = {"agents": protocol_summary(np.stack(arrays)) | capped(pd.concat(tables))}
    if c["random_baseline"]:
        plain = make_agent_env(game, train=False, distractors=distractors, max_episode_frames=c["max_episode_frames"])
        num_actions = int(plain.action_space.n)  # type: ignore[attr-defined]
        table, scores = score_policies(
            {"random": RandomPolicy(num_actions, seed=0)}, {"random": plain}, seeds, c["episodes"], c["progress"]
        )
        tables.append(table.assign(run="random"))
        summaries["random"] = protocol_summary(scores) | capped(table)
    for name, s in summaries.items():
        _run.log_scalar(f"test.{name}.mean", s["mean"])
        _run.log_scalar(f"test.{name}.std", s["std"])
    _run.info["test"] = summaries
    command = reproducing_command(c)
    with tempfile.TemporaryDirectory() as tmp:
        pd.concat(tables).to_csv(Path(tmp) / "test_scores.csv", index=False)
        (Path(tmp) / "test.md").write_text(summary_markdown(summaries, command, c["seeds"], c["episodes"]))
        for name in ("test_scores.csv", "test.md"):
            _run.add_artifact(str(Path(tmp) / name))
    return {name: s["mean"] for name, s in summaries.items()}
