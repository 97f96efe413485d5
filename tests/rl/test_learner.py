import keras
import numpy as np
import pytest
import tensorflow as tf

from keypoints.ops import keypoints_to_maps
from rl.encoders import ENCODERS
from rl.learner import PAPER_LEARNER, Learner
from rl.networks import RecurrentQNetwork

# A few updates of small networks: eager is cheaper than tracing (tests/conftest.py eager_functions).
pytestmark = pytest.mark.usefixtures("eager_functions")


OPTIONS = {"cnn": {"filters": 128, "binarise": None}, "gnn": {"steps": 1}, "keyqn": {"bins": 16}}  # the paper's
HYPERPARAMETERS = PAPER_LEARNER


def _batch(seed=0, encoder="gnn", b=2, w=4, k=3, grid=7, c=4, actions=3):
    """A window batch as the learner gets it: the encoder views of W + 1 observations, then W transitions."""
    rng = np.random.default_rng(seed)
    coordinates = tf.constant(rng.uniform(-0.9, 0.9, (b * (w + 1), k, 2)), tf.float32)
    heatmaps = keypoints_to_maps(coordinates, grid, grid, 0.2)
    features = tf.constant(rng.normal(size=(b * (w + 1), grid, grid, c)), tf.float32)
    flat = ENCODERS[encoder](**OPTIONS[encoder]).view(coordinates, heatmaps, features)
    views = {name: tf.reshape(v, (b, w + 1, *v.shape[1:])) for name, v in flat.items()}
    return (
        views,
        tf.constant(rng.integers(0, actions, (b, w)), tf.int32),
        tf.constant(rng.normal(size=(b, w)), tf.float32),
        tf.zeros((b, w), tf.bool),
        tf.zeros((b, w), tf.bool),
    )


def _network(encoder="gnn"):
    """The paper's 128 LSTM units and encoder settings."""
    return RecurrentQNetwork(3, encoder, 128, OPTIONS[encoder])


def _learner(seed=0, encoder="gnn"):
    keras.utils.set_random_seed(seed)
    learner = Learner(_network(encoder), _network(encoder), **HYPERPARAMETERS)
    learner.start(_batch(encoder=encoder)[0])
    return learner


def test_target_starts_as_a_copy_and_must_be_started():
    learner = _learner()
    for t, o in zip(learner.target.trainable_variables, learner.online.trainable_variables, strict=True):
        np.testing.assert_array_equal(t.numpy(), o.numpy())
    fresh = Learner(_network(), _network(), **HYPERPARAMETERS)
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
    batch = _batch(encoder="cnn")
    first = float(learner.train_step(*batch)["loss"])
    for _ in range(10):  # eager updates of the paper's 128-filter CNN cost ~0.3 s each; the loss falls from the first
        last = float(learner.train_step(*batch)["loss"])
    assert last < first
    online = learner.online.trainable_variables[0].numpy()
    target = learner.target.trainable_variables[0].numpy()
    assert not np.allclose(online, target)  # the target moves 0.5% per update


def test_the_target_follows_the_cnn_encoders_moving_statistics_too():
    """The target network evaluates in inference mode, where BatchNorm normalises with its moving statistics: they are
    copied at the start and Polyak-averaged with the trainable weights, or the target would normalise with its
    initial mean 0 and variance 1 for the whole run."""
    learner = _learner(encoder="cnn")
    online, target = learner.online.non_trainable_weights, learner.target.non_trainable_weights
    assert online and len(online) == len(target)  # BatchNorm's moving means and variances
    for t, o in zip(target, online, strict=True):
        np.testing.assert_array_equal(t.numpy(), o.numpy())
    before = [t.numpy() for t in target]
    learner.train_step(*_batch(encoder="cnn"))
    tau = HYPERPARAMETERS["tau"]
    moved = False
    for b, t, o in zip(before, target, online, strict=True):
        np.testing.assert_allclose(t.numpy(), tau * o.numpy() + (1 - tau) * b, rtol=1e-5, atol=1e-7)
        moved = moved or not np.array_equal(t.numpy(), b)
    assert moved  # a training-mode update moved the online statistics, and the target followed by tau
