"""Where runs, datasets and work folders live, and the one rule that names a work folder.

A work folder holds what an experiment needs to resume and what later experiments load (a keypointer's best/, an
agent's replay): work/<kind>/<game>-<tags...>-s<seed>, e.g. work/permakey/pong-quick-none-s0. Sacred configs
call `Workspace.work_folder` to default their `work` entry, the benchmark grid to place its jobs, and the Makefile
asks experiments/workspace.py: `python -m experiments.workspace work permakey pong quick none --seed 0` prints
work/permakey/pong-quick-none-s0.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from data.games import get_game

WORK_ROOT = "work"
DATASETS_ROOT = "datasets"


@dataclasses.dataclass(frozen=True)
class Workspace:
    """The roots a run reads and writes under (its Sacred runs folder, the datasets, the work folders) and the one
    rule that names a work folder."""

    runs: Path
    datasets: Path = Path(DATASETS_ROOT)
    work: Path = Path(WORK_ROOT)

    @classmethod
    def here(cls) -> Workspace:
        """This process's workspace: runs under RUNS_DIR (else runs/), read when asked so a changed RUNS_DIR counts."""
        return cls(runs=Path(os.environ.get("RUNS_DIR") or "runs"))

    def work_folder(self, kind: str, *tags: object, seed: int | None = None) -> str:
        """The work folder of a run: work/<kind>/<tags joined by '-'>[-s<seed>]. A `/` in a tag becomes `_` (grid job
        names), so each run gets one folder level under its kind. The experiments' first tag is the game's canonical
        name (data.games)."""
        name = "-".join([str(tag).replace("/", "_") for tag in tags] + ([f"s{seed}"] if seed is not None else []))
        return os.path.join(self.work, kind, name)

    def dataset(self, game: str, *variants: str) -> str:
        """datasets/<game>[_<variant>...]: the paper-sized rollouts (no variant), a preset's (`quick`), the
        evaluation's (`eval`) or diverse pairs (`pairs`), then a random policy other than uniform (`sticky0.1`,
        data.generate.policy_tag); empty variants are skipped."""
        return os.path.join(self.datasets, "_".join([get_game(game).name, *[v for v in variants if v]]))

    def run_folder(self, run_id: int | str) -> Path:
        return self.runs / str(run_id)
