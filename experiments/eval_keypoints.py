"""Keypoint quality against ground truth: `python -m experiments.eval_keypoints with game=pong runs=[9,10]`.

Evaluates saved keypointers (run ids or folders; PermaKey, Transporter, IMM alike, through the keypointer protocol) on
held-out test episodes with OCAtari ground truth, clean and with each Noisy Atari distractor type: the Transporter
tracking precision/recall per trajectory length (keypoints/metrics.py documents the procedure), frame-level
precision/recall at the same distance, and collapse statistics. Records every number in the Sacred run and saves a
figure of precision/recall against trajectory length for all models, the table (Markdown and CSV) and a GIF per model
of a test episode with its keypoints and the ground-truth boxes. `report=path.md` also writes the table there.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import imageio.v2 as imageio
import matplotlib
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from data import storage  # noqa: E402
from data.distractors import MODES, add_distractor_bars, check_mode  # noqa: E402
from data.games import Game, get_game  # noqa: E402
from data.generate import policy_tag  # noqa: E402
from data.readers import Episode, read_episodes  # noqa: E402
from data.visualize import draw_objects  # noqa: E402
from experiments.common import experiment  # noqa: E402
from experiments.generate_data import ensure_dataset  # noqa: E402
from experiments.keypointers import keypointer_folder, load_keypointer  # noqa: E402
from experiments.workspace import Workspace  # noqa: E402
from keypoints.draw import draw_keypoints  # noqa: E402
from keypoints.metrics import (  # noqa: E402
    collapse_statistics,
    frame_precision_recall,
    grid_to_frame,
    link_tracks,
    scored_objects,
    tracking_precision_recall,
    truth_from_boxes,
)
from keypoints.protocol import Keypointer  # noqa: E402

ex = experiment("eval_keypoints")


@ex.config
def config():
    game = "pong"
    runs = []  # keypointer run ids (runs/<id>) or folders
    labels = []  # optional display names, one per run (default: kind and id)
    noise = list(MODES)  # conditions: none, vertical, horizontal, both
    # Transporter's epsilon per game (seed 000, section 4.1); games without one use 0.15 (documented default).
    epsilon = get_game(game).epsilon or 0.15
    lengths = [1, 2, 5, 10, 20, 50, 100, 150, 200]
    frame_distance = epsilon  # frame-level precision@d / recall@d
    geometry = "keypointer"  # each keypointer's own cell-to-pixel geometry, or "naive" (keypoints/metrics.py)
    frames = 1000  # test frames evaluated (whole episodes from the start of the test split, cut at this count)
    dataset_seed = 1000  # a seed the training datasets (seed 0..) do not use
    dataset_policy = "uniform"  # the random policy of a generated dataset: uniform or sticky (data/generate.py)
    dataset_change_probability = 1.0 if dataset_policy == "uniform" else 0.1  # sticky: chance of a new action
    dataset = Workspace.here().dataset(game, "eval", policy_tag(dataset_policy, dataset_change_probability))
    generate_missing = True
    gif_frames = 100
    seed = 0
    report = ""  # also write the Markdown table to this path
    progress = True


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """What an evaluation measures: `frames` test frames of `dataset` (generated with `dataset_seed` and the random
    `dataset_policy` when missing and `generate_missing`), under each of `noise`, tracking precision/recall per
    trajectory length in `lengths` at `epsilon`, frame-level precision/recall at `frame_distance`, keypoints mapped
    by `geometry`."""

    game: Game
    dataset: str
    frames: int
    dataset_seed: int
    dataset_policy: str
    dataset_change_probability: float
    generate_missing: bool
    noise: tuple[str, ...]
    lengths: tuple[int, ...]
    epsilon: float
    frame_distance: float
    geometry: str
    seed: int
    gif_frames: int
    progress: bool

    @classmethod
    def from_config(cls, c: dict) -> EvalSettings:
        return cls(
            game=get_game(c["game"]),
            dataset=c["dataset"],
            frames=c["frames"],
            dataset_seed=c["dataset_seed"],
            dataset_policy=c["dataset_policy"],
            dataset_change_probability=c["dataset_change_probability"],
            generate_missing=c["generate_missing"],
            noise=tuple(check_mode(noise) for noise in c["noise"]),
            lengths=tuple(c["lengths"]),
            epsilon=c["epsilon"],
            frame_distance=c["frame_distance"],
            geometry=c["geometry"],
            seed=c["seed"],
            gif_frames=c["gif_frames"],
            progress=c["progress"],
        )


def ensure_eval_dataset(settings: EvalSettings) -> None:
    """A test-only dataset when `dataset` is missing: `frames` test frames in whole episodes, plus the few
    train/validation frames the format requires."""
    frames = settings.frames
    ensure_dataset(
        settings.dataset,
        settings.game.name,
        frames + 40,
        settings.dataset_seed,
        settings.generate_missing,
        settings.progress,
        policy=settings.dataset_policy,
        change_probability=settings.dataset_change_probability,
        validation_frames=20,
        test_frames=frames,
        shard_frames=max(frames, 40),
    )


def test_episodes(
    dataset: str, game: Game, frames: int
) -> tuple[list[Episode], list[list[tuple[np.ndarray, np.ndarray]]], np.ndarray]:
    """Episodes of `dataset` (cut at `frames` in all), their per-frame ground truth (moving categories, on-screen only,
    as (categories, normalised positions)) and the keep mask over categories."""
    manifest = storage.read_manifest(dataset)
    if not manifest.get("moving_categories"):
        raise ValueError(f"{dataset} records no ground-truth categories; regenerate it with `make data`.")
    keep = np.isin(manifest["categories"], manifest["moving_categories"])
    episodes, truth, left = [], [], frames
    for episode in read_episodes(dataset, "test", game=game.name):
        if left <= 0:
            break
        n = min(left, len(episode.frames))
        left -= n
        episode.frames, episode.objects = episode.frames[:n], episode.objects[:n]
        per_frame = []
        for objects in episode.objects:
            wanted = scored_objects(objects.boxes, objects.categories, keep)
            per_frame.append((objects.categories[wanted], truth_from_boxes(objects.boxes[wanted])))
        episodes.append(episode)
        truth.append(per_frame)
    if not episodes:
        raise ValueError(f"{dataset} has no test episodes.")
    return episodes, truth, keep


def detect(keypointer, frames: np.ndarray, noise: str, seed: int, geometry: str, batch: int = 32) -> np.ndarray:
    """Keypoints [T, K, 2] in normalised frame coordinates for uint8 frames, with distractors drawn when asked."""
    grid, rf = keypointer.geometry
    out = []
    for start in range(0, len(frames), batch):
        chunk = tf.constant(frames[start : start + batch])
        chunk = add_distractor_bars(chunk, noise, tf.constant([seed, start], tf.int64))
        coordinates = keypointer(chunk).coordinates.numpy()
        out.append(grid_to_frame(coordinates, grid, rf if geometry == "keypointer" else None))
    return np.concatenate(out)


def episode_gif(keypointer, episode: Episode, keep: np.ndarray, count: int, path: Path) -> None:
    frames = episode.frames[:count]
    coordinates = keypointer(frames).coordinates.numpy()
    drawn = draw_keypoints(frames, coordinates, scale=4)
    boxed = [draw_objects(f, o, keep, scale=4) for f, o in zip(frames, episode.objects[:count], strict=True)]
    imageio.mimsave(path, [np.concatenate([b, d], axis=1) for b, d in zip(boxed, drawn, strict=True)], duration=0.1)


def plot(table: pd.DataFrame, path: Path, game: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    styles = dict(zip(MODES, ["-", "--", ":", "-."], strict=True))
    for (label, noise), rows in table.groupby(["model", "noise"], sort=False):
        for ax, metric in zip(axes, ("precision", "recall"), strict=True):
            ax.plot(rows["length"], rows[metric], styles.get(noise, "-"), marker="o", ms=3, label=f"{label} ({noise})")
    for ax, metric in zip(axes, ("precision", "recall"), strict=True):
        ax.set_xlabel("trajectory length (frames)")
        ax.set_title(f"{game}: tracking {metric}")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(table: pd.DataFrame, summary: pd.DataFrame, settings: EvalSettings, command: str, frames: int) -> str:
    pick = table[table["length"].isin([1, 50, 200])]
    wide = pick.pivot_table(index=["model", "noise"], columns="length", values=["precision", "recall"], sort=False)
    lines = [
        f"# Keypoint tracking quality: {settings.game.name}",
        "",
        f"Written by `{command}`. {frames} test frames of `{settings.dataset}`, epsilon {settings.epsilon} (normalised "
        f"[-1, 1] units), keypoints mapped to frame pixels by their `{settings.geometry}` geometry. Tracking precision "
        "and recall per trajectory length as in keypoints/metrics.py; NaN where the test episodes hold no window of "
        "that length.",
        "",
        "| model | noise | " + " | ".join(f"{m}@{n}" for m, n in wide.columns) + " |",
        "|---|---|" + "---|" * len(wide.columns),
    ]
    for (label, noise), row in wide.iterrows():
        lines.append(f"| {label} | {noise} | " + " | ".join(f"{v:.3f}" for v in row.values) + " |")
    lines += [
        "",
        "Frame-level precision/recall at distance epsilon, and collapse statistics (distinct spots of K per frame, "
        "share of keypoints sharing a spot, mean distance to their centroid, mean per-keypoint motion):",
        "",
        "| model | noise | K | frame precision | frame recall | distinct | collapsed | spread | motion |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in summary.iterrows():
        lines.append(
            f"| {r['model']} | {r['noise']} | {r['K']} | {r['frame_precision']:.3f} | {r['frame_recall']:.3f} | "
            f"{r['distinct']:.2f} | {r['collapsed_fraction']:.2f} | {r['spread']:.3f} | {r['motion']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def evaluate(
    keypointer: Keypointer, label: str, noise: str, episodes: list[Episode], truth: list, settings: EvalSettings, run
) -> tuple[list[dict], dict]:
    """One keypointer under one noise condition: the tracking rows (one per trajectory length) and the summary row
    (frame-level precision/recall and collapse statistics), each number also logged in the Sacred `run`."""
    tracks = [link_tracks(per_frame) for per_frame in truth]
    truth_arrays = [
        np.stack([t.positions for t in ts], axis=1) if ts else np.full((len(e.frames), 0, 2), np.nan)
        for ts, e in zip(tracks, episodes, strict=True)
    ]
    detected = [
        detect(keypointer, e.frames, noise, settings.seed + j, settings.geometry) for j, e in enumerate(episodes)
    ]
    result = tracking_precision_recall(zip(detected, truth_arrays, strict=True), settings.lengths, settings.epsilon)
    rows = []
    for length, r in result.items():
        rows.append({"model": label, "noise": noise, "length": length, **r})
        for metric in ("precision", "recall"):
            run.log_scalar(f"{label}.{noise}.{metric}", r[metric], length)
    frame_truth = [p for per_frame in truth for _, p in per_frame]
    frame = frame_precision_recall([d for ds in detected for d in ds], frame_truth, settings.frame_distance)
    stats = collapse_statistics(np.concatenate(detected))
    for name, value in {**frame, **stats}.items():
        run.log_scalar(f"{label}.{noise}.{name}", value)
    summary = {"model": label, "noise": noise, "K": keypointer.num_keypoints}
    summary.update(frame_precision=frame["precision"], frame_recall=frame["recall"], **stats)
    return rows, summary


def record(
    run,
    settings: EvalSettings,
    tables: tuple[pd.DataFrame, pd.DataFrame, str],
    gifs: dict[str, Keypointer],
    episode: Episode,
    keep: np.ndarray,
) -> None:
    """The figure, the tables (tracking, summary, Markdown) and one GIF per keypointer, as artifacts of the run."""
    table, summary, text = tables
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plot(table, folder / "tracking.png", settings.game.name)
        table.to_csv(folder / "tracking.csv", index=False)
        summary.to_csv(folder / "summary.csv", index=False)
        (folder / "tracking.md").write_text(text)
        for label, keypointer in gifs.items():
            name = "episode_" + "".join(ch if ch.isalnum() else "_" for ch in label) + ".gif"
            episode_gif(keypointer, episode, keep, settings.gif_frames, folder / name)
        for path in sorted(folder.iterdir()):
            run.add_artifact(str(path))


def write_report(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_report = path.with_suffix(".tmp")
    tmp_report.write_text(text)
    os.replace(tmp_report, path)


@ex.main
def main(_config, _run):
    c = _config
    if not c["runs"]:
        raise ValueError("No keypointers given: pass runs=[<run id or folder>, ...] (make eval-keypoints RUNS=9,10).")
    if c["labels"] and len(c["labels"]) != len(c["runs"]):
        raise ValueError(f"labels ({len(c['labels'])}) must name every run ({len(c['runs'])}).")
    settings = EvalSettings.from_config(c)
    keypointers = [load_keypointer(run) for run in c["runs"]]  # fail on a bad id before any work
    ensure_eval_dataset(settings)
    episodes, truth, keep = test_episodes(settings.dataset, settings.game, settings.frames)
    labels = c["labels"] or [
        f"{getattr(getattr(k, 'config', None), 'model', k.kind)}:{keypointer_folder(run).name}"
        for k, run in zip(keypointers, c["runs"], strict=True)
    ]
    rows, summary = [], []
    jobs = [(i, noise) for i in range(len(keypointers)) for noise in settings.noise]
    for i, noise in tqdm(jobs, desc="evaluating", disable=not settings.progress):
        tracking, row = evaluate(keypointers[i], labels[i], noise, episodes, truth, settings, _run)
        rows += tracking
        summary.append(row)
    table, summary_table = pd.DataFrame(rows), pd.DataFrame(summary)
    command = f"make eval-keypoints GAME={c['game']} RUNS={','.join(map(str, c['runs']))}"
    text = markdown(table, summary_table, settings, command, sum(len(e.frames) for e in episodes))
    gifs = dict(zip(labels, keypointers, strict=True))
    record(_run, settings, (table, summary_table, text), gifs, episodes[0], keep)
    if c["report"]:
        write_report(Path(c["report"]), text)
    return {
        f"{r['model']}/{r['noise']}/{m}@{r['length']}": r[m]
        for r in rows
        if r["length"] in (1, 50, 200)
        for m in ("precision", "recall")
    }


if __name__ == "__main__":
    ex.run_commandline()
