"""On-disk datasets: GZIP TFRecord shards of steps plus a JSON manifest that describes them.

Layout of `datasets/<game>/`:
    manifest.json                   written last; a folder without it is not a dataset
    train-00000.tfrecord.gz ...     shards, one per generation job, steps of whole episodes in order

One record (tf.train.Example) per agent step:
    frame              bytes   84*84*3 uint8, RGB, row-major (see data/atari.py for the preprocessing)
    action             int64
    reward             float   unclipped
    terminated         int64   1 on the last step of an episode that ended in the game
    truncated          int64   1 on the last step of an episode cut by the time limit or by the generator's budget
    episode            int64   unique within the dataset
    step               int64   agent-step index within the episode
    objects/category   int64[] index into manifest["categories"]
    objects/box        float[] (x, y, w, h) per object, native 160x210 pixels, flattened

Atomicity: generation writes into `<game>.partial/`, each shard under a temporary name renamed when complete, and
renames the folder to `<game>/` only after the manifest is written. An interrupted run leaves only `.partial`, which
the next run with the same settings resumes, keeping the finished shards. A generation holds the lock of its
`.partial/` folder (`hold_folder`) while it runs, so a second one into the same folder is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
FORMAT = "atari-keypoint-frames"
FORMAT_VERSION = 1
SPLITS = ("train", "validation", "test")
MANIFEST_KEYS = ("game", "mode", "generator", "splits", "categories", "moving_categories")
"""What every manifest this project writes holds, and readers rely on."""


LOCK = ".lock"
REPAIR = (
    "rerun the `make data` command that made the dataset (the same settings): it checks every shard and makes the "
    "damaged ones again."
)
"""What a corrupt-dataset error advises."""


class DatasetError(ValueError):
    """A dataset is missing, incomplete, corrupt or not the one the caller expects."""


class ForeignManifestError(DatasetError):
    """A manifest.json that this project did not write: not a JSON object of this project's format."""

    def __init__(self, path: Path, found: str):
        self.path, self.found = path, found
        super().__init__(
            f"{path} is not the manifest of a dataset made by this project ({found}); name a folder made by "
            "`make data`, or move the file away."
        )


class FolderInUseError(RuntimeError):
    """Another process holds the lock of a folder this process means to write; `holder` is its pid as the lock file
    records it ("unknown" when unrecorded)."""

    def __init__(self, message: str, holder: str = "unknown"):
        super().__init__(message)
        self.holder = holder


_held: dict[Path, Path] = {}
"""The folders (resolved) whose lock this process holds, and their lock files."""


@contextlib.contextmanager
def hold_folder(folder: Path) -> Iterator[Path]:
    """Holds an exclusive lock on `folder`/.lock (the folder is created when missing) until the block ends, so that
    two processes never write one folder; the operating system drops it when the holder dies. The lock file records
    the holder's pid, which the error of a second process names. Within the holding process a nested hold of the same
    folder passes (a caller may lock a folder around the code that writes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    if key in _held:
        yield _held[key]
        return
    path = folder / LOCK
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise FolderInUseError(
                f"{folder} is in use by another process (pid {holder}); wait for it to finish or stop it, or choose "
                "another folder.",
                holder,
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        _held[key] = path
        try:
            yield path
        finally:
            del _held[key]


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:05d}.tfrecord.gz"


def encode_step(
    frame: np.ndarray,
    action: int,
    reward: float,
    terminated: bool,
    truncated: bool,
    episode: int,
    step: int,
    categories: np.ndarray,
    boxes: np.ndarray,
) -> bytes:
    import tensorflow as tf

    def ints(values: Any) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values, np.int64).ravel()))

    def floats(values: Any) -> tf.train.Feature:
        return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel()))

    feature = {
        "frame": tf.train.Feature(bytes_list=tf.train.BytesList(value=[np.ascontiguousarray(frame).tobytes()])),
        "action": ints([action]),
        "reward": floats([reward]),
        "terminated": ints([terminated]),
        "truncated": ints([truncated]),
        "episode": ints([episode]),
        "step": ints([step]),
        "objects/category": ints(categories),
        "objects/box": floats(boxes),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Writes `data` so that a reader sees the old file or the new one, never a partial one."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Writes JSON so that a reader sees the old file or the new one, never a partial one."""
    write_bytes_atomic(path, json.dumps(obj, indent=2, sort_keys=True).encode())


def read_manifest(root: str | Path) -> dict[str, Any]:
    root = Path(root)
    path = root / MANIFEST
    if not path.exists():
        if Path(str(root) + ".partial").exists() or root.name.endswith(".partial"):
            raise DatasetError(
                f"{root} is an unfinished generation (no {MANIFEST}); rerun the same `make data` command to resume it."
            )
        raise DatasetError(f"No dataset at {root} (no {MANIFEST}). Create it with `make data GAME=<game> OUT={root}`.")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path} is not valid JSON ({e}); {REPAIR}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = f"format {manifest.get('format')!r}" if isinstance(manifest, dict) else f"JSON {json.dumps(manifest)}"
        raise ForeignManifestError(path, f"{found[:60]}, not a {FORMAT!r} object")
    if manifest.get("version") != FORMAT_VERSION:
        raise DatasetError(
            f"{path} has format {FORMAT!r} version {manifest.get('version')!r}; this code reads version "
            f"{FORMAT_VERSION}; {REPAIR}"
        )
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise DatasetError(f"{path} lacks {', '.join(missing)}; {REPAIR}")
    return manifest


def check_manifest(manifest: dict[str, Any], **expected: Any) -> None:
    """Fails naming the first field whose value differs from the expected one (e.g. game='pong')."""
    for key, want in expected.items():
        if want is None:
            continue
        have = manifest.get(key)
        if isinstance(have, list):
            have = tuple(have)
            want = tuple(want)
        if have != want:
            raise DatasetError(
                f"Dataset manifest field {key!r} is {have!r} but {want!r} was expected; "
                f"use a dataset generated for {key}={want!r}."
            )


def verify_shards(root: str | Path, manifest: dict[str, Any], split: str) -> list[Path]:
    """Paths of a split's shards, after checking each one's size and checksum against the manifest."""
    root = Path(root)
    if split not in manifest["splits"]:
        raise DatasetError(f"Dataset {root} has no split {split!r}; it has {sorted(manifest['splits'])}.")
    paths = []
    for shard in manifest["splits"][split]["shards"]:
        path = root / shard["file"]
        if not path.exists():
            raise DatasetError(f"Shard {path} listed in the manifest is missing; {REPAIR}")
        if not shard_intact(root, shard):
            raise DatasetError(f"Shard {path} is corrupt (size or checksum differs from the manifest); {REPAIR}")
        paths.append(path)
    return paths


def shard_intact(root: Path, shard: dict[str, Any]) -> bool:
    """Whether the shard a manifest entry describes exists with its recorded size and checksum."""
    path = root / shard["file"]
    return path.exists() and path.stat().st_size == shard["bytes"] and sha256(path) == shard["sha256"]
