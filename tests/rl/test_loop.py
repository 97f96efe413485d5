import gymnasium as gym
import keras
import numpy as np
import pytest

from rl.learner import PAPER_LEARNER, Learner
from rl.loop import Schedule, Trainer, replay_fields
from rl.networks import RecurrentQNetwork
from rl.replay import SequenceReplay

# A few updates of small networks: eager is cheaper than tracing (tests/conftest.py eager_functions).
pytestmark = pytest.mark.usefixtures("eager_functions")


class FakeKeypointEnv(gym.Env):
    """Keypoint observations of a made-up game: 12-step episodes, the first ends in termination, the next in
    truncation (a time limit), and so on; reward 1 for action 0."""

    def __init__(self):
        self.view_space = gym.spaces.Dict(
            {
                "coordinates": gym.spaces.Box(-1, 1, (3, 2), np.float32),
                "features": gym.spaces.Box(-np.inf, np.inf, (3, 4), np.float32),
            }
        )
        self.observation_space = gym.spaces.Dict({"view": self.view_space})
        self.action_space = gym.spaces.Discrete(3)
        self.episodes, self.t = 0, 0

    def _obs(self):
        return {
            "view": {k: self.np_random.uniform(-1, 1, s.shape).astype(np.float32) for k, s in self.view_space.items()}
        }

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        end = self.t == 12
        terminated, truncated = end and self.episodes % 2 == 0, end and self.episodes % 2 == 1
        self.episodes += int(end)
        return self._obs(), float(action == 0), terminated, truncated, {}


def _trainer(seed=0):
    keras.utils.set_random_seed(seed)
    env = FakeKeypointEnv()
    online, target = RecurrentQNetwork(3, "gnn", 16, {"steps": 1}), RecurrentQNetwork(3, "gnn", 16, {"steps": 1})
    learner = Learner(online, target, **PAPER_LEARNER)
    replay = SequenceReplay(100, replay_fields(env.observation_space), seed=seed)
    learner.start({"coordinates": np.zeros((1, 5, 3, 2), np.float32), "features": np.zeros((1, 5, 3, 4), np.float32)})
    episodes, updates = [], []
    trainer = Trainer(
        env,
        online,
        learner,
        replay,
        Schedule(
            total_steps=30,
            learning_starts=10,
            update_every=2,
            batch_size=2,
            window=4,
            epsilon_start=1.0,
            epsilon_end=0.1,
        ),
        seed=seed,
        on_episode=lambda step, ret, length: episodes.append((step, length)),
        on_update=lambda step, out: updates.append((step, out["loss"])),
    )
    return trainer, episodes, updates


def test_actor_and_learner_run_through_terminated_and_truncated_episodes():
    trainer, episodes, updates = _trainer()
    trainer.run(30)
    assert episodes == [(12, 12), (24, 12)]
    assert [s for s, _ in updates] == list(range(10, 31, 2))  # from learning_starts, every update_every steps
    assert all(np.isfinite(loss) for _, loss in updates)
    replay = trainer.replay
    assert replay.size == 30 + 2  # every step plus each episode's final observation
    ends = np.flatnonzero(replay.actions[: replay.size] == -1)
    np.testing.assert_array_equal(ends, [12, 25])
    assert replay.terminated[11] and not replay.truncated[11]  # the first episode ended in the game
    assert replay.truncated[24] and not replay.terminated[24]  # the second hit the time limit
    assert trainer.timing.learning > 0 and trainer.timing.environment > 0


def test_same_seed_gives_the_same_actions_and_updates():
    a, _, ua = _trainer(seed=4)
    b, _, ub = _trainer(seed=4)
    a.run(20)
    b.run(20)
    np.testing.assert_array_equal(a.replay.actions, b.replay.actions)
    assert ua == ub
