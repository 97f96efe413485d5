"""Prints the folder an experiment with given settings uses (the Makefile asks it):
`python -m experiments.workspace work permakey pong quick none --seed 0` prints work/permakey/pong-quick-none-s0.
The rule that names the folders is training/workspace.py's."""

from __future__ import annotations

import argparse

from data.games import get_game
from training.workspace import Workspace


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
