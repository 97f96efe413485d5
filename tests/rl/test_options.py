"""Keypoint options (rl/options.py): the rewards, the commitment, the epsilon draws, the shared replay, and that
equation 2 finds the keypoint the actions move."""

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from rl.loop import Schedule, Trainer, replay_fields
from rl.options import (
    DIRECTIONS,
    OptionLearner,
    OptionPolicy,
    OptionQNetwork,
    RepeatedActionPolicy,
    intrinsic_rewards,
    log_uniform,
    q_gap,
)
from rl.replay import SequenceReplay

CONTROLLED = 1  # the keypoint index of the object the actions move


class DotsEnv(gym.Env):
    """Three dots seen as keypoints (the keypointer isolated away): the actions (no-op, +x, -x, +y, -y) move dot 1 by
    0.15; dots 0 and 2 bounce on their own at a fixed speed, whatever the action. 40-step episodes, then truncation."""

    SPEED, STEP, LENGTH = 0.12, 0.15, 40

    def __init__(self):
        box = gym.spaces.Box(-1, 1, (3, 2), np.float32)
        view = gym.spaces.Dict({"coordinates": box, "features": gym.spaces.Box(-1, 1, (3, 1), np.float32)})
        self.observation_space = gym.spaces.Dict({"keypoints": box, "view": view})
        self.action_space = gym.spaces.Discrete(5)

    def _obs(self):
        points = self.points.astype(np.float32)
        return {"keypoints": points, "view": {"coordinates": points, "features": np.zeros((3, 1), np.float32)}}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.points = self.np_random.uniform(-0.8, 0.8, (3, 2))
        angles = self.np_random.uniform(0, 2 * np.pi, 3)
        self.velocity = self.SPEED * np.stack([np.sin(angles), np.cos(angles)], -1)
        self.velocity[CONTROLLED] = 0.0
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        move = {0: (0, 0), 1: (0, 1), 2: (0, -1), 3: (1, 0), 4: (-1, 0)}[int(action)]
        self.points[CONTROLLED] += self.STEP * np.asarray(move, np.float64)
        self.points += self.velocity
        bounce = np.abs(self.points) > 0.9
        self.velocity[bounce] *= -1
        self.points = np.clip(self.points, -0.9, 0.9)
        return self._obs(), 0.0, False, self.t == self.LENGTH, {}


def _network(units=32):
    return OptionQNetwork(3, 5, "keyqn", units, {"bins": 8})


def _learner(online, target, lr=1e-3):
    learner = OptionLearner(online, target, learning_rate=lr, clip_norm=10.0, gamma=0.9, lam=0.8, tau=0.05)
    zeros = {"coordinates": np.zeros((1, 5, 3, 2), np.float32), "features": np.zeros((1, 5, 3, 1), np.float32)}
    learner.start(zeros)
    return learner


def test_intrinsic_rewards_are_the_keypoints_displacements():
    # (y, x) of two keypoints over three observations
    coords = np.array([[[0.0, 0.0], [0.5, -0.5]], [[0.1, 0.3], [0.5, -0.7]], [[-0.2, 0.3], [0.4, -0.7]]], np.float32)
    rewards = intrinsic_rewards(coords[None]).numpy()[0]  # [T=2, K=2, 4]
    expected = np.array(
        [
            [[0.3, -0.3, 0.1, -0.1], [-0.2, 0.2, 0.0, 0.0]],  # keypoint 0 right and down; keypoint 1 left
            [[0.0, 0.0, -0.3, 0.3], [0.0, 0.0, -0.1, 0.1]],  # both up
        ]
    )
    np.testing.assert_allclose(rewards, expected, atol=1e-6)
    assert DIRECTIONS == ("+x", "-x", "+y", "-y")


def test_q_gap_is_equation_2():
    q = np.zeros((2, 4, 3))
    q[0, :, 0] = 1.0  # keypoint 0: gap 1 in every direction
    q[1, 0] = [0.0, 3.0, 1.0]  # keypoint 1: gap 3 in one direction only -> 3/4
    np.testing.assert_allclose(q_gap(q), [1.0, 0.75])


def test_epsilon_draws_are_log_uniform_and_seeded():
    draws = np.array([log_uniform(np.random.default_rng(7).spawn(1)[0], 1e-4, 0.4) for _ in range(3)])
    assert len(set(draws)) == 1  # the same seed gives the same draw
    rng = np.random.default_rng(0)
    many = np.array([log_uniform(rng, 1e-4, 0.4) for _ in range(4000)])
    assert many.min() >= 1e-4 and many.max() <= 0.4
    logs = (np.log(many) - np.log(1e-4)) / (np.log(0.4) - np.log(1e-4))
    assert stats.kstest(logs, "uniform").pvalue > 1e-3  # uniform in log space
    assert stats.kstest(many / 0.4, "uniform").pvalue < 1e-6  # and not uniform in linear space
    with pytest.raises(ValueError, match="0 < low"):
        log_uniform(rng, 0.0, 0.4)


def test_options_commit_for_T_steps_and_measure_their_displacement():
    keras.utils.set_random_seed(0)
    env, network = DotsEnv(), _network()
    policy = OptionPolicy(network, option_steps=5, seed=3)
    observation, _ = env.reset(seed=0)
    policy.reset()
    chosen = []
    for _ in range(17):
        action = policy.act(observation)
        chosen.append((policy.option.keypoint, policy.option.direction, policy.option.epsilon))
        observation, *_ = env.step(action)
    policy.act(observation)  # the 18th step starts the fourth option and closes the third
    assert [len(set(chosen[i : i + 5])) for i in (0, 5, 10)] == [1, 1, 1]  # one option per T-step stretch
    assert len(set(chosen)) > 1  # and it is redrawn after them
    assert [o.steps for o in policy.finished] == [5, 5, 5]
    assert [o.start for o in policy.finished] == [0, 5, 10]
    for o in policy.finished:
        assert 1e-4 <= o.epsilon <= 0.4
    # a second policy with the same seed draws the same options and epsilons
    again = OptionPolicy(network, option_steps=5, seed=3)
    observation, _ = env.reset(seed=0)
    for _ in range(18):
        observation, *_ = env.step(again.act(observation))
    assert [(o.keypoint, o.direction, o.epsilon) for o in again.finished] == [
        (o.keypoint, o.direction, o.epsilon) for o in policy.finished
    ]


def test_option_displacement_is_the_sum_of_its_intrinsic_rewards():
    keras.utils.set_random_seed(1)
    env, network = DotsEnv(), _network()
    policy = OptionPolicy(network, option_steps=4, seed=0)
    observation, _ = env.reset(seed=1)
    seen = [observation["keypoints"].copy()]
    for _ in range(4):
        observation, *_ = env.step(policy.act(observation))
        seen.append(observation["keypoints"].copy())
    policy.act(observation)  # closes the first option at the observation after its 4 steps
    option = policy.finished[0]
    rewards = intrinsic_rewards(np.stack(seen)[None]).numpy()[0]  # [4, K, 4]
    np.testing.assert_allclose(option.displacement, rewards[:, option.keypoint, option.direction].sum(), atol=1e-5)


def test_every_q_function_learns_from_the_shared_replay():
    """Transitions of one option only (always action 1) still train all K x 4 Q functions: the learner's loss reaches
    the output of every (keypoint, direction) at the taken action, and no other action's output."""
    keras.utils.set_random_seed(0)
    online, target = _network(), _network()
    learner = _learner(online, target)
    rng = np.random.default_rng(0)
    views = {
        "coordinates": rng.uniform(-1, 1, (4, 6, 3, 2)).astype(np.float32),
        "features": np.zeros((4, 6, 3, 1), np.float32),
    }
    actions = tf.constant(np.full((4, 5), 1, np.int32))
    flags = tf.zeros((4, 5), tf.bool)
    with tf.GradientTape() as tape:
        loss, taken, intrinsic = learner.td_loss(views, actions, flags, flags)
    grad = tape.gradient(loss, online.q.bias).numpy().reshape(3, 4, 5)  # [K, 4, A]
    assert np.all(np.abs(grad[:, :, 1]) > 0)  # every Q function learns from these transitions
    np.testing.assert_array_equal(np.delete(grad, 1, axis=-1), 0.0)  # through the taken action only
    assert taken.shape == (4, 5, 3, 4) and intrinsic.shape == (4, 5, 3, 4)
    q = online(views).numpy()
    np.testing.assert_allclose(taken.numpy(), q[:, :-1, :, :, 1], rtol=1e-5, atol=1e-6)
    out = learner.train_step(views, actions, tf.zeros((4, 5)), flags, flags)
    assert np.isfinite(float(out["loss"])) and float(out["reward"]) > 0


def _trained_policy(steps=2400, seed=0):
    keras.utils.set_random_seed(seed)
    env = DotsEnv()
    online, target = _network(), _network()
    learner = _learner(online, target)
    replay = SequenceReplay(steps + 100, replay_fields(env.observation_space), seed=seed)
    behaviour = OptionPolicy(online, option_steps=8, seed=seed)
    schedule = Schedule(steps, 200, 2, 16, 6, 0.0, 0.0)
    trainer = Trainer(env, online, learner, replay, schedule, seed=seed, policy=behaviour)
    trainer.run(steps)
    return online, behaviour


def test_q_gap_picks_the_keypoint_the_actions_move():
    """Untrained networks pick by chance (4 seeds measured: the controlled dot in 0.0-0.71 of the steps, its gap
    0.6-1.1x the largest other). After 2,400 steps of the training behaviour (12 seeds measured; a different CPU's
    rounding is one more seed): picked in 0.76-1.0 of the steps, gap 1.37-1.74x, greedy options move it 0.38-0.81.
    The bounds sit below the trained range and above the untrained one, so one seed tests them."""
    seed = 0
    online, behaviour = _trained_policy(seed=seed)
    assert len({(o.keypoint, o.direction) for o in behaviour.finished}) > 6  # the behaviour sampled many options
    env = DotsEnv()
    explorer = OptionPolicy(online, option_steps=8, seed=seed, mode="explore")
    gaps = []
    for episode in range(5):
        observation, _ = env.reset(seed=100 + episode)
        explorer.reset()
        for _ in range(20):
            observation, *_ = env.step(explorer.act(observation))
            gaps.append(explorer.last_gap)
    gaps = np.array(gaps)
    assert np.mean(gaps.argmax(axis=1) == CONTROLLED) > 0.6
    others = np.delete(gaps.mean(axis=0), CONTROLLED)
    assert gaps.mean(axis=0)[CONTROLLED] > 1.2 * others.max()
    moves = [o.displacement for o in explorer.finished if o.keypoint == CONTROLLED]
    assert np.mean(moves) > 0.25  # greedy options move the controlled dot along their direction (0.15 per step)


def test_repeated_action_policy_holds_each_random_action_for_its_steps():
    policy = RepeatedActionPolicy(num_actions=9, steps=4, seed=0)
    actions = [policy.act(None) for _ in range(40)]
    blocks = [actions[i : i + 4] for i in range(0, 40, 4)]
    assert all(len(set(block)) == 1 for block in blocks) and len({b[0] for b in blocks}) > 2
    policy.act(None)
    policy.reset()  # a new episode draws at once and holds that action for a whole block again
    assert len({policy.act(None) for _ in range(4)}) == 1 and policy._left == 0
