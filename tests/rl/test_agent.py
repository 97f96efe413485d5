import keras
import numpy as np
import pytest
import tensorflow as tf

from keypoints.ops import keypoints_to_maps
from rl.agent import Learner, RecurrentQNetwork, epsilon_at


def _batch(seed=0, b=2, w=4, k=3, grid=7, c=4, actions=3):
    rng = np.random.default_rng(seed)
    coordinates = rng.uniform(-0.9, 0.9, (b, w + 1, k, 2)).astype(np.float32)
    heatmaps = (
        keypoints_to_maps(coordinates.reshape(-1, k, 2), grid, grid, 0.2).numpy().reshape(b, w + 1, grid, grid, k)
    )
    features = rng.normal(size=(b, w + 1, grid, grid, c)).astype(np.float32)
    inputs = (tf.constant(coordinates), tf.constant(heatmaps), tf.constant(features))
    return (
        inputs,
        tf.constant(rng.integers(0, actions, (b, w)), tf.int32),
        tf.constant(rng.normal(size=(b, w)), tf.float32),
        tf.zeros((b, w), tf.bool),
        tf.zeros((b, w), tf.bool),
    )


def _learner(seed=0, encoder="gnn"):
    keras.utils.set_random_seed(seed)
    learner = Learner(RecurrentQNetwork(3, encoder), RecurrentQNetwork(3, encoder), tau=0.005)
    learner.start(_batch()[0])
    return learner


def test_q_values_have_one_per_step_and_action():
    net = RecurrentQNetwork(3, "keyqn")
    assert net(_batch()[0]).shape == (2, 5, 3)
    with pytest.raises(ValueError, match="Unknown encoder"):
        RecurrentQNetwork(3, "transformer")


def test_target_starts_as_a_copy_and_must_be_started():
    learner = _learner()
    for t, o in zip(learner.target.trainable_variables, learner.online.trainable_variables, strict=True):
        np.testing.assert_array_equal(t.numpy(), o.numpy())
    fresh = Learner(RecurrentQNetwork(3, "gnn"), RecurrentQNetwork(3, "gnn"))
    with pytest.raises(RuntimeError, match="start"):
        fresh.train_step(*_batch())


def test_same_seed_gives_identical_first_updates():
    a, b = _learner(seed=3), _learner(seed=3)
    la = float(a.train_step(*_batch())["loss"])
    lb = float(b.train_step(*_batch())["loss"])
    assert la == lb
    for va, vb in zip(a.online.trainable_variables, b.online.trainable_variables, strict=True):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())


def test_loss_falls_and_target_trails_by_polyak():
    learner = _learner(encoder="cnn")
    batch = _batch()
    first = float(learner.train_step(*batch)["loss"])
    for _ in range(30):
        last = float(learner.train_step(*batch)["loss"])
    assert last < first
    online = learner.online.trainable_variables[0].numpy()
    target = learner.target.trainable_variables[0].numpy()
    assert not np.allclose(online, target)  # the target moves 0.5% per update


def test_epsilon_schedule_is_linear_then_flat():
    assert epsilon_at(0, 100) == 1.0
    assert epsilon_at(50, 100) == pytest.approx(0.55)
    assert epsilon_at(500, 100) == pytest.approx(0.1)
