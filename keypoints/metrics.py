"""Keypoint quality against ground-truth object positions (Transporter paper, section 4.1 and Figure 4).

All positions here are (y, x) in the normalised frame coordinates of the keypointer protocol: [-1, 1] spanning the
84x84 frame's pixel centres (pixel row r is y = 2 r / 83 - 1), so the papers' epsilon (e.g. 0.2 for Pong) applies
as is. `truth_from_boxes` brings native-pixel ground truth into this frame and `grid_to_frame` brings keypoints there
with the receptive-field geometry of the network that made them (docs/method.md section 1.4).

The tracking evaluation, as we implement it (the paper's code was never released; our reading, documented):
  1. The test episodes are cut into windows of L consecutive frames (non-overlapping, the last partial one dropped).
  2. In a window, each of the K keypoints is one detected trajectory; each ground-truth object present in at least
     one frame of the window is one true trajectory (frames where it is absent are ignored).
  3. The distance of a (detected, true) pair is the mean Euclidean distance over the frames where the object is
     present. Pairs farther than epsilon cannot match.
  4. One-to-one matching by min-cost linear sum assignment (scipy) over the pairs that can match.
  5. Precision = matches / detected trajectories, recall = matches / true trajectories, both summed over all windows
     of all episodes (micro-average) before dividing.
  6. Recall of one object category (e.g. OCAtari's "Player"): its matched true trajectories / its true trajectories,
     in the same one-to-one matching (a keypoint has no category, so precision is not split).
A recall is read beside the same keypointer held still (`held_still`: each keypoint at its mean position): a keypoint
parked where objects often are scores recall without tracking anything, and only the recall beyond that is tracking.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from keypoints.ops import NATIVE_SHAPE, native_to_frame_pixels

FRAME_SIZE = 84


def normalise_frame_pixels(rowcol: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray:
    """(row, col) frame pixels (pixel-centre convention) -> (y, x) in [-1, 1] over the pixel centres."""
    return np.asarray(rowcol, np.float64) / (size - 1) * 2.0 - 1.0


def truth_from_boxes(boxes_xywh: np.ndarray) -> np.ndarray:
    """Ground-truth box centres in native pixels (x, y, w, h; pixel-edge) -> (y, x) normalised frame coordinates,
    through the INTER_AREA resize geometry of `keypoints.ops.native_to_frame_pixels`."""
    boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    centres = boxes[:, :2] + boxes[:, 2:] / 2.0
    return normalise_frame_pixels(native_to_frame_pixels(centres))


def scored_objects(boxes_xywh: np.ndarray, categories: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """[n] bool: which objects a keypoint is scored against, those of a category `keep` marks (a boolean mask over
    category indices) whose box centre lies on the native 160x210 screen; boxes are (x, y, w, h) native pixels."""
    boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    x, y = (boxes[:, :2] + boxes[:, 2:] / 2.0).T
    on_screen = (x >= 0) & (x < NATIVE_SHAPE[1]) & (y >= 0) & (y < NATIVE_SHAPE[0])
    return np.asarray(keep)[np.asarray(categories, int)] & on_screen


def receptive_field(
    input_size: int, kernels: Sequence[int], strides: Sequence[int], frame_size: int = FRAME_SIZE
) -> tuple[float, float]:
    """(scale, offset) such that cell i of the network's output map has its receptive-field centre at frame pixel
    scale * i + offset (pixel-centre convention), for a stack of 'same'-padded convolutions on an input_size image
    that was bilinearly resized (half-pixel centres) from the frame_size frame.

    TensorFlow's 'same' padding puts floor(pad / 2) before: with output n_out = ceil(n / s) and
    pad = max((n_out - 1) s + k - n, 0), output cell j covers input j s - pad_before + [0, k - 1], centre
    j s + (k - 1) / 2 - pad_before. The map is affine in j, and so is the composition over layers.
    """
    scale, offset, n = 1.0, 0.0, input_size
    for k, s in zip(kernels, strides, strict=True):
        n_out = -(-n // s)
        pad_before = max((n_out - 1) * s + k - n, 0) // 2
        layer_offset = (k - 1) / 2.0 - pad_before
        offset += scale * layer_offset  # this layer's cell j -> previous coordinates s j + layer_offset
        scale *= s
        n = n_out
    ratio = frame_size / input_size  # input pixel p -> frame pixel (p + 0.5) * ratio - 0.5
    return scale * ratio, (offset + 0.5) * ratio - 0.5


def grid_to_frame(
    keypoints: np.ndarray, grid_size: int, geometry: tuple[float, float] | None, frame_size: int = FRAME_SIZE
) -> np.ndarray:
    """Keypoints (y, x) in [-1, 1] over a grid_size map -> normalised frame coordinates.

    With `geometry` (scale, offset) from `receptive_field`, the continuous grid index g = (mu + 1) / 2 (grid - 1)
    goes to frame pixel scale g + offset. With None, the naive mapping: the keypoint's value is used as is (the map's
    linspace spans the frame), which ignores the receptive-field offset.
    """
    keypoints = np.asarray(keypoints, np.float64)
    if geometry is None:
        return keypoints
    scale, offset = geometry
    index = (keypoints + 1.0) / 2.0 * (grid_size - 1)
    return normalise_frame_pixels(scale * index + offset, frame_size)


@dataclasses.dataclass
class Track:
    """A ground-truth object's trajectory over an episode: positions [T, 2] (NaN where absent)."""

    category: int
    positions: np.ndarray


def link_tracks(
    frames: Sequence[tuple[np.ndarray, np.ndarray]], gate: float = 0.3, keep: Iterable[int] | None = None
) -> list[Track]:
    """Ground-truth trajectories from per-frame detections.

    The stored ground truth keeps each frame's objects (category, position) but no identity, so objects of one
    category are linked frame to frame by min-cost assignment of their distance to each track's last position;
    a link longer than `gate` (normalised units) starts a new track. Objects of one category are thus told apart
    by continuity (MsPacman's four ghosts), and an object that disappears and reappears elsewhere starts afresh.

    Args:
      frames: per frame, (categories [n] int, positions [n, 2] normalised (y, x)).
      gate: maximal per-frame jump of one object.
      keep: categories to track (the game's moving entities); None keeps all.
    """
    keep_set = None if keep is None else set(int(c) for c in keep)
    tracks: list[tuple[int, dict[int, np.ndarray]]] = []  # (category, {frame: position})
    active: dict[int, list[int]] = {}  # category -> indices into tracks alive at the previous frame
    for t, (categories, positions) in enumerate(frames):
        categories = np.asarray(categories).reshape(-1)
        positions = np.asarray(positions, np.float64).reshape(-1, 2)
        alive: dict[int, list[int]] = {}
        for category in np.unique(categories):
            category = int(category)
            if keep_set is not None and category not in keep_set:
                continue
            current = positions[categories == category]
            previous = active.get(category, [])
            assigned: dict[int, int] = {}
            if previous:
                last = np.stack([tracks[i][1][t - 1] for i in previous])
                cost = np.linalg.norm(last[:, None, :] - current[None, :, :], axis=-1)
                for r, c in zip(*linear_sum_assignment(cost), strict=True):
                    if cost[r, c] <= gate:
                        assigned[int(c)] = previous[int(r)]
            alive[category] = []
            for j, position in enumerate(current):
                if j not in assigned:
                    tracks.append((category, {}))
                    assigned[j] = len(tracks) - 1
                tracks[assigned[j]][1][t] = position
                alive[category].append(assigned[j])
        active = alive
    result = []
    for category, points in tracks:
        positions = np.full((len(frames), 2), np.nan)
        for t, p in points.items():
            positions[t] = p
        result.append(Track(category, positions))
    return result


def window_matches(detected: np.ndarray, truth: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """Which object trajectories of one window are true trajectories, and which of them a keypoint trajectory matches.

    Args:
      detected: [L, K, 2] keypoint trajectories.
      truth: [L, N, 2] object trajectories, NaN where an object is absent.
    Returns:
      present [N] bool (the object is in at least one frame of the window: a true trajectory) and matched [N] bool
      (matched one-to-one to a keypoint trajectory within epsilon; always a subset of present).
    """
    present_frames = ~np.isnan(truth[..., 0])  # [L, N]
    present = present_frames.any(axis=0)
    matched = np.zeros_like(present)
    if detected.shape[1] == 0 or not present.any():
        return present, matched
    columns = np.flatnonzero(present)
    truth, present_frames = truth[:, columns], present_frames[:, columns]
    distance = np.linalg.norm(detected[:, :, None, :] - np.nan_to_num(truth)[:, None, :, :], axis=-1)  # [L, K, n]
    mean = (distance * present_frames[:, None, :]).sum(axis=0) / present_frames.sum(axis=0)[None, :]  # [K, n]
    feasible = mean <= epsilon
    rows, cols = linear_sum_assignment(np.where(feasible, mean, 1e6))
    matched[columns[cols[feasible[rows, cols]]]] = True
    return present, matched


def match_window(detected: np.ndarray, truth: np.ndarray, epsilon: float) -> tuple[int, int, int]:
    """(matches, detected trajectories, true trajectories) in one window (`window_matches` for the arguments); objects
    absent from the whole window are not counted."""
    present, matched = window_matches(detected, truth, epsilon)
    return int(matched.sum()), detected.shape[1], int(present.sum())


def _windows(
    episodes: Sequence[tuple[np.ndarray, np.ndarray]], length: int, epsilon: float
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """(episode index, K, present [N], matched [N]) of every window of `length` frames (`window_matches`)."""
    if length < 1:
        raise ValueError(f"Trajectory lengths must be >= 1, got {length}.")
    for index, (detected, truth) in enumerate(episodes):
        if detected.shape[0] != truth.shape[0]:
            raise ValueError(f"Detected ({detected.shape[0]}) and true ({truth.shape[0]}) frames differ.")
        for start in range(0, detected.shape[0] - length + 1, length):
            window = slice(start, start + length)
            yield (index, detected.shape[1], *window_matches(detected[window], truth[window], epsilon))


def tracking_precision_recall(
    episodes: Iterable[tuple[np.ndarray, np.ndarray]],
    lengths: Sequence[int],
    epsilon: float,
    categories: Sequence[np.ndarray] | None = None,
) -> dict[int, dict]:
    """Precision and recall of keypoint trajectories per trajectory length (module docstring for the procedure).

    Args:
      episodes: per episode, (detected [T, K, 2], truth [T, N, 2] with NaN where absent), normalised coordinates.
      lengths: window lengths L (e.g. 1..200).
      epsilon: matching threshold in normalised units (the paper's per-game value).
      categories: per episode, [N] the category of each object trajectory; adds the recall of each category.
    Returns:
      {L: {"precision", "recall", "windows"}}; precision/recall are NaN when no window of that length exists. With
      `categories`, also "category_recall" {category: recall} and "category_trajectories" {category: true
      trajectories}, over the categories with at least one true trajectory: the share of that category's true
      trajectories that a keypoint matched (the same one-to-one matching; precision has no category).
    """
    episodes = list(episodes)
    result: dict[int, dict] = {}
    for length in lengths:
        matches = detected_total = true_total = windows = 0
        true_by_category: collections.Counter[int] = collections.Counter()
        matched_by_category: collections.Counter[int] = collections.Counter()
        for index, k, present, matched in _windows(episodes, length, epsilon):
            windows, detected_total = windows + 1, detected_total + k
            matches, true_total = matches + int(matched.sum()), true_total + int(present.sum())
            if categories is not None:
                true_by_category.update(int(c) for c in np.asarray(categories[index])[present])
                matched_by_category.update(int(c) for c in np.asarray(categories[index])[matched])
        result[length] = {
            "precision": matches / detected_total if detected_total else float("nan"),
            "recall": matches / true_total if true_total else float("nan"),
            "windows": windows,
        }
        if categories is not None:
            result[length]["category_recall"] = {c: matched_by_category[c] / n for c, n in true_by_category.items()}
            result[length]["category_trajectories"] = dict(true_by_category)
    return result


def held_still(detected: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The static keypointer of a keypointer's output: every keypoint replaced, in every frame of every episode, by its
    mean position over all those frames.

    Scored like the keypointer itself, it says how much of the keypointer's recall a keypoint parked where objects
    often are would get anyway; the recall beyond it is the tracking. The mean is taken about the first frame's
    position (x0 + mean(x - x0)), so a keypointer that never moves is held still exactly where it is.

    Args:
      detected: per episode, [T, K, 2] keypoints (the same K in all).
    Returns:
      per episode, [T, K, 2] with every frame the [K, 2] mean positions.
    """
    frames = np.concatenate([np.asarray(d, np.float64) for d in detected])
    if len(frames) == 0:
        return [np.asarray(d, np.float64) for d in detected]
    mean = frames[0] + (frames - frames[0]).mean(axis=0)
    return [np.broadcast_to(mean, np.shape(d)).copy() for d in detected]


def frame_precision_recall(
    detected: Sequence[np.ndarray], truth: Sequence[np.ndarray], distance: float
) -> dict[str, float]:
    """Frame-level precision@d / recall@d: per frame, keypoints and present objects matched one-to-one (min-cost
    assignment) when closer than `distance`; precision = matches / keypoints, recall = matches / objects, summed
    over frames. `detected[t]` is [K, 2], `truth[t]` is [N_t, 2] (present objects only)."""
    matches = keypoints = objects = 0
    for d, g in zip(detected, truth, strict=True):
        d, g = np.asarray(d).reshape(-1, 2), np.asarray(g).reshape(-1, 2)
        keypoints, objects = keypoints + len(d), objects + len(g)
        if len(d) and len(g):
            cost = np.linalg.norm(d[:, None] - g[None], axis=-1)
            rows, cols = linear_sum_assignment(cost)
            matches += int((cost[rows, cols] <= distance).sum())
    return {
        "precision": matches / keypoints if keypoints else float("nan"),
        "recall": matches / objects if objects else float("nan"),
    }


def collapse_statistics(keypoints: np.ndarray, radius: float = 0.05) -> dict[str, float]:
    """How collapsed a keypointer's output is, over frames [T, K, 2] (normalised coordinates).

    Returns:
      distinct: mean number of distinct spots per frame (keypoints within `radius` of each other, single-linkage,
        count as one spot); K means no two coincide, 1 means all collapsed onto one spot.
      collapsed_fraction: mean fraction of keypoints that share their spot with another keypoint.
      spread: mean over frames of the mean distance of the keypoints to their centroid.
      motion: mean over keypoints of the standard deviation of its position over frames (0: it never moves).
    """
    keypoints = np.asarray(keypoints, np.float64)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must be [T, K, 2], got {keypoints.shape}.")
    t, k, _ = keypoints.shape
    distinct, shared = [], []
    for frame in keypoints:
        close = np.linalg.norm(frame[:, None] - frame[None], axis=-1) <= radius
        labels = list(range(k))  # union-find over close pairs

        def find(i: int, labels: list[int] = labels) -> int:
            while labels[i] != i:
                labels[i] = labels[labels[i]]
                i = labels[i]
            return i

        for i, j in zip(*np.nonzero(np.triu(close, 1)), strict=True):
            labels[find(int(i))] = find(int(j))
        roots = [find(i) for i in range(k)]
        distinct.append(len(set(roots)))
        shared.append(np.mean([roots.count(r) > 1 for r in roots]))
    centroid = keypoints.mean(axis=1, keepdims=True)
    return {
        "distinct": float(np.mean(distinct)),
        "collapsed_fraction": float(np.mean(shared)),
        "spread": float(np.linalg.norm(keypoints - centroid, axis=-1).mean()),
        "motion": float(keypoints.std(axis=0).mean()) if t > 1 else 0.0,
    }


def mass_on_objects(maps: np.ndarray, boxes: Sequence[np.ndarray], size: int = FRAME_SIZE) -> np.ndarray:
    """The share of each map's mass that lies on ground-truth objects: how much of an error map marks the objects.

    Args:
      maps: [T, size, size, M] non-negative maps on the frame (e.g. PermaKey's error maps).
      boxes: per frame, [N_t, 4] (x, y, w, h) native-pixel boxes (pixel-edge) of the objects to count.
      size: the maps' side in frame pixels.
    Returns:
      [M] float64: sum over frames of the mass inside the boxes (each box covers the frame pixels whose area it
      touches, through the INTER_AREA geometry) / the total mass; 0 where there is no mass at all.
    """
    maps = np.asarray(maps, np.float64)
    inside = np.zeros(maps.shape[-1])
    scale = np.array([size / 160.0, size / 210.0])  # native (x, y) -> frame (col, row) pixel edges
    for frame_maps, frame_boxes in zip(maps, boxes, strict=True):
        mask = np.zeros((size, size), bool)
        for x, y, w, h in np.asarray(frame_boxes, np.float64).reshape(-1, 4):
            c0, r0 = np.floor(np.array([x, y]) * scale).astype(int)
            c1, r1 = np.ceil(np.array([x + w, y + h]) * scale).astype(int)
            mask[max(r0, 0) : max(r1, 0), max(c0, 0) : max(c1, 0)] = True
        inside += frame_maps[mask].sum(axis=0)
    total = maps.sum(axis=(0, 1, 2))
    return np.where(total > 0, inside / np.maximum(total, 1e-300), 0.0)
