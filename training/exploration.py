"""What an explore run records (experiments/explore.py): its learning curves while it trains, how often the most
controllable keypoint lies on the player while it explores (AvatarCheck), and at the end the return table of the
exploration methods, the pictures and the options network.

Files of a run: exploration_returns.csv (every episode of every method), exploration.md (the tables), options.png
(options' intrinsic returns over training, equation 2's choice over time, the return distributions),
explore_episode.gif (option exploration, the most controllable keypoint ringed) and options.json + options.weights.h5
(the trained option Q-network).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pandas as pd

from data.atari import GroundTruth, ram_of
from data.games import Game
from keypoints.draw import draw_keypoints
from keypoints.metrics import grid_to_frame, scored_objects, truth_from_boxes
from keypoints.ops import keypoints_to_pixels
from keypoints.protocol import Keypointer, ObjectKeypointer
from rl.options import DIRECTIONS, Option
from training.agents import LearningCurves
from training.tables import markdown_table

OPTION_COLUMNS = ["start", "keypoint", "direction", "displacement", "steps", "epsilon", "most_controllable"]
PERCENTILES = (10, 25, 50, 75, 90)


class ExplorationCurves(LearningCurves):
    """Curves of the option learning: the exploring episodes' game returns, the TD loss (LearningCurves), and every
    finished option (OPTION_COLUMNS)."""

    def __init__(self, run: Any, log_every: int):
        super().__init__(run, log_every, extra=("options",))

    def take_options(self, finished: list[Option]) -> float:
        """Moves the behaviour's finished options into the curves; returns their mean displacement (nan if none)."""
        rows = [
            [o.start, o.keypoint, o.direction, o.displacement, o.steps, o.epsilon, o.most_controllable]
            for o in finished
        ]
        finished.clear()
        self.curves["options"] += rows
        moved = float(np.mean([r[3] for r in rows])) if rows else float("nan")
        if rows:
            self.run.log_scalar("train.option_displacement", moved, rows[-1][0])
        return moved


class AvatarCheck:
    """How often the most controllable keypoint lies within epsilon of the game's player (OCAtari ground truth), and
    the same for every keypoint (chance and best-keypoint references). Counts steps where the player is on screen.
    Keypoints are mapped to the frame through the keypointer's geometry, as the tracking evaluation maps them; epsilon
    is the game's tracking threshold, 0.2 where the game has none (Transporter's value for pong and frostbite)."""

    def __init__(self, game: Game, env: gym.Env, keypointer: Keypointer | ObjectKeypointer):
        self.truth = GroundTruth(game)
        self.player = self.truth.categories.index("Player") if "Player" in self.truth.categories else None
        self.env, self.epsilon = env, float(game.epsilon or 0.2)
        self.grid, self.geometry = keypointer.geometry
        self.hits, self.each, self.steps = 0, np.zeros(keypointer.num_keypoints), 0

    def reset(self) -> None:
        self.truth.reset()

    def on_step(self, keypoints: np.ndarray, chosen: int) -> None:
        if self.player is None:
            return
        objects = self.truth.detect(ram_of(self.env))
        keep = np.arange(len(self.truth.categories)) == self.player
        boxes = objects.boxes[scored_objects(objects.boxes, objects.categories, keep)]
        if not len(boxes):
            return
        frame = grid_to_frame(keypoints, self.grid, self.geometry)
        near = np.linalg.norm(frame - truth_from_boxes(boxes[:1])[0], axis=-1) <= self.epsilon
        self.hits += int(near[chosen])
        self.each += near
        self.steps += 1

    def summary(self) -> dict[str, Any]:
        if self.player is None or not self.steps:
            return {"measured": False}
        each = self.each / self.steps
        return {
            "measured": True,
            "steps": self.steps,
            "epsilon": self.epsilon,
            "most_controllable": self.hits / self.steps,
            "per_keypoint": each.round(4).tolist(),
            "best_keypoint": float(each.max()),
            "mean_keypoint": float(each.mean()),
        }


def return_summary(table: pd.DataFrame, methods: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per method: episodes, mean, std, percentiles and max of the episodic game return (a method with no finished
    episode in its budget has 0 episodes and nan statistics)."""
    out = {}
    for method in methods:
        returns = table.loc[table["method"] == method, "return"].to_numpy(np.float64)
        row = {"episodes": len(returns), "mean": float("nan"), "std": float("nan"), "max": float("nan")}
        if len(returns):
            row.update(mean=float(returns.mean()), std=float(returns.std()), max=float(returns.max()))
            row.update({f"p{p}": float(np.percentile(returns, p)) for p in PERCENTILES})
        out[method] = row
    return out


def choice_shares(options: pd.DataFrame, num_keypoints: int, bins: int = 10) -> pd.DataFrame:
    """Equation 2's choice over training: per stretch of agent steps, the share of option draws at which each keypoint
    was the most controllable."""
    if options.empty:
        return pd.DataFrame(columns=["until", *range(num_keypoints)])
    edges = np.linspace(0, options["start"].max() + 1, bins + 1)
    stretch = np.clip(np.digitize(options["start"], edges) - 1, 0, bins - 1)
    counts = pd.crosstab(stretch, options["most_controllable"]).reindex(columns=range(num_keypoints), fill_value=0)
    shares = counts.div(counts.sum(axis=1), axis=0)
    shares.insert(0, "until", edges[1:][shares.index].round().astype(int))
    return shares.reset_index(drop=True)


def plot(path: Path, options: pd.DataFrame, shares: pd.DataFrame, table: pd.DataFrame, game: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for j, name in enumerate(DIRECTIONS):
        moved = options[options["direction"] == j]
        window = max(1, min(200, len(moved) // 10))
        if len(moved) >= window:
            smooth = np.convolve(moved["displacement"], np.ones(window) / window, mode="valid")
            axes[0].plot(moved["start"].to_numpy()[window - 1 :], smooth, label=name)
    axes[0].axhline(0.0, color="grey", lw=0.5)
    axes[0].set(title="options' intrinsic return (keypoint move, [-1, 1] units)", xlabel="agent step")
    axes[0].legend(fontsize=8)
    keypoints = [c for c in shares.columns if c != "until"]
    if len(shares):
        axes[1].stackplot(shares["until"], *[shares[k] for k in keypoints], labels=[f"kp {k}" for k in keypoints])
        axes[1].legend(fontsize=7, ncol=2)
    axes[1].set(title="most controllable keypoint (eq. 2) at option draws", xlabel="agent step", ylim=(0, 1))
    methods = list(dict.fromkeys(table["method"]))
    groups = [table.loc[table["method"] == m, "return"].to_numpy() for m in methods]
    if groups:
        axes[2].boxplot(groups, showmeans=True)
        axes[2].set_xticks(range(1, len(groups) + 1), methods)
    axes[2].set(title=f"{game}: episodic game return, same frames", ylabel="return")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def ringed_frame(observation: dict, chosen: int, scale: int = 3) -> np.ndarray:
    """The observation's frame upscaled, its keypoints drawn and keypoint `chosen` (the most controllable) ringed."""
    image = draw_keypoints(observation["frame"][None], observation["keypoints"][None], scale=scale)[0]
    point = observation["keypoints"][chosen]
    row, col = (keypoints_to_pixels(point[None, None], *observation["frame"].shape[:2])[0, 0] + 0.5) * scale
    cv2.circle(image, (int(col), int(row)), 4 * scale, (255, 255, 255), 2, cv2.LINE_AA)
    return image


def option_table(options: pd.DataFrame, num_keypoints: int) -> pd.DataFrame:
    """Each option's mean intrinsic return (keypoint move along its direction) over the last tenth of training:
    [keypoint x DIRECTIONS], nan where an option was not drawn then."""
    last = options[options["start"] >= options["start"].max() * 0.9] if len(options) else options
    table = last.pivot_table(index="keypoint", columns="direction", values="displacement", aggfunc="mean")
    table = table.reindex(index=range(num_keypoints), columns=range(len(DIRECTIONS)))
    table.columns = list(DIRECTIONS)
    return table.rename_axis("keypoint").reset_index()


def markdown(
    summary: dict[str, Any], shares: pd.DataFrame, per_option: pd.DataFrame, avatar: dict[str, Any], settings: Any
) -> str:
    frames = 4 * settings.explore_steps
    lines = [
        f"# Exploration with keypoint options: {settings.game.name}",
        "",
        f"Each method: {settings.explore_steps:,} agent steps ({frames:,} frames) from the same environment seed; "
        f"options learned for {settings.schedule.total_steps:,} agent steps (T = {settings.option_steps}).",
        "",
        "| method | episodes | mean | std | p10 | p25 | p50 | p75 | p90 | max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method, row in summary["returns"].items():
        cells = [f"{row.get(k, float('nan')):.1f}" for k in ("mean", "std", "p10", "p25", "p50", "p75", "p90", "max")]
        lines.append(f"| {method} | {row['episodes']} | " + " | ".join(cells) + " |")
    moved = summary["option_displacement"]
    lines += [
        "",
        "Options' intrinsic return (how far an option moved its keypoint along its direction, [-1, 1] units), mean "
        f"over options: first tenth of training {moved['first_tenth']:.4f}, last tenth {moved['last_tenth']:.4f}, "
        f"greedy during exploration {moved['exploring']:.4f}. Per option, last tenth of training:",
        "",
        markdown_table(per_option, digits=2),
        "",
    ]
    if avatar.get("measured"):
        lines.append(
            f"The most controllable keypoint lay within epsilon = {avatar['epsilon']} of the player in "
            f"{avatar['most_controllable']:.3f} of {avatar['steps']:,} exploration steps (each keypoint: "
            f"{avatar['per_keypoint']}; mean {avatar['mean_keypoint']:.3f}, best {avatar['best_keypoint']:.3f})."
        )
    else:
        lines.append("The game's ground truth has no player category: the avatar check was not measured.")
    if len(shares):
        lines += ["", "Most controllable keypoint at option draws, share per stretch of training:", ""]
        lines.append(markdown_table(shares))
    return "\n".join(lines) + "\n"


def write_outputs(
    folder: Path,
    settings: Any,
    explorer: Any,
    keypointer: Any,
    learning: ExplorationCurves,
    table: pd.DataFrame,
    avatar: dict[str, Any],
    taken: list[Option],
    frames: list[np.ndarray],
    methods: Sequence[str],
) -> dict[str, Any]:
    """Writes the run's files into `folder` and returns the summary the run records (JSON-able). `frames`: the
    exploration's first steps as `ringed_frame`s, for the GIF; `methods`: the table's methods, in order."""
    options = pd.DataFrame(learning.curves["options"], columns=OPTION_COLUMNS)
    shares = choice_shares(options, keypointer.num_keypoints)
    tenth = max(1, len(options) // 10)
    summary = {
        "returns": return_summary(table, methods),
        "option_displacement": {
            "first_tenth": float(options["displacement"][:tenth].mean()) if len(options) else float("nan"),
            "last_tenth": float(options["displacement"][-tenth:].mean()) if len(options) else float("nan"),
            "exploring": float(np.mean([o.displacement for o in taken])) if taken else float("nan"),
        },
        "avatar": avatar,
    }
    table.to_csv(folder / "exploration_returns.csv", index=False)
    per_option = option_table(options, keypointer.num_keypoints)
    (folder / "exploration.md").write_text(markdown(summary, shares, per_option, avatar, settings))
    plot(folder / "options.png", options, shares, table, settings.game.name)
    imageio.mimsave(folder / "explore_episode.gif", frames[::2], duration=0.066, loop=0)  # type: ignore[arg-type]
    info = {"num_keypoints": keypointer.num_keypoints, "num_actions": explorer.num_actions}
    info |= {"encoder": settings.encoder, "encoder_options": settings.encoder_options, "units": settings.units}
    (folder / "options.json").write_text(json.dumps(info, indent=2))
    explorer.online.save_weights(os.path.join(folder, "options.weights.h5"))
    return json.loads(json.dumps(summary, default=float))
