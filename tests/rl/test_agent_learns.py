"""The whole agent stack (actor, sequence replay, n-step double-DQN learner, LSTM, GNN encoder) learns the optimal
action of a tiny game whose keypoints are exact: the check that separates "the agent does not learn" from "the
keypoints are poor" (the agent's floor and ceiling: docs/agents_cpu.md)."""

import gymnasium as gym
import keras
import numpy as np

from rl.actor import QPolicy
from rl.learner import Learner
from rl.loop import Schedule, Trainer, replay_fields
from rl.networks import RecurrentQNetwork
from rl.replay import SequenceReplay

EPISODE = 8


class SideGame(gym.Env):
    """Two keypoints in the GNN encoder's view: the 'ball' at a fresh random x every step, and a fixed 'paddle' at the
    centre. Action 0 pays 1 when the ball is left of the paddle, action 1 when it is right of it, action 2 never;
    episodes last 8 steps. The optimal policy reads one coordinate of the current observation: whatever the agent's
    memory, replay or targets do wrong shows up as a greedy policy that is not it."""

    def __init__(self):
        self.view_space = gym.spaces.Dict(
            {
                "coordinates": gym.spaces.Box(-1, 1, (2, 2), np.float32),
                "features": gym.spaces.Box(0, 1, (2, 2), np.float32),
            }
        )
        self.observation_space = gym.spaces.Dict({"view": self.view_space})
        self.action_space = gym.spaces.Discrete(3)
        self.t, self.x = 0, 0.0

    def _observation(self):
        self.x = float(self.np_random.uniform(-0.9, 0.9))
        coordinates = np.array([[0.0, self.x], [0.0, 0.0]], np.float32)  # (y, x) per keypoint
        return {"view": {"coordinates": coordinates, "features": np.eye(2, dtype=np.float32)}}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._observation(), {}

    def step(self, action):
        reward = float(action == (0 if self.x < 0 else 1))
        self.t += 1
        return self._observation(), reward, self.t == EPISODE, False, {}


def test_the_agent_learns_the_optimal_action_of_a_game_with_exact_keypoints():
    keras.utils.set_random_seed(0)
    env = SideGame()
    online, target = (RecurrentQNetwork(3, "gnn", 32, {"steps": 1}) for _ in range(2))
    learner = Learner(online, target, learning_rate=1e-3, clip_norm=10.0, gamma=0.9, n=3, tau=0.01)
    replay = SequenceReplay(4_000, replay_fields(env.observation_space), seed=0)
    view = env.reset(seed=0)[0]["view"]
    learner.start({k: np.zeros((1, 5, *v.shape), np.float32) for k, v in view.items()})
    schedule = Schedule(
        total_steps=2_000,
        learning_starts=300,
        update_every=2,
        batch_size=16,
        window=4,
        epsilon_start=1.0,
        epsilon_end=0.1,
    )
    Trainer(env, online, learner, replay, schedule, seed=0).run(schedule.total_steps)

    greedy = QPolicy(online, epsilon=0.0, seed=0)
    test = SideGame()
    observation, _ = test.reset(seed=1)
    greedy.reset()
    right, paid, steps = 0, 0.0, 0
    for _ in range(25):  # 25 episodes of 8 steps on unseen draws, the LSTM state carried as in play
        for _ in range(EPISODE):
            x = test.x
            action = greedy.act(observation)
            observation, reward, terminated, _, _ = test.step(action)
            right += int(action == (0 if x < 0 else 1))
            paid += reward
            steps += 1
            if terminated:
                observation, _ = test.reset()
                greedy.reset()
    # A random policy is right 1/3 of the time; one that ignored the keypoints could reach 1/2 at most.
    assert right / steps >= 0.9, f"greedy policy right {right}/{steps} times"
