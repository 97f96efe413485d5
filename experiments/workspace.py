"""Where runs, datasets and work folders live, and the one rule that names a work folder.

A work folder holds what an experiment needs to resume and what later experiments load (a keypointer's best/, an
agent's replay): work/<kind>/<game>-<tags...>-s<seed>, e.g. work/permakey/pong-quick-none-s0. Sacred configs
call `Workspace.work_folder` to default their `work` entry, the benchmark grid to place its jobs, and the Makefile
asks this module: `python -m experiments.workspace work permakey pong quick none --seed 0` prints
work/permakey/pong-quick-none-s0.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the folder an experiment with these settings uses.")
    commands = parser.add_subparsers(dest="command", required=True)
    work = commands.add_parser("work", help="a work folder: work KIND GAME TAG... --seed S")
    work.add_argument("kind", help="permakey, transporter, imm, agent")
    work.add_argument("game")
    work.add_argument("tags", nargs="*", help="the experiment's tags in order (permakey: preset distractors)")
    work.add_argument("--seed", type=int, default=0)
    dataset = commands.add_parser("dataset", help="a dataset folder: dataset GAME [VARIANT]")
    dataset.add_argument("game")
    dataset.add_argument("variant", nargs="?", default="", help="quick, eval, pairs (none: the paper-sized rollouts)")
    args = parser.parse_args(argv)
    workspace = Workspace.here()
    if args.command == "dataset":
        print(workspace.dataset(args.game, args.variant))
    else:
        print(workspace.work_folder(args.kind, get_game(args.game).name, *args.tags, seed=args.seed))


if __name__ == "__main__":
    main()
