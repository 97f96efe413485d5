"""Finding and loading keypointers: a saved one of any kind (a run id, a run folder, or a work/.../best folder), the
ground-truth oracle of the game (`oracle`, keypoints/oracle.py) or the training-free motion baseline (`motion`,
keypoints/motion_agent.py); the last two have no folder."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from keypoints.protocol import read_keypointer
from permakey.keypointer import PermaKeyKeypointer
from rl.envs import motion_keypointer, oracle_keypointer
from training.precision import keras_policy
from training.workspace import Workspace
from transporter.keypointer import TransporterKeypointer

KINDS: dict[str, Any] = {"permakey": PermaKeyKeypointer, "transporter": TransporterKeypointer}
ORACLE = "oracle"
"""The name that stands for the game's ground-truth keypointer wherever a keypointer run is asked for (KP=oracle)."""
MOTION = "motion"
"""The name that stands for the game's training-free motion baseline wherever a keypointer run is asked for
(KP=motion)."""
BUILTIN = {ORACLE: oracle_keypointer, MOTION: motion_keypointer}
"""The keypointers without a folder, built for a game by name."""


def is_oracle(run: str | int) -> bool:
    return str(run).strip().lower() == ORACLE


def builtin_name(run: str | int) -> str | None:
    """`oracle` or `motion` when `run` names a keypointer without a folder, else None."""
    name = str(run).strip().lower()
    return name if name in BUILTIN else None


def keypointer_reference(run: str | int, runs_dir: str | None = None) -> str:
    """What an agent records to find its keypointer again (agent.json): `oracle`, `motion`, or the resolved keypointer
    folder."""
    return builtin_name(run) or str(keypointer_folder(run, runs_dir).resolve())


def describe_keypointer(keypointer: Any) -> dict[str, Any]:
    """What a run records of its keypointer: its kind and whether it is ground truth (the oracle adds its slots)."""
    if hasattr(keypointer, "describe"):
        return keypointer.describe()
    return {"kind": keypointer.kind, "ground_truth": False}


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
    name = builtin_name(run)
    if name:
        return name
    folder = keypointer_folder(run, runs_dir).resolve()
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
    return f"{folder.parent.name}-{folder.name}-{digest}"


def load_keypointer(
    run: str | int, runs_dir: str | None = None, policy: str = "float32", game: str | None = None
) -> Any:
    """The keypointer saved in a run (by id or folder), whatever its kind, computing in Keras policy `policy` (a
    resolved one: training.precision.detect_precision); its outputs are float32 either way. `oracle` is the
    ground-truth keypointer of `game` (float32; it needs the observation wrapper that reads the emulator,
    rl.envs.keypoint_observation); `motion` the game's motion baseline (float32; its wrapper keeps the recent frames).
    """
    name = builtin_name(run)
    if name:
        if not game:
            raise ValueError(
                f"The {name} keypointer belongs to one game and needs its environment stepped (the oracle reads the "
                "emulator, the motion baseline recent frames): use it where the game is known and the environment is "
                f"stepped (train_agent, evaluate_agent, explore with keypointer={name}), or call "
                f"load_keypointer('{name}', game=...)."
            )
        return BUILTIN[name](game)
    folder = keypointer_folder(run, runs_dir)
    kind, _, _ = read_keypointer(folder)
    if kind not in KINDS:
        raise ValueError(f"{folder} holds a keypointer of unknown kind {kind!r}; known kinds: {sorted(KINDS)}.")
    with keras_policy(policy):
        return KINDS[kind].load(folder)
