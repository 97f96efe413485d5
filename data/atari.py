"""Atari emulation and ground truth: the one frame preprocessing of the project.

Protocol (docs/method.md section 4.6, PermaKey Appendix A.2.3): ALE through gymnasium with sticky actions off
(repeat_action_probability=0), frame skip 4 with a pixel-wise max over the last two frames, up to 30 no-op actions at
reset, RGB observations. The 210x160 max-pooled frame is resized once to 84x84 with OpenCV's INTER_AREA (area
averaging, by gymnasium's AtariPreprocessing). Keypoint training data and the RL environments both use `make_env`,
so a keypointer sees exactly the frames it was trained on (the authors' code used two different resizes).

Ground truth comes from OCAtari's RAM extraction (hud=False), read once per agent step after the last emulated frame
of the skip. Boxes are (x, y, w, h) in native 160x210 pixels, x to the right, y down, as OCAtari reports them.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from data.games import Game

FRAME_SHAPE = (84, 84, 3)
NATIVE_SHAPE = (210, 160, 3)
FRAME_SKIP = 4
NOOP_MAX = 30
MAX_EPISODE_FRAMES = 108_000
"""The standard ALE cap of 30 minutes of play (27k agent steps at frame skip 4)."""


def _register_ale() -> None:
    import ale_py

    gym.register_envs(ale_py)


class _ScreenSpace(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Declares the native RGB screen as observation space over an env that observes RAM.

    AtariPreprocessing reads the screens it pools straight from the emulator and ignores the inner observations; with
    RAM inner observations the emulator no longer copies a full screen on each of the 4 skipped frames (about 20% more
    agent steps/s, identical frames: tests/data/test_atari.py).
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self.observation_space = gym.spaces.Box(0, 255, NATIVE_SHAPE, np.uint8)

    def observation(self, observation: Any) -> Any:
        return observation


def make_env(
    game: Game,
    *,
    max_episode_frames: int = MAX_EPISODE_FRAMES,
    noop_max: int = NOOP_MAX,
    inner_observations: str = "ram",
) -> gym.Env:
    """The project's Atari environment: observations [84, 84, 3] uint8 RGB (see the module docstring).

    `inner_observations="rgb"` is gymnasium's plain composition, slower and identical in output (kept for the test).
    """
    _register_ale()
    env = gym.make(
        game.ale_id,
        frameskip=1,
        repeat_action_probability=0.0,
        full_action_space=False,
        max_num_frames_per_episode=max_episode_frames,
        max_episode_steps=None,
        obs_type=inner_observations,
    )
    if inner_observations == "ram":
        env = _ScreenSpace(env)
    return gym.wrappers.AtariPreprocessing(
        env,
        noop_max=noop_max,
        frame_skip=FRAME_SKIP,
        screen_size=FRAME_SHAPE[0],
        terminal_on_life_loss=False,
        grayscale_obs=False,
        scale_obs=False,
    )


@dataclasses.dataclass
class Objects:
    """Ground-truth objects of one frame."""

    categories: np.ndarray
    """[N] int32, indices into the game's category list (`GroundTruth.categories`)."""
    boxes: np.ndarray
    """[N, 4] float32, (x, y, w, h) in native 160x210 pixels; x right, y down, (x, y) the top-left corner."""

    @property
    def centres(self) -> np.ndarray:
        """[N, 2] float32, (x, y) box centres in native pixels."""
        return self.boxes[:, :2] + self.boxes[:, 2:] / 2


class GroundTruth:
    """OCAtari RAM-mode object extraction for one environment; call `reset` at each episode start."""

    def __init__(self, game: Game):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from ocatari.ram import extract_ram_info

        self._extract = extract_ram_info
        self._game = game
        self.max_objects: dict[str, int] = dict(extract_ram_info.get_max_objects(game.ocatari_name, False))
        """OCAtari's maximum number of instances per category."""
        self.categories: tuple[str, ...] = tuple(self.max_objects)
        self._index = {c: i for i, c in enumerate(self.categories)}
        self._objects: list[Any] = []

    def reset(self) -> None:
        self._objects = self._extract.init_objects(self._game.ocatari_name, False)

    def detect(self, ram: np.ndarray) -> Objects:
        """Objects present in the frame whose RAM is given; placeholders and invisible objects are dropped."""
        self._extract.detect_objects_ram(self._objects, ram, self._game.ocatari_name, False)
        present = [o for o in self._objects if o is not None and o.category in self._index and o.visible]
        return Objects(
            categories=np.array([self._index[o.category] for o in present], dtype=np.int32),
            boxes=np.array([o.xywh for o in present], dtype=np.float32).reshape(-1, 4),
        )


def ram_of(env: gym.Env) -> np.ndarray:
    return env.unwrapped.ale.getRAM()  # type: ignore[attr-defined]
