"""Keypoint quality against ground truth: `python -m experiments.eval_keypoints with game=pong runs=[9,10]`.

Evaluates saved keypointers (run ids or folders; PermaKey, Transporter, IMM alike, through the keypointer protocol) on
held-out test episodes with OCAtari ground truth, clean and with each Noisy Atari distractor type: the Transporter
tracking precision/recall per trajectory length (keypoints/metrics.py documents the procedure), frame-level
precision/recall at the same distance, and collapse statistics. Beside every recall stands the same recall of the
keypointer held still (each keypoint at its mean position over the test frames, `keypoints.metrics.held_still`): what
parking alone scores; and the recall of each moving object category, the player first. Two reference rows score what
no learning gives: `random` (K uniform random points per frame) and `motion` (the training-free background-subtraction
keypointer of keypoints/motion.py), with the keypointers' K. Records every number in the Sacred run and saves a figure
of precision/recall against trajectory length for all models, the tables (Markdown and CSV) and a GIF per model of a
test episode with its keypoints and the ground-truth boxes. `report=path.md` also writes the tables there.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator
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
from data.distractors import DISTRACTORS, add_distractor_bars, check_distractors  # noqa: E402
from data.games import Game, get_game  # noqa: E402
from data.generate import policy_tag  # noqa: E402
from data.readers import Episode, read_episodes  # noqa: E402
from data.visualize import draw_objects  # noqa: E402
from experiments.common import experiment  # noqa: E402
from experiments.generation import ensure_dataset  # noqa: E402
from keypoints.draw import draw_keypoints  # noqa: E402
from keypoints.metrics import (  # noqa: E402
    collapse_statistics,
    frame_precision_recall,
    grid_to_frame,
    held_still,
    link_tracks,
    scored_objects,
    tracking_precision_recall,
    truth_from_boxes,
)
from keypoints.motion import MotionKeypointer  # noqa: E402
from keypoints.protocol import Keypointer  # noqa: E402
from training.keypointers import keypointer_folder, load_keypointer  # noqa: E402
from training.workspace import Workspace  # noqa: E402

REFERENCES = ("random", "motion")
"""Reference keypointers: uniform random points, and the training-free motion baseline (keypoints/motion.py)."""
PICKED_LENGTHS = (1, 50, 200)
"""Trajectory lengths the Markdown table and the run's result show (the CSV holds every length)."""

ex = experiment("eval_keypoints", __doc__)


@ex.config
def config():
    game = "pong"
    runs = []  # keypointer run ids (runs/<id>) or folders
    labels = []  # optional display names, one per run (default: kind and id)
    distractors = list(DISTRACTORS)  # the conditions: none, vertical, horizontal, both
    # Transporter's epsilon per game (Transporter paper, section 4.1); games without one use 0.15 (documented default).
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
    references = list(REFERENCES)  # reference rows scored beside the keypointers (none: [])
    motion_window = 32  # the motion baseline's background: per-pixel mode of this many recent frames
    motion_threshold = 16  # the motion baseline's foreground: a channel this far (uint8) from the background
    report = ""  # also write the Markdown table to this path
    progress = True


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """What an evaluation measures: `frames` test frames of `dataset` (generated with `dataset_seed` and the random
    `dataset_policy` when missing and `generate_missing`), under each of `distractors`, tracking precision/recall per
    trajectory length in `lengths` at `epsilon`, frame-level precision/recall at `frame_distance`, keypoints mapped
    by `geometry`; `references` scored beside the keypointers, the motion baseline with `motion_window` and
    `motion_threshold`."""

    game: Game
    dataset: str
    frames: int
    dataset_seed: int
    dataset_policy: str
    dataset_change_probability: float
    generate_missing: bool
    distractors: tuple[str, ...]
    lengths: tuple[int, ...]
    epsilon: float
    frame_distance: float
    geometry: str
    seed: int
    gif_frames: int
    progress: bool
    references: tuple[str, ...] = REFERENCES
    motion_window: int = 32
    motion_threshold: int = 16

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
            distractors=tuple(check_distractors(d) for d in c["distractors"]),
            lengths=tuple(c["lengths"]),
            epsilon=c["epsilon"],
            frame_distance=c["frame_distance"],
            geometry=c["geometry"],
            seed=c["seed"],
            gif_frames=c["gif_frames"],
            progress=c["progress"],
            references=tuple(check_reference(name) for name in c["references"]),
            motion_window=c["motion_window"],
            motion_threshold=c["motion_threshold"],
        )


def check_reference(name: str) -> str:
    if name not in REFERENCES:
        raise ValueError(f"Unknown reference {name!r}; known references: {list(REFERENCES)}.")
    return name


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


def reported_categories(dataset: str) -> list[tuple[int, str]]:
    """(category index, OCAtari name) of the moving categories whose recall is reported, the player ("Player") first,
    then the others in the game's order (data/games.py)."""
    manifest = storage.read_manifest(dataset)
    names = list(manifest["categories"])
    moving = sorted(manifest["moving_categories"], key=lambda name: name != "Player")  # stable: game order kept
    return [(names.index(name), name) for name in moving if name in names]


@dataclasses.dataclass
class TestTruth:
    """The test episodes' ground truth as the metrics take it: per episode, the object trajectories [T, N, 2] (NaN
    where absent) and their categories [N]; per frame, the present objects' positions [N_t, 2]; and the categories
    whose recall is reported."""

    trajectories: list[np.ndarray]
    categories: list[np.ndarray]
    frames: list[np.ndarray]
    reported: list[tuple[int, str]]

    @classmethod
    def link(cls, episodes: list[Episode], truth: list, reported: list[tuple[int, str]]) -> TestTruth:
        """Object trajectories linked frame to frame (keypoints.metrics.link_tracks) from `test_episodes`' truth."""
        tracks = [link_tracks(per_frame) for per_frame in truth]
        trajectories = [
            np.stack([t.positions for t in ts], axis=1) if ts else np.full((len(e.frames), 0, 2), np.nan)
            for ts, e in zip(tracks, episodes, strict=True)
        ]
        categories = [np.array([t.category for t in ts], int) for ts in tracks]
        return cls(trajectories, categories, [p for per_frame in truth for _, p in per_frame], reported)


def chunks_with_bars(frames: np.ndarray, distractors: str, seed: int, batch: int = 32) -> Iterator[tf.Tensor]:
    """uint8 frames in batches of `batch`, with distractors drawn when asked (seeded by `seed` and the batch's start,
    so every model sees the same bars)."""
    for start in range(0, len(frames), batch):
        chunk = tf.constant(frames[start : start + batch])
        yield add_distractor_bars(chunk, distractors, tf.constant([seed, start], tf.int64))


def detect(keypointer, frames: np.ndarray, distractors: str, seed: int, geometry: str, batch: int = 32) -> np.ndarray:
    """Keypoints [T, K, 2] in normalised frame coordinates for uint8 frames, with distractors drawn when asked."""
    grid, rf = keypointer.geometry
    out = []
    for chunk in chunks_with_bars(frames, distractors, seed, batch):
        coordinates = keypointer(chunk).coordinates.numpy()
        out.append(grid_to_frame(coordinates, grid, rf if geometry == "keypointer" else None))
    return np.concatenate(out)


def detect_motion(
    baseline: MotionKeypointer, frames: np.ndarray, distractors: str, seed: int, geometry: str
) -> np.ndarray:
    """The motion baseline's keypoints [T, K, 2] on one episode (its window reset at the start), on the frames
    `detect` gives a keypointer, mapped to the frame by the same `grid_to_frame`."""
    baseline.reset()
    coordinates = np.concatenate(
        [baseline.track(chunk.numpy()) for chunk in chunks_with_bars(frames, distractors, seed)]
    )
    grid, rf = baseline.geometry
    return grid_to_frame(coordinates, grid, rf if geometry == "keypointer" else None)


def random_keypoints(frames: int, k: int, seed: int) -> np.ndarray:
    """[frames, K, 2] points drawn uniformly over the frame (normalised [-1, 1], independently per frame), seeded."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (frames, k, 2))


def reference_detections(name: str, k: int, episodes: list[Episode], distractors: str, settings: EvalSettings) -> list:
    """Per episode, the keypoints [T, K, 2] of reference `name` (REFERENCES) under `distractors`."""
    if name == "random":
        return [random_keypoints(len(e.frames), k, settings.seed + j) for j, e in enumerate(episodes)]
    baseline = MotionKeypointer(k, settings.motion_window, settings.motion_threshold)
    return [
        detect_motion(baseline, e.frames, distractors, settings.seed + j, settings.geometry)
        for j, e in enumerate(episodes)
    ]


def episode_gif(keypointer, episode: Episode, keep: np.ndarray, count: int, path: Path) -> None:
    frames = episode.frames[:count]
    coordinates = keypointer(frames).coordinates.numpy()
    drawn = draw_keypoints(frames, coordinates, scale=4)
    boxed = [draw_objects(f, o, keep, scale=4) for f, o in zip(frames, episode.objects[:count], strict=True)]
    imageio.mimsave(path, [np.concatenate([b, d], axis=1) for b, d in zip(boxed, drawn, strict=True)], duration=0.1)


def plot(table: pd.DataFrame, path: Path, game: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    styles = dict(zip(DISTRACTORS, ["-", "--", ":", "-."], strict=True))
    for (label, distractors), rows in table.groupby(["model", "distractors"], sort=False):
        for ax, metric in zip(axes, ("precision", "recall"), strict=True):
            ax.plot(
                rows["length"],
                rows[metric],
                styles.get(distractors, "-"),
                marker="o",
                ms=3,
                label=f"{label} ({distractors})",
            )
    for ax, metric in zip(axes, ("precision", "recall"), strict=True):
        ax.set_xlabel("trajectory length (frames)")
        ax.set_title(f"{game}: tracking {metric}")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclasses.dataclass
class Tables:
    """The evaluation's tables: tracking (a row per model, distractors and length), summary (per model and
    distractors) and categories (per model, distractors, length and reported category)."""

    tracking: pd.DataFrame
    summary: pd.DataFrame
    categories: pd.DataFrame


def _cells(values: list[float], signed: bool = False) -> str:
    return " | ".join(f"{v:+.3f}" if signed and not np.isnan(v) else f"{v:.3f}" for v in values)


def tracking_markdown(table: pd.DataFrame) -> list[str]:
    """Precision at the picked lengths, then per picked length the recall, the recall held still, their difference."""
    lengths = [n for n in PICKED_LENGTHS if n in set(table["length"])]
    header = [f"precision@{n}" for n in lengths]
    for n in lengths:
        header += [f"recall@{n}", f"recall@{n} held still", f"recall@{n} - held still"]
    lines = ["| model | distractors | " + " | ".join(header) + " |", "|---|---|" + "---|" * len(header)]
    for (label, distractors), rows in table.groupby(["model", "distractors"], sort=False):
        at = rows.set_index("length")
        cells = _cells([at.loc[n, "precision"] for n in lengths])
        for n in lengths:
            recall, still = at.loc[n, "recall"], at.loc[n, "recall_held_still"]
            cells += f" | {_cells([recall, still])} | {_cells([recall - still], signed=True)}"
        lines.append(f"| {label} | {distractors} | {cells} |")
    return lines


def category_markdown(table: pd.DataFrame, length: int) -> list[str]:
    """Per model and distractors, each reported category's recall@length and the same held still; the header counts the
    category's true trajectories."""
    at = table[table["length"] == length]
    names = list(dict.fromkeys(at["category"]))
    counts = at.groupby("category", sort=False)["trajectories"].first()
    header = [h for name in names for h in (f"{name} recall@{length} ({counts[name]})", f"{name} held still")]
    lines = ["| model | distractors | " + " | ".join(header) + " |", "|---|---|" + "---|" * len(header)]
    for (label, distractors), rows in at.groupby(["model", "distractors"], sort=False):
        rows = rows.set_index("category")
        values = [rows.loc[name, metric] for name in names for metric in ("recall", "recall_held_still")]
        lines.append(f"| {label} | {distractors} | {_cells(values)} |")
    return lines


def summary_markdown(summary: pd.DataFrame) -> list[str]:
    lines = [
        "| model | distractors | K | frame precision | frame recall | frame recall held still | distinct | collapsed "
        "| spread | motion |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in summary.iterrows():
        lines.append(
            f"| {r['model']} | {r['distractors']} | {r['K']} | {r['frame_precision']:.3f} | {r['frame_recall']:.3f} | "
            f"{r['frame_recall_held_still']:.3f} | {r['distinct']:.2f} | {r['collapsed_fraction']:.2f} | "
            f"{r['spread']:.3f} | {r['motion']:.3f} |"
        )
    return lines


def markdown(tables: Tables, settings: EvalSettings, command: str, frames: int) -> str:
    lines = [
        f"# Keypoint tracking quality: {settings.game.name}",
        "",
        f"Written by `{command}`. {frames} test frames of `{settings.dataset}`, epsilon {settings.epsilon} (normalised "
        f"[-1, 1] units), keypoints mapped to frame pixels by their `{settings.geometry}` geometry. Tracking precision "
        "and recall per trajectory length as in keypoints/metrics.py; NaN where the test episodes hold no window of "
        "that length. Beside each recall, the same keypointer held still (each keypoint at its mean position over the "
        "test frames) and the recall beyond it: what tracking adds to parking. Reference rows: `random` (K uniform "
        f"random points per frame) and `motion` (keypoints/motion.py: centroids of the K largest blobs differing from "
        f"the per-pixel mode of the last {settings.motion_window} frames).",
        "",
        *tracking_markdown(tables.tracking),
    ]
    if len(tables.categories):
        length = int(tables.categories["length"].min())  # 1 unless `lengths` leaves it out
        lines += [
            "",
            f"Recall@{length} per moving object category (true trajectories in brackets), the player first, beside "
            "the same held still (categories.csv holds every length):",
            "",
            *category_markdown(tables.categories, length),
        ]
    lines += [
        "",
        "Frame-level precision/recall at distance epsilon (and the frame recall held still), and collapse statistics "
        "(distinct spots of K per frame, share of keypoints sharing a spot, mean distance to their centroid, mean "
        "per-keypoint motion):",
        "",
        *summary_markdown(tables.summary),
    ]
    return "\n".join(lines) + "\n"


def tracking_rows(
    detected: list[np.ndarray], label: str, distractors: str, truth: TestTruth, settings: EvalSettings, run
) -> tuple[list[dict], list[dict]]:
    """Tracking precision/recall per trajectory length beside the same held still, and per reported category its recall
    beside the same held still; each number also logged in the Sacred `run` (step: the length)."""
    scored = {
        "": tracking_precision_recall(
            zip(detected, truth.trajectories, strict=True), settings.lengths, settings.epsilon, truth.categories
        ),
        "_held_still": tracking_precision_recall(
            zip(held_still(detected), truth.trajectories, strict=True),
            settings.lengths,
            settings.epsilon,
            truth.categories,
        ),
    }
    rows, categories = [], []
    for length in settings.lengths:
        row = {"model": label, "distractors": distractors, "length": length}
        for suffix, result in scored.items():
            row.update({f"{metric}{suffix}": result[length][metric] for metric in ("precision", "recall")})
            row.setdefault("windows", result[length]["windows"])  # the CSV's columns: the plain ones first
        rows.append(row)
        for index, name in truth.reported:
            category = {"model": label, "distractors": distractors, "length": length, "category": name}
            for suffix, result in scored.items():
                category[f"recall{suffix}"] = result[length]["category_recall"].get(index, float("nan"))
            category["trajectories"] = scored[""][length]["category_trajectories"].get(index, 0)
            categories.append(category)
    for row in rows:
        for metric in ("precision", "recall", "precision_held_still", "recall_held_still"):
            run.log_scalar(f"{label}.{distractors}.{metric}", row[metric], row["length"])
    for category in categories:
        for metric in ("recall", "recall_held_still"):
            run.log_scalar(
                f"{label}.{distractors}.{metric}.{category['category']}", category[metric], category["length"]
            )
    return rows, categories


def evaluate(
    detected: list[np.ndarray], label: str, distractors: str, truth: TestTruth, settings: EvalSettings, run
) -> tuple[list[dict], dict, list[dict]]:
    """One keypointer's keypoints (per episode, [T, K, 2] normalised frame coordinates) under one distractors
    setting: the tracking rows (one per trajectory length), the summary row (frame-level precision/recall, the frame
    recall held still, collapse statistics) and the category rows, each number also logged in the Sacred `run`."""
    rows, categories = tracking_rows(detected, label, distractors, truth, settings, run)
    frame = frame_precision_recall(np.concatenate(detected), truth.frames, settings.frame_distance)
    still = frame_precision_recall(np.concatenate(held_still(detected)), truth.frames, settings.frame_distance)
    stats = collapse_statistics(np.concatenate(detected))
    summary = {"model": label, "distractors": distractors, "K": int(detected[0].shape[1])}
    summary.update(frame_precision=frame["precision"], frame_recall=frame["recall"])
    summary.update(frame_recall_held_still=still["recall"], **stats)
    for name, value in summary.items():
        if name not in ("model", "distractors", "K"):
            run.log_scalar(f"{label}.{distractors}.{name}", value)
    return rows, summary, categories


def reference_labels(names: tuple[str, ...], ks: list[int]) -> list[tuple[str, str, int]]:
    """(label, reference, K) of every reference row: one per reference and distinct K of the keypointers, labelled by
    the reference's name alone when all keypointers share one K."""
    distinct = sorted(set(ks))
    return [(name if len(distinct) == 1 else f"{name}:K{k}", name, k) for name in names for k in distinct]


def add_artifacts(
    run,
    settings: EvalSettings,
    tables: Tables,
    text: str,
    gifs: dict[str, Keypointer],
    episode: Episode,
    keep: np.ndarray,
) -> None:
    """The figure, the tables (tracking, summary, categories as CSV; all in Markdown) and one GIF per keypointer, as
    artifacts of the run."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plot(tables.tracking, folder / "tracking.png", settings.game.name)
        tables.tracking.to_csv(folder / "tracking.csv", index=False)
        tables.summary.to_csv(folder / "summary.csv", index=False)
        tables.categories.to_csv(folder / "categories.csv", index=False)
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


def evaluate_all(
    keypointers: dict[str, Keypointer], episodes: list[Episode], truth: TestTruth, settings: EvalSettings, run
) -> Tables:
    """Every keypointer (by label), then every reference with the keypointers' K, under every distractors setting."""
    references = reference_labels(settings.references, [k.num_keypoints for k in keypointers.values()])
    jobs = [
        (label, distractors)
        for label in [*keypointers, *(r[0] for r in references)]
        for distractors in settings.distractors
    ]
    reference_of = {label: (name, k) for label, name, k in references}
    rows: list[dict] = []
    summary: list[dict] = []
    categories: list[dict] = []
    for label, distractors in tqdm(jobs, desc="evaluating", disable=not settings.progress):
        if label in reference_of:
            detected = reference_detections(*reference_of[label], episodes, distractors, settings)
        else:
            detected = [
                detect(keypointers[label], e.frames, distractors, settings.seed + j, settings.geometry)
                for j, e in enumerate(episodes)
            ]
        tracking, row, per_category = evaluate(detected, label, distractors, truth, settings, run)
        rows, categories = rows + tracking, categories + per_category
        summary.append(row)
    return Tables(pd.DataFrame(rows), pd.DataFrame(summary), pd.DataFrame(categories))


def report_command(c: dict) -> str:
    """The make command that writes this report, as its first line says: the game, the runs and, when the held-out
    frames are not the default uniform policy's, the policy (`POLICY=`, `CHANGE_PROBABILITY=`)."""
    command = f"make eval-keypoints GAME={c['game']} RUNS={','.join(map(str, c['runs']))}"
    if c["dataset_policy"] != "uniform":
        command += f" POLICY={c['dataset_policy']} CHANGE_PROBABILITY={c['dataset_change_probability']}"
    return command


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
    test_truth = TestTruth.link(episodes, truth, reported_categories(settings.dataset))
    labels = c["labels"] or [
        f"{getattr(getattr(k, 'config', None), 'model', k.kind)}:{keypointer_folder(run).name}"
        for k, run in zip(keypointers, c["runs"], strict=True)
    ]
    ks = [k.num_keypoints for k in keypointers]
    if clash := set(labels) & {label for label, _, _ in reference_labels(settings.references, ks)}:
        raise ValueError(f"Labels {sorted(clash)} name reference rows; pick other labels.")
    gifs = dict(zip(labels, keypointers, strict=True))
    tables = evaluate_all(gifs, episodes, test_truth, settings, _run)
    text = markdown(tables, settings, report_command(c), sum(len(e.frames) for e in episodes))
    add_artifacts(_run, settings, tables, text, gifs, episodes[0], keep)
    if c["report"]:
        write_report(Path(c["report"]), text)
    return {
        f"{r['model']}/{r['distractors']}/{m}@{r['length']}": r[m]
        for r in tables.tracking.to_dict("records")
        if r["length"] in PICKED_LENGTHS
        for m in ("precision", "recall", "recall_held_still")
    }


if __name__ == "__main__":
    ex.run_commandline()
