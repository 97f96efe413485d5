import numpy as np
import pytest
import tensorflow as tf

from rl.targets import double_q_values, hard_copy, n_step_targets, polyak_update

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
