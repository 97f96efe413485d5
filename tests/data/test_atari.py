import numpy as np

from data.atari import FRAME_SHAPE, GroundTruth, make_env, ram_of
from data.games import get_game


def test_observation_is_84x84_rgb_uint8():
    env = make_env(get_game("pong"))
    frame, _ = env.reset(seed=0)
    assert frame.shape == FRAME_SHAPE and frame.dtype == np.uint8
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == 0.0


def test_pong_ground_truth_has_both_paddles_and_the_ball_inside_the_frame():
    game = get_game("pong")
    env, truth = make_env(game), GroundTruth(game)
    env.reset(seed=0)
    truth.reset()
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        env.step(int(rng.integers(env.action_space.n)))
        objects = truth.detect(ram_of(env))
        names = {truth.categories[c] for c in objects.categories}
        if {"Player", "Enemy", "Ball"} <= names:
            x, y, w, h = objects.boxes.T
            assert (x >= 0).all() and (x + w <= 160).all() and (y >= 0).all() and (y + h <= 210).all()
            np.testing.assert_allclose(objects.centres, objects.boxes[:, :2] + objects.boxes[:, 2:] / 2)
            seen = names
            break
    assert {"Player", "Enemy", "Ball"} <= seen


def test_ground_truth_boxes_sit_on_bright_paddle_pixels():
    """The player's paddle box, mapped to the 84x84 frame, covers the paddle's colour (a coordinate-frame check)."""
    game = get_game("pong")
    env, truth = make_env(game), GroundTruth(game)
    frame, _ = env.reset(seed=1)
    truth.reset()
    for _ in range(30):
        frame, *_ = env.step(0)
    objects = truth.detect(ram_of(env))
    player = objects.boxes[[truth.categories[c] == "Player" for c in objects.categories]][0]
    x0, y0 = int(player[0] * 84 / 160), int(player[1] * 84 / 210)
    x1, y1 = int(np.ceil((player[0] + player[2]) * 84 / 160)), int(np.ceil((player[1] + player[3]) * 84 / 210))
    inside = frame[y0:y1, x0:x1].astype(int)
    background = frame[45, 40].astype(int)  # Pong's brown field, away from paddles
    assert np.abs(inside - background).sum(-1).max() > 60


def test_ram_inner_observations_give_the_same_frames_as_gymnasiums_plain_composition():
    game = get_game("pong")
    runs = []
    for inner in ("ram", "rgb"):
        env = make_env(game, inner_observations=inner)
        frames = [env.reset(seed=3)[0]]
        rng = np.random.default_rng(3)
        for _ in range(300):
            frame, reward, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            frames.append(frame)
            if terminated or truncated:
                frames.append(env.reset()[0])
        runs.append(np.stack(frames))
    assert runs[0].shape == (len(runs[0]), 84, 84, 3)
    np.testing.assert_array_equal(runs[0], runs[1])
