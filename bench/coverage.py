"""How far the random policies move things: `python -m bench.coverage --games ms_pacman --frames 3000
--policies uniform,sticky:0.1`.

The PermaKey paper trains on rollouts of trained agents whose avatars cross the whole screen (Gopalakrishnan et al.,
ICLR 2021, Appendix A.2.1); a uniform random policy mostly jitters in place. Per game and policy this generates a
rollouts dataset (all frames in the train split, one shard, so only the frame budget cuts an episode) and prints,
from the OCAtari ground truth the generator records (no emulation of its own):
- player cells: distinct 16x16 native-pixel cells that the centre of the "Player" object visits;
- player moved: the fraction of consecutive frame pairs (within an episode, player present in both) where the
  player's centre changed;
- moving objects: mean objects of the game's moving categories per frame (every frame but an episode's first), and
  of those, how many moved (their centre matches no centre of their category in the previous frame);
- episodes: how many ended in the game, and their lengths in agent steps.

`--datasets` reads existing datasets instead (their manifest names the game and the policy).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

CELL = 16
"""Side of a coverage cell in native 160x210 pixels."""


@dataclasses.dataclass(frozen=True)
class Coverage:
    game: str
    policy: str
    frames: int
    player_cells: int | None
    """None when the game has no Player category."""
    player_moved: float | None
    moving_objects: float
    moved_objects: float
    ended_lengths: tuple[int, ...]
    """Lengths of the episodes that ended in the game."""
    cut_lengths: tuple[int, ...]
    """Lengths of the episodes cut by the frame budget or the time limit."""


def policy_label(policy: str, change_probability: float) -> str:
    return policy if policy == "uniform" else f"{policy} p={change_probability:g}"


def player_centres(objects: Iterable, player: int | None) -> np.ndarray:
    """[T, 2] centre of the first object of category `player` in each frame; NaN where there is none."""
    rows = []
    for frame in objects:
        found = np.flatnonzero(frame.categories == player) if player is not None else np.empty(0, np.int64)
        rows.append(frame.centres[found[0]] if len(found) else (np.nan, np.nan))
    return np.array(rows, np.float64).reshape(-1, 2)


def cells(centres: np.ndarray) -> set[tuple[int, int]]:
    """The CELL x CELL cells that the (non-NaN) centres fall in."""
    present = centres[~np.isnan(centres).any(axis=1)]
    return {(int(x) // CELL, int(y) // CELL) for x, y in present}


def moved_pairs(centres: np.ndarray) -> tuple[int, int]:
    """(pairs of consecutive frames with the player in both, of which those where its centre changed)."""
    both = ~np.isnan(centres[1:]).any(axis=1) & ~np.isnan(centres[:-1]).any(axis=1)
    changed = (centres[1:] != centres[:-1]).any(axis=1) & both
    return int(both.sum()), int(changed.sum())


def moving_counts(previous, current, keep: np.ndarray) -> tuple[int, int]:
    """(objects of moving categories in `current`, of which those whose centre matches no centre of their category
    in `previous`; all of them when there is no previous frame)."""
    mask = keep[current.categories]
    count, moved = int(mask.sum()), 0
    for category, centre in zip(current.categories[mask], current.centres[mask], strict=True):
        before = previous.centres[previous.categories == category] if previous is not None else np.empty((0, 2))
        moved += int(not (before == centre).all(axis=1).any())
    return count, moved


def measure(root: str | Path, split: str = "train") -> Coverage:
    """The coverage figures of a dataset's split (see the module docstring)."""
    from data import storage
    from data.generate import manifest_policy
    from data.readers import read_episodes

    manifest = storage.read_manifest(root)
    categories = list(manifest["categories"])
    player = categories.index("Player") if "Player" in categories else None
    keep = np.isin(categories, manifest["moving_categories"])
    visited: set[tuple[int, int]] = set()
    pairs = changed = objects = moved = frames = 0
    ended: list[int] = []
    cut: list[int] = []
    for episode in read_episodes(root, split):
        centres = player_centres(episode.objects, player)
        visited |= cells(centres)
        both, change = moved_pairs(centres)
        pairs, changed = pairs + both, changed + change
        for t, current in enumerate(episode.objects):
            count, shifted = moving_counts(episode.objects[t - 1], current, keep) if t else (0, 0)
            objects, moved = objects + count, moved + shifted
        frames += len(episode.frames)
        (ended if episode.terminated else cut).append(len(episode.frames))
    return Coverage(
        game=manifest["game"],
        policy=policy_label(*manifest_policy(manifest)),
        frames=frames,
        player_cells=len(visited) if player is not None else None,
        player_moved=changed / pairs if pairs else None,
        moving_objects=objects / max(frames - len(ended) - len(cut), 1),
        moved_objects=moved / max(frames - len(ended) - len(cut), 1),
        ended_lengths=tuple(ended),
        cut_lengths=tuple(cut),
    )


def generate_for(game: str, policy: str, frames: int, seed: int, folder: Path, workers: int) -> Path:
    """A rollouts dataset of `frames` frames of `policy` (`uniform`, `sticky:<p>`) in `folder` (reused when there)."""
    from data.generate import generate, parse_policy, policy_tag, rollouts_config

    name, p = parse_policy(policy)
    config = rollouts_config(game, {"train": frames}, seed, frames, name, p)
    out = folder / f"{game}_{policy_tag(name, p) or 'uniform'}_{frames}_s{seed}"
    generate(config, out, workers=workers, progress=False)
    return out


def lengths_text(ended: tuple[int, ...], cut: tuple[int, ...]) -> str:
    """Ended episodes' lengths (listed up to 4, else mean and range), then the cut ones."""
    if not ended:
        text = "none ended"
    elif len(ended) <= 4:
        text = f"{len(ended)} ended: " + ", ".join(str(n) for n in ended)
    else:
        text = f"{len(ended)} ended: mean {np.mean(ended):.0f} ({min(ended)}-{max(ended)})"
    return text + (f"; cut: {', '.join(str(n) for n in cut)}" if cut else "")


def table(rows: list[Coverage]) -> list[str]:
    lines = [
        "| game | policy | frames | player cells | player moved | moving objects / frame | of which moved "
        "| episode lengths (agent steps) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells_text = "n/a" if r.player_cells is None else str(r.player_cells)
        moved_text = "n/a" if r.player_moved is None else f"{r.player_moved:.2f}"
        lines.append(
            f"| {r.game} | {r.policy} | {r.frames:,} | {cells_text} | {moved_text} | {r.moving_objects:.2f} "
            f"| {r.moved_objects:.2f} | {lengths_text(r.ended_lengths, r.cut_lengths)} |"
        )
    return lines


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", default="ms_pacman", help="comma-separated, e.g. ms_pacman,pong,battlezone")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--policies", default="uniform,sticky:0.1", help="comma-separated: uniform, sticky:<p>")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default="", help="keep the generated datasets here (reused on a rerun)")
    parser.add_argument("--datasets", nargs="*", default=[], help="measure these datasets instead of generating")
    args = parser.parse_args()

    from data.games import get_game
    from data.generate import parse_policy

    rows = [measure(root) for root in args.datasets]
    if not args.datasets:
        games = [get_game(g).name for g in args.games.split(",") if g]
        policies = [p for p in args.policies.split(",") if p]
        for policy in policies:
            parse_policy(policy)  # fail before any work
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(args.out or tmp)
            for game in games:
                rows += [measure(generate_for(game, p, args.frames, args.seed, folder, args.workers)) for p in policies]
    print(f"{datetime.date.today().isoformat()}, commit {_commit()}, seed {args.seed}")
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
