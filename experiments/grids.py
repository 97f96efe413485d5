"""The grids of the papers' tables, as jobs (PermaKey paper, section 5, Tables 1-3; docs/method.md section 5).

A job is one Sacred run of one experiment: its module, named configs (the preset), config updates, the jobs it
depends on, and a tag (`<grid>/<preset>/<job name>`) passed as the run's Sacred comment, by which the runner recognises
its runs (experiments/run_grid.py), a quick run never standing for a paper one. Each job works in its own folder
work/grid/<preset>/<job name>, so a keypointer job's result is known before it runs (<work>/best) and agent jobs can
name it.

Grids:
  table1     games battlezone, ms_pacman, seaquest, frostbite x keypointers permakey, transporter x encoders cnn, gnn
             x seeds (each game's keypointers trained once and shared by its agents);
  table2     Noisy Atari: seaquest and ms_pacman with distractor bars, PKey + CNN and Transporter + CNN;
  table3     the keypoint-count ablation on ms_pacman: K in {5, 7, 10}, PKey + CNN and Transporter + CNN;
  keypoints  the keypoint-quality evaluation (tracking precision/recall) of each game's table1 keypointers;
  explore    keypoint options for exploration (Transporter paper, section 4.2.2, figure 7): ms_pacman, seaquest and
             montezuma_revenge x keypointers permakey, transporter x seeds, random options vs random actions;
  atari100k  table1's games x seeds of GNN agents on the keypointers without training: the ground-truth oracle
             (keypoints/oracle.py, the ceiling) and the motion baseline (keypoints/motion_agent.py, the floor), which
             compare shows beside Table 1.
Transporter here is PermaKey's re-implementation (architecture pkey_reimpl), the baseline of Tables 1-3.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from data.games import get_game
from training.workspace import Workspace

TABLE1_GAMES = ("battlezone", "ms_pacman", "seaquest", "frostbite")
TABLE2_GAMES = ("seaquest", "ms_pacman")
TABLE3_KEYPOINTS = (5, 7, 10)
EXPLORE_GAMES = ("ms_pacman", "seaquest", "montezuma_revenge")
KEYPOINTERS = ("permakey", "transporter")
ENCODERS = ("cnn", "gnn")
BUILTIN_KEYPOINTERS = ("oracle", "motion")  # training.keypointers.BUILTIN: no keypointer job to train
# Table 2's distractor bars: "a coloured strip (either horizontal, vertical or both) at random locations" (PermaKey
# paper, 5.2).
TABLE2_DISTRACTORS = "both"


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    experiment: str
    config: tuple[tuple[str, Any], ...]
    named: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    grid: str = ""
    preset: str = ""

    @property
    def tag(self) -> str:
        """`<grid>/<preset>/<name>` (`<grid>/<name>` without a preset): the run's Sacred comment."""
        return "/".join(p for p in (self.grid, self.preset) if p) + f"/{self.name}"

    @property
    def legacy_tag(self) -> str:
        """The tag of this job's runs recorded before tags named the preset (`<grid>/<name>`)."""
        return f"{self.grid}/{self.name}"

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.config)

    def command(self, python: str = "python") -> list[str]:
        """The Sacred command line of this job (config values as Python literals)."""
        updates = [f"{k}={v!r}" for k, v in self.config]
        return [python, "-m", f"experiments.{self.experiment}", "with", *self.named, *updates, "--comment", self.tag]


def _work(preset: str, name: str) -> str:
    return Workspace.here().work_folder(f"grid/{preset}", name)


def _keypointer_job(
    grid: str, preset: str, game: str, kind: str, distractors: str = "none", k: int | None = None
) -> Job:
    # The job's name (its tag and work folder) holds the distractors' value, as it did when the key was `noise`.
    name = f"{game}/{kind}" + (f"-{distractors}" if distractors != "none" else "") + (f"-k{k}" if k is not None else "")
    config: dict[str, Any] = {"game": game, "distractors": distractors, "work": _work(preset, name)}
    if k is not None:
        config["num_keypoints"] = k
    if kind == "transporter":
        config["architecture"] = "pkey_reimpl"
    named = ("quick",) if preset == "quick" else ()
    experiment = "train_permakey" if kind == "permakey" else "train_transporter"
    return Job(name, experiment, tuple(sorted(config.items())), named, (), grid, preset)


def _agent_job(grid: str, preset: str, keypointer: Job, encoder: str, seed: int, distractors: str = "none") -> Job:
    name = f"{keypointer.name}/{encoder}-s{seed}"
    config = {
        "game": keypointer.settings["game"],
        "keypointer": keypointer.settings["work"] + "/best",
        "encoder": encoder,
        "distractors": distractors,
        "seed": seed,
        "work": _work(preset, name),
    }
    named = ("quick",) if preset == "quick" else ()
    return Job(name, "train_agent", tuple(sorted(config.items())), named, (keypointer.name,), grid, preset)


def table1(preset: str, seeds: Sequence[int], games: Sequence[str] = TABLE1_GAMES) -> list[Job]:
    jobs = []
    for game in games:
        keypointers = [_keypointer_job("table1", preset, game, kind) for kind in KEYPOINTERS]
        jobs += keypointers
        jobs += [_agent_job("table1", preset, kp, e, s) for kp in keypointers for e in ENCODERS for s in seeds]
    return jobs


def table2(preset: str, seeds: Sequence[int], games: Sequence[str] = TABLE2_GAMES) -> list[Job]:
    jobs = []
    for game in games:
        bars = TABLE2_DISTRACTORS
        keypointers = [_keypointer_job("table2", preset, game, kind, distractors=bars) for kind in KEYPOINTERS]
        jobs += keypointers
        jobs += [_agent_job("table2", preset, kp, "cnn", s, distractors=bars) for kp in keypointers for s in seeds]
    return jobs


def table3(preset: str, seeds: Sequence[int], keypoints: Sequence[int] = TABLE3_KEYPOINTS) -> list[Job]:
    jobs = []
    for k in keypoints:
        keypointers = [_keypointer_job("table3", preset, "ms_pacman", kind, k=k) for kind in KEYPOINTERS]
        jobs += keypointers
        jobs += [_agent_job("table3", preset, kp, "cnn", s) for kp in keypointers for s in seeds]
    return jobs


def keypoints(preset: str, seeds: Sequence[int], games: Sequence[str] = TABLE1_GAMES) -> list[Job]:
    """Each game's table1 keypointers, trained here (the same work folders, so table1 reuses them), then evaluated."""
    jobs = []
    for game in games:
        keypointers = [_keypointer_job("keypoints", preset, game, kind) for kind in KEYPOINTERS]
        config: dict[str, Any] = {
            "game": game,
            "runs": [kp.settings["work"] + "/best" for kp in keypointers],
            "labels": list(KEYPOINTERS),
        }
        if preset == "quick":
            config["frames"] = 500
        evaluation = Job(
            f"{game}/eval",
            "eval_keypoints",
            tuple(sorted(config.items())),
            (),
            tuple(kp.name for kp in keypointers),
            "keypoints",
            preset,
        )
        jobs += [*keypointers, evaluation]
    return jobs


def explore(preset: str, seeds: Sequence[int], games: Sequence[str] = EXPLORE_GAMES) -> list[Job]:
    """Each game's keypointers (the table1 work folders: shared with it), then one explore run per keypointer and
    seed."""
    jobs = []
    named = ("quick",) if preset == "quick" else ()
    for game in games:
        keypointers = [_keypointer_job("explore", preset, game, kind) for kind in KEYPOINTERS]
        jobs += keypointers
        for kp in keypointers:
            for seed in seeds:
                name = f"{kp.name}/explore-s{seed}"
                config = {"game": game, "keypointer": kp.settings["work"] + "/best", "seed": seed}
                config["work"] = _work(preset, name)
                config_items = tuple(sorted(config.items()))
                jobs.append(Job(name, "explore", config_items, named, (kp.name,), "explore", preset))
    return jobs


def atari100k(
    preset: str,
    seeds: Sequence[int],
    games: Sequence[str] = TABLE1_GAMES,
    keypointers: Sequence[str] = BUILTIN_KEYPOINTERS,
) -> list[Job]:
    """Table 1's games (PermaKey paper, section 5.1, the Atari 100k protocol) x the oracle and the motion baseline x
    seeds, each with the GNN encoder: the ceiling and the floor between which table1's learned keypointers stand.
    Neither keypointer is trained, so the agents depend on no job, and the agent's cpu preset (train_agent) applies.
    `keypointers` narrows it to one of them (KEYPOINTERS=oracle)."""
    unknown = [name for name in keypointers if name not in BUILTIN_KEYPOINTERS]
    if unknown or not keypointers:
        raise ValueError(
            f"The atari100k grid's keypointers are {', '.join(BUILTIN_KEYPOINTERS)}; got {list(keypointers)} "
            "(KEYPOINTERS=oracle,motion)."
        )
    named = () if preset == "paper" else (preset,)
    jobs = []
    for game in games:
        for keypointer in keypointers:
            for seed in seeds:
                name = f"{game}/{keypointer}/gnn-s{seed}"
                config = {"game": game, "keypointer": keypointer, "encoder": "gnn", "distractors": "none", "seed": seed}
                config["work"] = _work(preset, name)
                jobs.append(Job(name, "train_agent", tuple(sorted(config.items())), named, (), "atari100k", preset))
    return jobs


PRESETS = ("quick", "cpu", "paper")
AGENT_ONLY_PRESETS = ("cpu",)
"""Presets only the agent experiment has (experiments/train_agent.py cpu)."""
AGENT_ONLY_GRIDS = ("atari100k",)
"""Grids that train no keypointer, so that an agent-only preset applies to every job."""

GRIDS: dict[str, Callable[..., list[Job]]] = {
    "table1": table1,
    "table2": table2,
    "table3": table3,
    "keypoints": keypoints,
    "explore": explore,
    "atari100k": atari100k,
}


def expand(grid: str, preset: str = "quick", seeds: Sequence[int] = (0, 1, 2), **options: Any) -> list[Job]:
    """The jobs of a named grid in an order where every job comes after the jobs it depends on.

    `options` narrow the grid (games=..., keypoints=...)."""
    if grid not in GRIDS:
        raise ValueError(f"Unknown grid {grid!r}; choose one of {sorted(GRIDS)}.")
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    if preset in AGENT_ONLY_PRESETS and grid not in AGENT_ONLY_GRIDS:
        raise ValueError(
            f"The {preset} preset is the agent's only (no keypointer has it): the {grid} grid trains keypointers; "
            f"use it with {', '.join(AGENT_ONLY_GRIDS)}, or PRESET=quick|paper."
        )
    if not seeds:
        raise ValueError("No seeds: give at least one (SEEDS=0,1,2).")
    bad = [seed for seed in seeds if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0]
    if bad:
        raise ValueError(f"Seeds must be integers >= 0, got {bad} (SEEDS=0,1,2).")
    return dependency_order(GRIDS[grid](preset, list(seeds), **checked_options(grid, options)))


def checked_options(grid: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` after checking that the grid takes each one (table3 has no games: it trains on ms_pacman only) and
    that every game is supported; games under their canonical names."""
    takes = [name for name in inspect.signature(GRIDS[grid]).parameters if name not in ("preset", "seeds")]
    for name in options:
        if name not in takes:
            raise ValueError(
                f"The {grid} grid takes no {name} option (its options: {', '.join(takes) or 'none'}); leave {name} out."
            )
    if "games" in options:
        if not options["games"]:
            raise ValueError(f"No games given for the {grid} grid: name at least one, or leave games out.")
        options = {**options, "games": [get_game(str(game)).name for game in options["games"]]}
    return options


def dependency_order(jobs: list[Job]) -> list[Job]:
    """Topological order (stable); a missing dependency or a cycle is an error naming the job."""
    by_name = {job.name: job for job in jobs}
    if len(by_name) != len(jobs):
        raise ValueError("Two jobs of the grid share a name.")
    ordered: list[Job] = []
    state: dict[str, str] = {}

    def visit(job: Job) -> None:
        if state.get(job.name) == "done":
            return
        if state.get(job.name) == "visiting":
            raise ValueError(f"Job {job.name} depends on itself through {job.depends}.")
        state[job.name] = "visiting"
        for dep in job.depends:
            if dep not in by_name:
                raise ValueError(f"Job {job.name} depends on {dep}, which is not in the grid.")
            visit(by_name[dep])
        state[job.name] = "done"
        ordered.append(job)

    for job in jobs:
        visit(job)
    return ordered
