import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rl.envs import FireReset, KeypointObservation, make_agent_env
from tests.transporter.test_model import tiny_config
from transporter.keypointer import TransporterKeypointer
from transporter.model import build_transporter


def test_keypoint_observations_pass_the_gymnasium_checker():
    keypointer = TransporterKeypointer(build_transporter(tiny_config()))
    env = KeypointObservation(make_agent_env("pong", train=False, max_episode_frames=400), keypointer)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs["frame"].dtype == np.uint8 and obs["keypoints"].shape == (3, 2)


def _play_until_an_end(env, steps=3000):
    for _ in range(steps):
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert reward in (-1.0, 0.0, 1.0)
        if terminated or truncated:
            return terminated, truncated
    raise AssertionError(f"no episode end in {steps} steps")


def test_training_env_clips_rewards_ends_on_life_loss_and_continues_the_game():
    """A lost life ends the training episode, and the next reset goes on with the same game (the next life, the
    score and the bricks kept), as the authors' EpisodicLifeEnv: only the game's end starts a new one."""
    env = make_agent_env("breakout", train=True)
    env.action_space.seed(0)
    _, info = env.reset(seed=0)
    assert info["new_game"] and env.unwrapped.ale.lives() == 5
    for life in (4, 3, 2, 1):
        terminated, truncated = _play_until_an_end(env)
        assert terminated and not truncated and env.unwrapped.ale.lives() == life  # Breakout starts with 5 lives
        frames_before = env.unwrapped.ale.getEpisodeFrameNumber()
        _, info = env.reset()
        assert not info["new_game"] and env.unwrapped.ale.lives() == life
        assert env.unwrapped.ale.getEpisodeFrameNumber() > frames_before  # the same game's frame count goes on
    assert _play_until_an_end(env)[0] and env.unwrapped.ale.game_over()
    _, info = env.reset()
    assert info["new_game"] and env.unwrapped.ale.lives() == 5 and env.unwrapped.ale.getEpisodeFrameNumber() < 200


def test_games_that_wait_for_fire_start_with_it():
    """Breakout launches its ball only on FIRE: after a reset the ball is in play, so a policy that never presses
    FIRE still loses its first life (without FireReset it would wait to the frame cap). Ms. Pac-Man has no FIRE."""
    env = make_agent_env("breakout", train=False)
    env.reset(seed=0)
    lives = env.unwrapped.ale.lives()
    for _ in range(500):
        env.step(0)  # NOOP
        if env.unwrapped.ale.lives() < lives:
            break
    assert env.unwrapped.ale.lives() == lives - 1
    assert not FireReset.applies_to(make_agent_env("ms_pacman", train=False))


def test_distractor_bars_are_drawn_on_agent_frames():
    env = make_agent_env("pong", train=False, distractors="vertical", max_episode_frames=400)
    obs, _ = env.reset(seed=0)
    bar = np.all(obs == np.array([128, 0, 255], np.uint8), axis=-1)
    assert bar.any(axis=0).sum() == 5  # one 5-pixel-wide vertical bar


def test_distractor_bars_of_unseeded_resets_follow_the_first_seed():
    """Later episodes reset without a seed (Trainer._reset, play): their bars must still follow from the first seed,
    or runs with distractors do not reproduce."""

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


def test_oracle_observations_pass_the_gymnasium_checker():
    from rl.envs import ObjectKeypointObservation, keypoint_observation, oracle_keypointer

    env = keypoint_observation(make_agent_env("pong", train=False, max_episode_frames=400), oracle_keypointer("pong"))
    assert isinstance(env, ObjectKeypointObservation)
    check_env(env, skip_render_check=True)


def test_each_oracle_slot_is_on_its_object_and_absent_slots_are_marked():
    """MsPacman stepped with random actions: every slot's keypoint, mapped back through the oracle's geometry, is the
    centre of its object (the player, the ghosts in OCAtari's list order, the fruit) as an independent reading of the
    same RAM gives it; slots without an object (the 7th, never taken; the fruit before it appears) are at ABSENT
    with zero presence."""
    from data.atari import GroundTruth, ram_of
    from data.games import get_game
    from keypoints.metrics import grid_to_frame, scored_objects, truth_from_boxes
    from keypoints.oracle import ABSENT
    from rl.encoders import GNNEncoder
    from rl.envs import keypoint_observation, oracle_keypointer

    oracle = oracle_keypointer("ms_pacman")
    assert oracle.slots == ("Player", "Ghost", "Ghost", "Ghost", "Ghost", "Fruit", None)
    env = keypoint_observation(make_agent_env("ms_pacman", train=False), oracle, GNNEncoder(steps=1).view)
    truth = GroundTruth(get_game("ms_pacman"))
    grid, geometry = oracle.geometry
    low, high = grid_to_frame(np.array([-1.0, 1.0]), grid, geometry)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=3)
    truth.reset()
    truth.detect(ram_of(env))  # OCAtari's objects evolve from one reading to the next: read every step, as the wrapper
    seen = np.zeros(7, bool)
    for _ in range(60):
        obs, *_ = env.step(int(rng.integers(env.action_space.n)))
        objects = truth.detect(ram_of(env))
        names = np.array(truth.categories)[objects.categories]
        on_screen = scored_objects(objects.boxes, objects.categories, np.ones(len(truth.categories), bool))
        expected = {name: truth_from_boxes(objects.boxes[(names == name) & on_screen]) for name in set(oracle.slots)}
        presence = obs["view"]["features"][:, -1]
        for slot, name in enumerate(oracle.slots):
            instance = oracle.slots[:slot].count(name)
            if name is not None and instance < len(expected[name]):
                back = grid_to_frame(obs["keypoints"][slot], grid, geometry)
                np.testing.assert_allclose(back, np.clip(expected[name][instance], low, high), atol=1e-5)
                assert presence[slot] > 0.99
                seen[slot] = True
            else:
                np.testing.assert_array_equal(obs["keypoints"][slot], ABSENT)
                assert presence[slot] == 0.0
    assert seen[:5].all() and not seen[6]  # the player and the four ghosts were all checked on screen


@pytest.mark.parametrize("encoder", ["cnn", "gnn", "keyqn"])
def test_oracle_observations_run_through_every_encoder(encoder):
    """The oracle's keypoints, heatmaps and frame features (absent objects included: the ball of Pong's first frames)
    reach every encoder's view and the recurrent Q-network, as a learned keypointer's do."""
    from keypoints.oracle import ABSENT
    from rl.encoders import ENCODERS
    from rl.envs import keypoint_observation, oracle_keypointer
    from rl.networks import RecurrentQNetwork

    options = {"cnn": {"filters": 8, "binarise": None}, "gnn": {"steps": 1}, "keyqn": {"bins": 4}}[encoder]
    oracle = oracle_keypointer("pong")
    env = keypoint_observation(
        make_agent_env("pong", train=False, max_episode_frames=400), oracle, ENCODERS[encoder](**options).view
    )
    observation, _ = env.reset(seed=0)
    views, keypoints = [observation["view"]], [observation["keypoints"]]
    for _ in range(3):
        observation = env.step(0)[0]
        views.append(observation["view"])
        keypoints.append(observation["keypoints"])
    assert np.any(np.all(np.stack(keypoints) == ABSENT, axis=-1))  # the ball before the serve
    batch = {name: np.stack([v[name] for v in views])[None] for name in views[0]}  # [1, T, ...]
    actions = int(env.action_space.n)
    q = RecurrentQNetwork(actions, encoder, 16, options)(batch)
    assert q.shape == (1, 4, actions) and np.all(np.isfinite(q.numpy()))
