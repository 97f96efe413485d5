"""Environments of the 100k-interaction protocol (PermaKey paper, Appendix A.2.3; docs/method.md section 4.6).

The frames are the data pipeline's (data/atari.py: frame skip 4 with a max over the last two frames, up to 30 no-ops,
no sticky actions, RGB 84x84, the standard 108k-frame episode cap, which gymnasium reports as truncation). Training
environments end an episode on a life loss and clip rewards to their sign; validation and test environments do
neither. Distractor bars (Noisy Atari) are drawn on every frame when asked.

`KeypointObservation` turns the frame into the frozen keypointer's view: {"frame": uint8 frame, "keypoints": [K, 2]},
computed once per step, so the agent's replay can store them (rl/replay.py). `ObjectKeypointObservation` does the same
for the ground-truth oracle (keypoints/oracle.py, `KP=oracle`), which is not a function of the frame: after every
agent step it reads the game's objects from the emulator's RAM with OCAtari (as the data pipeline does,
data/generate.py) and passes their slots' positions to the oracle. `MotionKeypointObservation` does it for the
motion baseline (keypoints/motion_agent.py, `KP=motion`), a function of recent frames: it feeds each new frame to its
own motion tracker, reset at every episode start. `keypoint_observation` picks the wrapper a keypointer needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NotRequired, TypedDict

import gymnasium as gym
import numpy as np
import tensorflow as tf

from data.atari import FRAME_SHAPE, MAX_EPISODE_FRAMES, GroundTruth, make_env, ram_of
from data.distractors import add_distractor_bars, check_distractors
from data.games import Game, get_game
from keypoints.motion_agent import MotionAgentKeypointer
from keypoints.oracle import OracleKeypointer, slot_categories, slot_positions
from keypoints.protocol import blank_output, reads_objects, tracks_frames


class LifeLossTerminal(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Ends the episode (terminated) when a life is lost, while the game goes on: the next reset continues the same
    game with one no-op step (no new game, no no-op start) unless the game itself ended (game over or the frame cap).
    For training only; the score still counts whole games. DeepMind's EpisodicLifeEnv, as in the authors' code
    (agent_train.py, baselines' atari_wrappers): a reset that started a new game after every lost life would train
    the agent on first lives only (in Breakout, always the full wall), never on the game it is tested on.

    reset's info says `new_game` (False when the game continued), so wrappers that follow a game (the oracle's
    OCAtari object list) restart only with it."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self.lives = 0
        self.game_over = True

    def reset(self, **kwargs: Any):
        new_game = self.game_over or kwargs.get("seed") is not None
        if not new_game:
            obs, _, terminated, truncated, info = self.env.step(0)  # NOOP: the game goes on with its next life
            new_game = terminated or truncated  # the game ended in that step: a new one
        if new_game:
            obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()  # type: ignore[attr-defined]
        return obs, {**info, "new_game": new_game}

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()  # type: ignore[attr-defined]
        if lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info


class FireReset(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Presses FIRE, then action 2, after every reset of a game whose action 1 is FIRE (Breakout waits for FIRE to
    launch the ball): baselines' FireResetEnv, as in the authors' code, in training and evaluation. In training it sits
    above LifeLossTerminal, so every life starts launched; in evaluation a game starts launched and the policy must
    press FIRE itself after a lost life. The two steps' rewards are dropped, as there."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    @staticmethod
    def applies_to(env: gym.Env) -> bool:
        meanings = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
        return len(meanings) >= 3 and meanings[1] == "FIRE"

    def reset(self, **kwargs: Any):
        _, reset_info = self.env.reset(**kwargs)
        new_game = reset_info.get("new_game", True)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, reset_info = self.env.reset()
                new_game = new_game or reset_info.get("new_game", True)
        return obs, {**info, "new_game": new_game}


class DistractorBars(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Noisy Atari bars drawn on every observation, seeded by the episode seed and the step. An episode reset without
    a seed draws its seed from a stream seeded at the last seeded reset (as the environment continues its own), so a
    seeded run reproduces every episode's bars."""

    def __init__(self, env: gym.Env, distractors: str):
        gym.utils.RecordConstructorArgs.__init__(self, distractors=distractors)
        gym.ObservationWrapper.__init__(self, env)
        self.distractors = check_distractors(distractors)
        self._seed, self._step = 0, 0
        self._seeds = np.random.default_rng()  # unseeded until the first seeded reset, like the environment

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._seeds = np.random.default_rng(seed)
            self._seed = int(seed)
        else:
            self._seed = int(self._seeds.integers(2**31))
        self._step = 0
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        self._step += 1
        return add_distractor_bars(
            tf.constant(observation), self.distractors, tf.constant([self._seed, self._step])
        ).numpy()


def make_agent_env(
    game: str, *, train: bool, distractors: str = "none", max_episode_frames: int = MAX_EPISODE_FRAMES
) -> gym.Env:
    """The agent's environment for `game`: training (a lost life terminal, the game going on; sign-clipped rewards)
    or evaluation (whole games); FIRE pressed at each reset where the game waits for it (FireReset)."""
    env = make_env(get_game(game), max_episode_frames=max_episode_frames)
    if train:
        env = LifeLossTerminal(env)
    if FireReset.applies_to(env):
        env = FireReset(env)
    if train:
        env = gym.wrappers.TransformReward(env, lambda r: float(np.sign(float(r))))
    if distractors != "none":
        env = DistractorBars(env, distractors)
    return env


class Observation(TypedDict):
    """What the agent sees at each step: the frame [84, 84, 3] uint8, the keypoints [K, 2] float32 (y, x) in [-1, 1],
    and, when the wrapper has one, the encoder's frozen view {name: float32 array} (rl/encoders.py)."""

    frame: np.ndarray
    keypoints: np.ndarray
    view: NotRequired[dict[str, np.ndarray]]


class KeypointObservation(gym.ObservationWrapper):
    """Observations of the agent (`Observation`): the frame, its keypoints and, when a `view` is given (an encoder's
    frozen part, rl/encoders.py), the view's entries.

    The keypointer and the view run as one compiled function per step. The wrapper holds a live keypointer, so it
    cannot be recreated from a registry spec: `spec` is None.
    """

    def __init__(self, env: gym.Env, keypointer: Any, view: Callable[..., dict[str, tf.Tensor]] | None = None):
        super().__init__(env)
        self.keypointer, self.view = keypointer, view
        self._observe = tf.function(self._compute)
        spaces: dict[str, gym.Space] = {
            "frame": gym.spaces.Box(0, 255, FRAME_SHAPE, np.uint8),
            "keypoints": gym.spaces.Box(-1.0, 1.0, (keypointer.num_keypoints, 2), np.float32),
        }
        if self.view is not None:
            out = blank_output(keypointer)
            views = self.view(out.coordinates, out.heatmaps, out.features)
            boxes: dict[str, gym.Space] = {
                name: gym.spaces.Box(-np.inf, np.inf, tuple(v.shape[1:]), np.float32) for name, v in views.items()
            }
            spaces["view"] = gym.spaces.Dict(boxes)
        self.observation_space = gym.spaces.Dict(spaces)

    def _inputs(self, observation: np.ndarray) -> tuple[tf.Tensor, ...]:
        """The keypointer's inputs for one observation, batched: here the frame alone."""
        return (tf.constant(observation[None]),)

    def _compute(self, *inputs: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        out = self.keypointer(*inputs)
        views = self.view(out.coordinates, out.heatmaps, out.features) if self.view is not None else {}
        return out.coordinates, {name: tf.cast(v, tf.float32) for name, v in views.items()}

    @property
    def spec(self) -> None:  # type: ignore[override]
        return None

    def observation(self, observation: np.ndarray) -> Observation:  # type: ignore[override]
        coordinates, views = self._observe(*self._inputs(observation))
        keypoints = np.clip(coordinates.numpy()[0], -1.0, 1.0).astype(np.float32)
        if self.view is None:
            return {"frame": observation, "keypoints": keypoints}
        return {"frame": observation, "keypoints": keypoints, "view": {name: v.numpy()[0] for name, v in views.items()}}


def oracle_keypointer(game: str | Game) -> OracleKeypointer:
    """The ground-truth keypointer of `game`: its slots from the game's moving categories, K and OCAtari's maximal
    instance counts (keypoints/oracle.py)."""
    game = get_game(game) if isinstance(game, str) else game
    slots = slot_categories(game.moving_categories, GroundTruth(game).max_objects, game.num_keypoints)
    return OracleKeypointer(game.name, slots)


class ObjectKeypointObservation(KeypointObservation):
    """`KeypointObservation` for an object keypointer (the oracle): after every reset and agent step it reads the
    objects from the emulator's RAM (OCAtari, data.atari.GroundTruth, after the last emulated frame of the skip, as
    the datasets' ground truth), places them in the oracle's slots (keypoints.oracle.slot_positions) and passes their
    positions and presence with the frame. The observations are the same as a learned keypointer's."""

    def __init__(self, env: gym.Env, keypointer: Any, view: Callable[..., dict[str, tf.Tensor]] | None = None):
        if not reads_objects(keypointer):
            raise ValueError(f"A {keypointer.kind!r} keypointer reads frames only: wrap it in KeypointObservation.")
        super().__init__(env, keypointer, view)
        self.ground_truth = GroundTruth(get_game(keypointer.game))
        self.ground_truth.reset()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        observation, info = self.env.reset(seed=seed, options=options)
        if info.get("new_game", True):  # OCAtari's object list starts afresh with each game, not each life
            self.ground_truth.reset()
        return self.observation(observation), info

    def _inputs(self, observation: np.ndarray) -> tuple[tf.Tensor, ...]:
        objects = self.ground_truth.detect(ram_of(self.env))
        names = [self.ground_truth.categories[i] for i in objects.categories]
        positions, present = slot_positions(self.keypointer.slots, names, objects.boxes)
        return tf.constant(observation[None]), tf.constant(positions[None]), tf.constant(present[None])


def motion_keypointer(game: str | Game) -> MotionAgentKeypointer:
    """The motion baseline of `game` for agents (keypoints/motion_agent.py): K the game's number of keypoints."""
    game = get_game(game) if isinstance(game, str) else game
    return MotionAgentKeypointer(game.name, game.num_keypoints)


class MotionKeypointObservation(KeypointObservation):
    """`KeypointObservation` for the motion baseline (keypoints/motion_agent.py): its own motion tracker, reset at
    every reset, sees each new frame (after distractor bars, as the agent does) and gives the positions and presence
    passed with the frame. The observations are the same as a learned keypointer's."""

    def __init__(self, env: gym.Env, keypointer: Any, view: Callable[..., dict[str, tf.Tensor]] | None = None):
        if not tracks_frames(keypointer):
            raise ValueError(f"A {keypointer.kind!r} keypointer tracks no frames: use keypoint_observation().")
        super().__init__(env, keypointer, view)
        self.tracker = keypointer.tracker()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        observation, info = self.env.reset(seed=seed, options=options)
        self.tracker.reset()  # the background is the episode's own
        return self.observation(observation), info

    def _inputs(self, observation: np.ndarray) -> tuple[tf.Tensor, ...]:
        positions, present = self.keypointer.positions(self.tracker, observation)
        return tf.constant(observation[None]), tf.constant(positions[None]), tf.constant(present[None])


def keypoint_observation(
    env: gym.Env, keypointer: Any, view: Callable[..., dict[str, tf.Tensor]] | None = None
) -> KeypointObservation:
    """The observation wrapper `keypointer` needs: MotionKeypointObservation for the motion baseline,
    ObjectKeypointObservation for another object keypointer (the oracle), KeypointObservation for one that is a
    function of the frame."""
    wrapper: type[KeypointObservation] = KeypointObservation
    if tracks_frames(keypointer):
        wrapper = MotionKeypointObservation
    elif reads_objects(keypointer):
        wrapper = ObjectKeypointObservation
    return wrapper(env, keypointer, view)
