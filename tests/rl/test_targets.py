import numpy as np
import pytest
import tensorflow as tf

from rl.targets import double_q_values, hard_copy, lambda_returns, n_step_targets, polyak_update

G = 0.9


def _targets(rewards, terminated=None, truncated=None, bootstrap=None, n=3):
    t = len(rewards)
    terminated = terminated or [0] * t
    truncated = truncated or [0] * t
    bootstrap = bootstrap if bootstrap is not None else [10.0 * (j + 1) for j in range(t + 1)]
    out, valid = n_step_targets(
        tf.constant([rewards], tf.float32),
        tf.constant([terminated]),
        tf.constant([truncated]),
        tf.constant([bootstrap], tf.float32),
        n,
        G,
    )
    return out.numpy()[0], valid.numpy()[0]


def test_three_step_target_uses_the_rewards_from_the_action_on_and_bootstraps_three_steps_ahead():
    rewards = [1.0, 2.0, 3.0, 4.0, 5.0]
    v = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    out, valid = _targets(rewards, bootstrap=v)
    assert out[0] == pytest.approx(1 + G * 2 + G**2 * 3 + G**3 * 40)  # not r_{t-3..t-1}, not V(s_{t+1})
    assert out[2] == pytest.approx(3 + G * 4 + G**2 * 5 + G**3 * 60)
    assert valid.tolist() == [True, True, True, False, False]


def test_termination_inside_the_window_stops_rewards_and_bootstrap():
    out, valid = _targets([1.0, 2.0, 3.0, 4.0, 5.0], terminated=[0, 1, 0, 0, 0])
    assert out[0] == pytest.approx(1 + G * 2)  # episode over after step 1: no r_2, no bootstrap
    assert out[1] == pytest.approx(2.0)
    assert valid[0] and valid[1]


def test_truncation_bootstraps_from_the_last_state():
    v = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    out, _ = _targets([1.0, 2.0, 3.0, 4.0, 5.0], truncated=[0, 1, 0, 0, 0], bootstrap=v)
    assert out[0] == pytest.approx(1 + G * 2 + G**2 * 30)  # cut after step 1: bootstrap from s_2
    assert out[1] == pytest.approx(2 + G * 30)


def test_an_episode_ending_at_the_window_edge_gives_a_complete_target():
    out, valid = _targets([1.0, 2.0, 3.0, 4.0], terminated=[0, 0, 0, 1])
    assert valid.tolist() == [True, True, True, True]
    assert out[3] == pytest.approx(4.0)
    assert out[2] == pytest.approx(3 + G * 4)


def test_double_q_selects_with_online_and_evaluates_with_target():
    online = tf.constant([[1.0, 5.0, 2.0], [3.0, 0.0, 1.0]])
    target = tf.constant([[7.0, -1.0, 9.0], [0.5, 8.0, 8.0]])
    np.testing.assert_allclose(double_q_values(online, target).numpy(), [-1.0, 0.5])
    sequences = tf.stack([online, online], axis=0)  # [B, T, A] works too
    assert double_q_values(sequences, tf.stack([target, target])).shape == (2, 2)


def test_polyak_and_hard_copy():
    online = [tf.Variable([1.0, 2.0])]
    target = [tf.Variable([0.0, 0.0])]
    polyak_update(target, online, 0.005)
    np.testing.assert_allclose(target[0].numpy(), [0.005, 0.01])
    hard_copy(target, online)
    np.testing.assert_allclose(target[0].numpy(), [1.0, 2.0])


def test_n_must_be_positive():
    with pytest.raises(ValueError, match="n must be"):
        _targets([1.0], n=0)


def _lambda(rewards, terminated, truncated, bootstrap, lam, gamma=0.5):
    out = lambda_returns(
        tf.constant([rewards], tf.float32),
        tf.constant([terminated]),
        tf.constant([truncated]),
        tf.constant([bootstrap], tf.float32),
        lam,
        gamma,
    )
    return out.numpy()[0]


def test_lambda_returns_by_hand():
    r, v, no = [1.0, 2.0, 3.0], [10.0, 20.0, 30.0, 40.0], [False] * 3
    # lambda 0: one-step targets r_t + g V(s_{t+1})
    np.testing.assert_allclose(_lambda(r, no, no, v, 0.0), [1 + 10, 2 + 15, 3 + 20])
    # lambda 1: the return to the window's end, bootstrapped from V(s_3)
    np.testing.assert_allclose(_lambda(r, no, no, v, 1.0), [1 + 1 + 0.75 + 5, 2 + 1.5 + 10, 3 + 20])
    # lambda 0.5: G_2 = 3 + 0.5 * 40 = 23; G_1 = 2 + 0.5 (0.5 * 30 + 0.5 * 23) = 15.25;
    # G_0 = 1 + 0.5 (0.5 * 20 + 0.5 * 15.25) = 9.8125
    np.testing.assert_allclose(_lambda(r, no, no, v, 0.5), [9.8125, 15.25, 23.0])


def test_lambda_returns_stop_at_termination_and_bootstrap_at_truncation():
    r, v, no = [1.0, 2.0, 3.0], [10.0, 20.0, 30.0, 40.0], [False] * 3
    ended = [False, True, False]  # the episode ends after the second transition
    terminated = _lambda(r, ended, no, v, 1.0)
    np.testing.assert_allclose(terminated[:2], [1 + 0.5 * 2, 2])  # no value after termination
    truncated = _lambda(r, no, ended, v, 1.0)
    np.testing.assert_allclose(truncated[:2], [1 + 0.5 * (2 + 0.5 * 30), 2 + 0.5 * 30])  # V(s_2) after truncation
    with pytest.raises(ValueError, match="lambda"):
        _lambda(r, no, no, v, 1.5)


def test_lambda_returns_keep_trailing_dims_per_q_function():
    """[B, T, K, 4]-like rewards: each trailing entry gets the scalar recursion, with the per-step flags broadcast."""
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(2, 3, 2, 4)).astype(np.float32)
    bootstrap = rng.normal(size=(2, 4, 2, 4)).astype(np.float32)
    terminated = np.array([[False, True, False], [False, False, False]])
    truncated = np.array([[False, False, False], [True, False, False]])
    out = lambda_returns(
        tf.constant(rewards), tf.constant(terminated), tf.constant(truncated), tf.constant(bootstrap), 0.5, 0.9
    ).numpy()
    for b in range(2):
        for k in range(2):
            for j in range(4):
                expected = lambda_returns(
                    tf.constant(rewards[b : b + 1, :, k, j]),
                    tf.constant(terminated[b : b + 1]),
                    tf.constant(truncated[b : b + 1]),
                    tf.constant(bootstrap[b : b + 1, :, k, j]),
                    0.5,
                    0.9,
                ).numpy()[0]
                np.testing.assert_allclose(out[b, :, k, j], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[0, 1], rewards[0, 1], rtol=1e-6)  # terminated: the reward alone
