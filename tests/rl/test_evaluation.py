import gymnasium as gym
import numpy as np
import pytest

from rl.evaluation import Episode, play, play_episodes, protocol_summary


def test_protocol_is_mean_over_policies_of_median_over_seeds_of_episode_means():
    scores = np.array(
        [
            [[1, 3], [10, 10], [0, 0]],  # policy 0: seed means 2, 10, 0 -> median 2
            [[5, 5], [6, 8], [100, 100]],  # policy 1: seed means 5, 7, 100 -> median 7
        ],
        float,
    )
    summary = protocol_summary(scores)
    assert summary["medians"] == [2.0, 7.0]
    assert summary["mean"] == pytest.approx(4.5) and summary["std"] == pytest.approx(2.5)
    with pytest.raises(ValueError, match="policies, seeds, episodes"):
        protocol_summary(np.zeros((3, 4)))


class _Countdown(gym.Env):
    """Ends by itself (terminated) after `length` steps when the action is 1; action 0 never ends it (a stall that
    only the time limit stops). Reward 1 a step."""

    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int):
        self.length, self.t = length, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return 0, {}

    def step(self, action):
        self.t += 1
        return 0, 1.0, bool(action == 1 and self.t >= self.length), False, {}


class _Constant:
    def __init__(self, action: int):
        self.action = action

    def reset(self) -> None:
        pass

    def act(self, observation) -> int:
        return self.action


def test_episodes_record_their_length_and_whether_the_cap_ended_them():
    env = gym.wrappers.TimeLimit(_Countdown(3), max_episode_steps=7)
    assert play_episodes(env, _Constant(1), seed=0, episodes=2) == [Episode(3.0, 3, False)] * 2
    assert play_episodes(env, _Constant(0), seed=0, episodes=1) == [Episode(7.0, 7, True)]
    assert play(env, _Constant(0), seed=0, episodes=1) == [7.0]
