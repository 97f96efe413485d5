import numpy as np
import pytest

from rl.networks import RecurrentQNetwork
from tests.rl.test_learner import _batch, _network


def test_q_values_have_one_per_step_and_action():
    net = _network("keyqn")
    assert net(_batch(encoder="keyqn")[0]).shape == (2, 5, 3)
    with pytest.raises(ValueError, match="Unknown encoder"):
        RecurrentQNetwork(3, "transformer", 128, {})


def test_stepping_with_carried_state_matches_the_whole_sequence():
    """The actor feeds one step at a time and carries the LSTM state; that must equal running the window at once."""
    net = _network()
    views = _batch()[0]
    whole = net(views).numpy()
    state = net.initial_state(2)
    for t in range(5):
        q, state = net({k: v[:, t : t + 1] for k, v in views.items()}, initial_state=state, return_state=True)
        np.testing.assert_allclose(q.numpy()[:, 0], whole[:, t], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("encoder", ["cnn", "gnn", "keyqn"])
def test_building_by_one_call_makes_the_variables_keras_own_build_makes(encoder):
    """The agents build their Q-networks with keypoints.networks.build_by_calling: the same variables, in the same
    order, with the same initial values as a plain first call."""
    import keras

    from keypoints.networks import build_by_calling
    from tests.conftest import assert_same_weights

    views = {k: v[:, :1] for k, v in _batch(encoder=encoder)[0].items()}
    keras.utils.set_random_seed(5)
    plain = _network(encoder)
    plain(views)
    keras.utils.set_random_seed(5)
    fast = _network(encoder)
    build_by_calling(fast, views)
    assert_same_weights(fast, plain)
