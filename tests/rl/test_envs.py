import numpy as np
from gymnasium.utils.env_checker import check_env

from rl.envs import KeypointObservation, make_agent_env
from tests.transporter.test_model import tiny_config
from transporter.keypointer import TransporterKeypointer
from transporter.model import build_transporter


def test_keypoint_observations_pass_the_gymnasium_checker():
    keypointer = TransporterKeypointer(build_transporter(tiny_config()))
    env = KeypointObservation(make_agent_env("pong", train=False, max_episode_frames=400), keypointer)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs["frame"].dtype == np.uint8 and obs["keypoints"].shape == (3, 2)


def test_training_env_clips_rewards_and_ends_on_life_loss():
    env = make_agent_env("breakout", train=True)
    env.reset(seed=0)
    ended_on_life = False
    for _ in range(2000):
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert reward in (-1.0, 0.0, 1.0)
        if terminated or truncated:
            ended_on_life = terminated and env.unwrapped.ale.lives() > 0
            break
    assert ended_on_life  # Breakout starts with 5 lives: the first loss ends the training episode


def test_distractor_bars_are_drawn_on_agent_frames():
    env = make_agent_env("pong", train=False, distractors="vertical", max_episode_frames=400)
    obs, _ = env.reset(seed=0)
    bar = np.all(obs == np.array([128, 0, 255], np.uint8), axis=-1)
    assert bar.any(axis=0).sum() == 5  # one 5-pixel-wide vertical bar


def test_distractor_bars_of_unseeded_resets_follow_the_first_seed():
    """Later episodes reset without a seed (Trainer._reset, play): their bars must still follow from the first seed,
    or runs with noise do not reproduce."""

    def bars(first_seed: int) -> list[np.ndarray]:
        env = make_agent_env("pong", train=False, distractors="vertical", max_episode_frames=400)
        columns = []
        for seed in (first_seed, None, None):
            obs, _ = env.reset(seed=seed)
            columns.append(np.all(obs == np.array([128, 0, 255], np.uint8), axis=-1).any(axis=0))
        return columns

    same, again, other = bars(0), bars(0), bars(1)
    for a, b in zip(same[1:], again[1:], strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(same[1:], other[1:], strict=True))


def test_keypoint_observations_carry_the_encoder_view():
    from rl.encoders import CNNEncoder, GNNEncoder

    keypointer = TransporterKeypointer(build_transporter(tiny_config()))
    for encoder, names in ((GNNEncoder(steps=1), {"coordinates", "features"}), (CNNEncoder(8, None), {"masked"})):
        env = KeypointObservation(make_agent_env("pong", train=False, max_episode_frames=400), keypointer, encoder.view)
        check_env(env, skip_render_check=True)
        obs, _ = env.reset(seed=0)
        assert set(obs) == {"frame", "keypoints", "view"}
        assert set(obs["view"]) == names and all(obs["view"][n].dtype == np.float32 for n in names)
