"""Finding and loading saved keypointers of any kind: a run id, a run folder, or a work/.../best folder."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from experiments.precision import keras_policy
from experiments.workspace import Workspace
from keypoints.protocol import Keypointer, read_keypointer
from permakey.keypointer import PermaKeyKeypointer
from transporter.keypointer import TransporterKeypointer

KINDS: dict[str, Any] = {"permakey": PermaKeyKeypointer, "transporter": TransporterKeypointer}


def keypointer_folder(run: str | int, runs_dir: str | None = None) -> Path:
    """A run id ("12") names runs/12 (or RUNS_DIR/12); anything else is taken as a folder path."""
    text = str(run).strip()
    if text.isdigit():
        folder = Path(runs_dir) / text if runs_dir else Workspace.here().run_folder(text)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"Unknown run id {text}: {folder} does not exist. List the runs with `ls {folder.parent}`, or pass a "
                "keypointer folder path."
            )
        return folder
    return Path(text)


def keypointer_tag(run: str | int, runs_dir: str | None = None) -> str:
    """A short name that tells keypointers apart, for naming work folders: the last two parts of the keypointer
    folder's path and a hash of the whole resolved path (every work/.../best folder ends in `best`), e.g.
    `pong-quick-none-s0-best-1a2b3c4d`."""
    folder = keypointer_folder(run, runs_dir).resolve()
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
    return f"{folder.parent.name}-{folder.name}-{digest}"


def load_keypointer(run: str | int, runs_dir: str | None = None, policy: str = "float32") -> Keypointer:
    """The keypointer saved in a run (by id or folder), whatever its kind, computing in Keras policy `policy` (a
    resolved one: experiments.precision.detect_precision); its outputs are float32 either way."""
    folder = keypointer_folder(run, runs_dir)
    kind, _, _ = read_keypointer(folder)
    if kind not in KINDS:
        raise ValueError(f"{folder} holds a keypointer of unknown kind {kind!r}; known kinds: {sorted(KINDS)}.")
    with keras_policy(policy):
        return KINDS[kind].load(folder)
