import numpy as np
import pytest

from rl.actor import QPolicy, epsilon_at
from tests.rl.test_learner import _batch, _network


def test_epsilon_schedule_is_linear_then_flat():
    assert epsilon_at(0, 100, 1.0, 0.1) == 1.0
    assert epsilon_at(50, 100, 1.0, 0.1) == pytest.approx(0.55)
    assert epsilon_at(500, 100, 1.0, 0.1) == pytest.approx(0.1)


def test_greedy_policy_acts_on_the_typed_observation_and_carries_its_memory():
    views = _batch()[0]
    policy = QPolicy(_network(), epsilon=0.0, seed=0)
    first = {"view": {k: v.numpy()[0, 0] for k, v in views.items()}}
    action = policy.act(first)  # type: ignore[arg-type]
    assert action == int(np.argmax(policy.last_q)) and 0 <= action < 3
    assert not np.allclose(policy.state[0].numpy(), 0.0)  # the LSTM state moved on
    policy.reset()
    np.testing.assert_array_equal(policy.state[0].numpy(), 0.0)
