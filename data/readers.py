"""tf.data pipelines over generated datasets and Atari-Zoo style npz rollouts.

All pipelines yield frames as float32 [B, 84, 84, 3] in [0, 1], the keypointer protocol's input. Before reading, the
manifest is checked against what the caller expects and every shard's size and checksum are verified, so a bad dataset
fails at once with the file named, not minutes into training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tensorflow as tf

from data import storage
from data.atari import FRAME_SHAPE, NATIVE_SHAPE, Objects
from data.distractors import add_distractor_bars, check_distractors

_FEATURES = {
    "frame": tf.io.FixedLenFeature([], tf.string),
    "action": tf.io.FixedLenFeature([], tf.int64),
    "reward": tf.io.FixedLenFeature([], tf.float32),
    "terminated": tf.io.FixedLenFeature([], tf.int64),
    "truncated": tf.io.FixedLenFeature([], tf.int64),
    "episode": tf.io.FixedLenFeature([], tf.int64),
    "step": tf.io.FixedLenFeature([], tf.int64),
    "objects/category": tf.io.VarLenFeature(tf.int64),
    "objects/box": tf.io.VarLenFeature(tf.float32),
}


def _decode_frame(raw: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.io.decode_raw(raw, tf.uint8), FRAME_SHAPE)


def _to_float(frames: tf.Tensor) -> tf.Tensor:
    return tf.cast(frames, tf.float32) / 255.0


def _shards(root: str | Path, split: str, game: str | None) -> tuple[list[int], list[str]]:
    """Frame counts and paths of a split's verified shards."""
    manifest = storage.read_manifest(root)
    storage.check_manifest(manifest, game=game, frame_shape=list(FRAME_SHAPE))
    paths = [str(p) for p in storage.verify_shards(root, manifest, split)]
    return [s["frames"] for s in manifest["splits"][split]["shards"]], paths


def _records(paths: list[str], shuffle: bool, seed: int) -> tf.data.Dataset:
    files = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return files.interleave(
        lambda p: tf.data.TFRecordDataset(p, compression_type="GZIP"),
        cycle_length=min(len(paths), 4),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def _distract(ds: tf.data.Dataset, distractors: str, seed: int) -> tf.data.Dataset:
    """Applies distractor bars element-wise with a seed per element (reproducible for a given seed)."""
    if check_distractors(distractors) == "none":
        return ds
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    return tf.data.Dataset.zip((ds, seeds)).map(
        lambda x, s: tf.nest.map_structure(lambda f: add_distractor_bars(f, distractors, s), x),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def frames_dataset(
    root: str | Path,
    split: str,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    shuffle_buffer: int = 10_000,
    distractors: str = "none",
    game: str | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Single frames (PermaKey): float32 [B, 84, 84, 3] in [0, 1]; one pass over the split per iteration."""
    _, paths = _shards(root, split, game)
    ds = _records(paths, shuffle, seed).map(
        lambda r: _decode_frame(tf.io.parse_single_example(r, {"frame": _FEATURES["frame"]})["frame"]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = _distract(ds, distractors, seed)
    return ds.batch(batch_size, drop_remainder=drop_remainder).map(_to_float).prefetch(tf.data.AUTOTUNE)


def sample_pair_indices(
    episodes: tf.Tensor, min_offset: int, max_offset: int, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Source and target record indices for every record that has a partner min..max records later in its episode.

    Args:
      episodes: [N] episode id of each record of a shard, records of an episode contiguous.
      seed: [2] stateless seed for the offsets.
    Returns:
      source, target: [M] int64 indices, target - source uniform in [min_offset, min(max_offset, episode end - source)].
    """
    n = tf.shape(episodes, out_type=tf.int64)[0]
    index = tf.range(n)
    changes = tf.concat([episodes[1:] != episodes[:-1], [True]], 0)
    ends = tf.where(changes)[:, 0]  # [E] index of the last record of each episode
    end = tf.gather(ends, tf.searchsorted(ends, index, side="left"))  # [N]
    room = tf.minimum(end - index, max_offset)
    source = tf.boolean_mask(index, room >= min_offset)
    room = tf.boolean_mask(room, room >= min_offset)
    u = tf.random.stateless_uniform(tf.shape(source), seed=seed)
    offset = min_offset + tf.cast(tf.floor(u * tf.cast(room - min_offset + 1, tf.float32)), tf.int64)
    return source, source + tf.minimum(offset, room)


def pairs_dataset(
    root: str | Path,
    split: str,
    *,
    batch_size: int,
    seed: int,
    min_offset: int = 1,
    max_offset: int = 20,
    shuffle: bool = True,
    shuffle_buffer: int = 10_000,
    distractors: str = "none",
    game: str | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Frame pairs (Transporter): (source, target) float32 [B, 84, 84, 3] each, from one episode.

    Every record with a partner at least `min_offset` records later in its episode is a source once per pass; the
    offset is uniform in [min_offset, max_offset], cut at the episode's end. For `diverse_pairs` datasets each stored
    pair gives one (first, second) pair. A shard is decoded whole, so memory holds a few shards' frames.
    """
    if not 1 <= min_offset <= max_offset:
        raise ValueError(f"Need 1 <= min_offset <= max_offset, got {min_offset}, {max_offset}.")
    sizes, paths = _shards(root, split, game)
    parse = {"frame": _FEATURES["frame"], "episode": _FEATURES["episode"]}
    per_shard = tf.data.Dataset.from_tensor_slices((paths, tf.constant(sizes, tf.int64)))

    def shard_pairs(path: tf.Tensor, size: tf.Tensor, shard_seed: tf.Tensor) -> tf.data.Dataset:
        records = tf.data.TFRecordDataset(path, compression_type="GZIP").batch(size)
        whole = tf.io.parse_example(records.get_single_element(), parse)
        source, target = sample_pair_indices(whole["episode"], min_offset, max_offset, shard_seed)
        frames = whole["frame"]
        return tf.data.Dataset.from_tensor_slices((source, target)).map(
            lambda s, t: (_decode_frame(frames[s]), _decode_frame(frames[t]))
        )

    if shuffle:
        per_shard = per_shard.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip((per_shard, seeds)).interleave(
        lambda shard, s: shard_pairs(shard[0], shard[1], s),
        cycle_length=min(len(paths), 2),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = _distract(ds, distractors, seed + 1)
    return (
        ds.batch(batch_size, drop_remainder=drop_remainder)
        .map(lambda s, t: (_to_float(s), _to_float(t)))
        .prefetch(tf.data.AUTOTUNE)
    )


@dataclasses.dataclass
class Episode:
    """One recorded episode, in numpy, for evaluation against ground truth."""

    id: int
    frames: np.ndarray
    """[T, 84, 84, 3] uint8."""
    steps: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    objects: list[Objects]
    terminated: bool = False
    """Whether the episode ended in the game (else the time limit or the generator's frame budget cut it)."""


def read_episodes(root: str | Path, split: str, *, game: str | None = None) -> Iterator[Episode]:
    """The split's episodes in stored order, with their ground-truth objects."""
    _, paths = _shards(root, split, game)
    rows: list[dict[str, Any]] = []

    def flush() -> Episode:
        return Episode(
            id=int(rows[0]["episode"]),
            frames=np.stack([_decode_frame(r["frame"]).numpy() for r in rows]),
            steps=np.array([r["step"] for r in rows], np.int64),
            actions=np.array([r["action"] for r in rows], np.int64),
            rewards=np.array([r["reward"] for r in rows], np.float32),
            objects=[
                Objects(
                    categories=r["objects/category"].values.numpy().astype(np.int32),
                    boxes=r["objects/box"].values.numpy().reshape(-1, 4),
                )
                for r in rows
            ],
            terminated=bool(rows[-1]["terminated"]),
        )

    for path in paths:
        for raw in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            row = tf.io.parse_single_example(raw, _FEATURES)
            row = {k: (v if isinstance(v, tf.SparseTensor) else v.numpy()) for k, v in row.items()}
            if rows and row["episode"] != rows[0]["episode"]:
                yield flush()
                rows = []
            rows.append(row)
        if rows:
            yield flush()
            rows = []


def load_zoo_npz(path: str | Path) -> np.ndarray:
    """Frames of an Atari Model Zoo rollout (`frames` [T, 210, 160, 3] uint8), resized like our data: [T, 84, 84, 3].

    The zoo's `observations` (84x84x4 grey stacks) are checked for presence but not used: keypoint models take RGB.
    """
    path = Path(path)
    try:
        with np.load(path) as npz:
            keys = set(npz.files)
            if not {"frames", "observations"} <= keys:
                raise storage.DatasetError(
                    f"{path} is not an Atari Model Zoo rollout: it needs keys 'frames' and 'observations', "
                    f"it has {sorted(keys)}."
                )
            frames = npz["frames"]
    except (OSError, ValueError) as e:
        if isinstance(e, storage.DatasetError):
            raise
        raise storage.DatasetError(f"{path} could not be read as an npz file ({e}).") from e
    if frames.ndim != 4 or frames.shape[1:] != NATIVE_SHAPE or frames.dtype != np.uint8:
        raise storage.DatasetError(
            f"{path}: 'frames' must be uint8 [T, 210, 160, 3], got {frames.dtype} {list(frames.shape)}."
        )
    size = (FRAME_SHAPE[1], FRAME_SHAPE[0])
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def zoo_frames_dataset(
    paths: list[str | Path], *, batch_size: int, seed: int, shuffle: bool = True, distractors: str = "none"
) -> tf.data.Dataset:
    """Frames of Atari Model Zoo npz rollouts as float32 [B, 84, 84, 3] in [0, 1] (held in memory)."""
    if not paths:
        raise storage.DatasetError("No npz files given.")
    frames = np.concatenate([load_zoo_npz(p) for p in sorted(str(p) for p in paths)])
    ds = tf.data.Dataset.from_tensor_slices(frames)
    if shuffle:
        ds = ds.shuffle(len(frames), seed=seed, reshuffle_each_iteration=True)
    ds = _distract(ds, distractors, seed)
    return ds.batch(batch_size).map(_to_float).prefetch(tf.data.AUTOTUNE)
