"""The motion baseline as an agent's keypointer (`KP=motion`): its observation wrapper follows a moving object on the
oracle's grid, starts afresh at every episode, and its output runs through every encoder."""

import gymnasium as gym
import numpy as np
import pytest

from keypoints.metrics import grid_to_frame
from keypoints.motion_agent import MotionAgentKeypointer
from keypoints.oracle import ABSENT
from rl.encoders import CNNEncoder, GNNEncoder, KeyQNEncoder
from rl.envs import MotionKeypointObservation, keypoint_observation

SQUARE = 6


class MovingSquare(gym.Env):
    """84 x 84 RGB frames: a white 6 x 6 square moving 3 pixels right per step over a still grey background."""

    observation_space = gym.spaces.Box(0, 255, (84, 84, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, row: int = 40):
        self.row, self.col = row, 10

    def frame(self) -> np.ndarray:
        frame = np.full((84, 84, 3), 60, np.uint8)
        frame[self.row : self.row + SQUARE, self.col : self.col + SQUARE] = 255
        return frame

    def centre(self) -> np.ndarray:
        """(y, x) of the square's centre in normalised frame coordinates."""
        return np.array([self.row, self.col]) + (SQUARE - 1) / 2.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.col = 10
        return self.frame(), {}

    def step(self, action):
        self.col += 3
        return self.frame(), 0.0, self.col > 70, False, {}


def _back_to_pixels(keypointer, keypoints):
    grid, geometry = keypointer.geometry
    return (grid_to_frame(keypoints, grid, geometry) + 1.0) / 2.0 * 83.0


def test_the_motion_wrapper_follows_a_moving_square_and_starts_afresh_each_episode():
    keypointer = MotionAgentKeypointer("pong", 3)
    env = keypoint_observation(MovingSquare(), keypointer, GNNEncoder(steps=1).view)
    assert isinstance(env, MotionKeypointObservation)
    for _ in range(2):  # a second episode: the reset forgot the first one's frames
        obs, _ = env.reset()
        np.testing.assert_array_equal(obs["keypoints"], np.tile(ABSENT, (3, 1)))  # no background yet: all absent
        np.testing.assert_array_equal(obs["view"]["features"][:, -1], 0.0)
        for _ in range(10):
            obs, *_ = env.step(0)
            square = env.unwrapped.centre()
            # the square and the hole it left both differ from the background (its first position): the largest blob
            # is the square itself or, merged, the square with its trail; either lies within a few pixels of it
            found = _back_to_pixels(keypointer, obs["keypoints"][0])
            assert abs(found[0] - square[0]) <= 2.5 and abs(found[1] - square[1]) <= 6.0, (found, square)
            assert obs["view"]["features"][0, -1] == pytest.approx(1.0, abs=1e-5)  # present
        absent = obs["view"]["features"][:, -1] < 0.5
        np.testing.assert_array_equal(obs["keypoints"][absent], np.tile(ABSENT, (int(absent.sum()), 1)))


def test_each_environment_keeps_its_own_motion_window():
    """Two environments on one keypointer (training and validation) each keep their own recent frames."""
    keypointer = MotionAgentKeypointer("pong", 2)
    first, second = (MotionKeypointObservation(MovingSquare(row), keypointer) for row in (20, 60))
    first.reset(), second.reset()
    for _ in range(3):
        top, *_ = first.step(0)
        bottom, *_ = second.step(0)
    rows = [_back_to_pixels(keypointer, obs["keypoints"][0])[0] for obs in (top, bottom)]
    assert rows[0] < 30 < 50 < rows[1]


@pytest.mark.parametrize("encoder", [CNNEncoder(filters=8, binarise=None), GNNEncoder(steps=1), KeyQNEncoder(bins=4)])
def test_the_motion_baseline_runs_through_every_encoder_unchanged(encoder):
    keypointer = MotionAgentKeypointer("ms_pacman", 7)
    env = keypoint_observation(MovingSquare(), keypointer, encoder.view)
    env.reset()
    obs, *_ = env.step(0)
    view = {name: value[None] for name, value in obs["view"].items()}
    embedding = encoder(view)
    assert embedding.shape == (1, 128) and np.isfinite(embedding.numpy()).all()
    out = keypointer.absent(np.zeros((1, 84, 84, 3), np.uint8))
    assert out.features.shape == (1, 21, 21, 4) and out.heatmaps.shape == (1, 21, 21, 7)


def test_the_run_records_the_motion_baseline_not_ground_truth():
    from training.keypointers import describe_keypointer, keypointer_reference, keypointer_tag, load_keypointer

    keypointer = load_keypointer("motion", game="pong")
    assert isinstance(keypointer, MotionAgentKeypointer) and keypointer.num_keypoints == 3
    described = describe_keypointer(keypointer)
    assert described["kind"] == "motion" and described["ground_truth"] is False and described["baseline"]
    assert keypointer_reference("motion") == keypointer_tag("Motion") == "motion"
    with pytest.raises(ValueError, match="keypointer=motion"):
        load_keypointer("motion")
