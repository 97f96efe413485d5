"""Keypoint-based options for exploration and the most controllable keypoint (Transporter paper, sections 3.2.2 and
4.2.2, equation 2; docs/method.md section 2.9). Nothing public implements this part; this module is our reading of the
text.

- K x 4 intrinsic rewards per step: keypoint i's displacement along +x, -x, +y, -y between consecutive observations,
  r_i1 = x_i(t+1) - x_i(t), r_i2 = -r_i1, r_i3 = y_i(t+1) - y_i(t), r_i4 = -r_i3 (`intrinsic_rewards`; keypoints
  are (y, x) in [-1, 1], y down, so +y moves down the screen).
- K x 4 Q functions over the environment's actions, one recurrent network with a K x 4 x A output
  (`OptionQNetwork`: the paper has a CNN on pixels and an LSTM of 256; here the frozen keypointer's view through a
  keypoint encoder, as the agents see it, then the LSTM), all trained on every transition of one shared replay with
  Peng's Q(lambda) over the replay's windows (`OptionLearner`, rl.targets.lambda_returns) and double-Q bootstraps.
- Behaviour (`OptionPolicy`, mode "train"): one (keypoint, direction) Q function drawn uniformly, followed
  epsilon-greedily for T steps (20 in the paper), then redrawn; each draw also draws epsilon log-uniformly from
  [1e-4, 0.4].
- Controllability (equation 2): Q_gap_i(s) = 1/4 sum_j (max_a Q_ij(s, a) - min_a Q_ij(s, a)); the most controllable
  keypoint is argmax_i (`q_gap`). Mode "explore": at each draw, that keypoint and a direction drawn uniformly, followed
  greedily for T steps: the random exploration in option space that section 4.2.2 compares with random actions.
  `RepeatedActionPolicy` (ours, not the paper's) holds a random action for T steps: the control that separates what
  the keypoints bring from what committing to one behaviour for T steps brings.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from rl.actor import view_of
from rl.envs import Observation
from rl.learner import Learner
from rl.networks import RecurrentQNetwork
from rl.targets import double_q_values, lambda_returns, polyak_update

DIRECTIONS = ("+x", "-x", "+y", "-y")
"""The four options per keypoint, in the order of the Q functions' second axis."""


def intrinsic_rewards(coordinates: tf.Tensor) -> tf.Tensor:
    """coordinates [..., T + 1, K, 2] (y, x) of consecutive observations -> rewards [..., T, K, 4] in the order of
    DIRECTIONS: (dx, -dx, dy, -dy) of each keypoint between observation t and t + 1."""
    coordinates = tf.cast(coordinates, tf.float32)
    step = coordinates[..., 1:, :, :] - coordinates[..., :-1, :, :]  # [..., T, K, 2]
    dy, dx = step[..., 0], step[..., 1]
    return tf.stack([dx, -dx, dy, -dy], axis=-1)


def q_gap(q: Any) -> np.ndarray:
    """Equation 2's controllability of each keypoint: q [..., K, 4, A] -> [..., K], the mean over the four directions
    of max_a Q_ij - min_a Q_ij. The most controllable keypoint is its argmax."""
    q = np.asarray(q, np.float64)
    return (q.max(axis=-1) - q.min(axis=-1)).mean(axis=-1)


class OptionQNetwork(RecurrentQNetwork):
    """The K x 4 option Q functions in one recurrent network: call(view {name: [B, T, ...]}) -> Q [B, T, K, 4, A]
    (with initial_state/return_state as RecurrentQNetwork). The encoder must see coordinates (gnn, keyqn): the
    intrinsic rewards are computed from the coordinates the replay stores with each view."""

    def __init__(self, num_keypoints: int, num_actions: int, encoder: str, units: int, encoder_options: dict, **kw):
        if encoder == "cnn":
            raise ValueError(
                "Options need the keypoints' coordinates in the stored view to compute their rewards; the cnn "
                "encoder's view has none. Use encoder=keyqn or encoder=gnn."
            )
        super().__init__(num_keypoints * len(DIRECTIONS) * num_actions, encoder, units, encoder_options, **kw)
        self.num_keypoints, self.num_env_actions = num_keypoints, num_actions

    def call(self, view, initial_state=None, return_state: bool = False, training: bool = False):
        out = super().call(view, initial_state=initial_state, return_state=return_state, training=training)
        q, state = out if return_state else (out, None)
        shape = tf.concat([tf.shape(q)[:2], [self.num_keypoints, len(DIRECTIONS), self.num_env_actions]], 0)
        q = tf.reshape(q, shape)
        return (q, state) if return_state else q


class OptionLearner(Learner):
    """One update of all K x 4 Q functions on a batch of windows from the shared replay: intrinsic rewards from the
    stored coordinates, double-Q bootstraps (online selects, target evaluates) per Q function, Peng's Q(lambda)
    targets with discount `gamma`, squared TD error averaged over steps and Q functions, Adam with a global
    gradient-norm clip, Polyak update of the target network by `tau`. The extrinsic reward is not used."""

    def __init__(
        self,
        online: OptionQNetwork,
        target: OptionQNetwork,
        *,
        learning_rate: float,
        clip_norm: float,
        gamma: float,
        lam: float,
        tau: float,
        jit_compile: bool = True,
    ):
        # Learner's n (n-step double DQN) has no role here: the window's length is the n of Q(lambda).
        super().__init__(
            online,
            target,
            learning_rate=learning_rate,
            clip_norm=clip_norm,
            gamma=gamma,
            n=1,
            tau=tau,
            jit_compile=jit_compile,
        )
        self.lam = lam

    def td_loss(self, views, actions, terminated, truncated) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(loss, Q of the taken actions [B, W, K, 4], intrinsic rewards [B, W, K, 4]) of a batch of windows: every
        Q function is scored on every transition, whichever option chose its action."""
        intrinsic = intrinsic_rewards(views["coordinates"])  # [B, W, K, 4]
        q = self.online(views, training=True)  # [B, W + 1, K, 4, A]
        action = tf.broadcast_to(actions[:, :, None, None], tf.shape(intrinsic))
        taken = tf.gather(q[:, :-1], action, axis=-1, batch_dims=4)  # [B, W, K, 4]
        bootstrap = double_q_values(tf.stop_gradient(q), self.target(views))  # [B, W + 1, K, 4]
        targets = lambda_returns(intrinsic, terminated, truncated, bootstrap, self.lam, self.gamma)
        return tf.reduce_mean(tf.square(tf.stop_gradient(targets) - taken)), taken, intrinsic

    def _step(self, views, actions, rewards, terminated, truncated) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            loss, taken, intrinsic = self.td_loss(views, actions, terminated, truncated)
        variables = self.online.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        polyak_update(self.target.weights, self.online.weights, self.tau)  # moving statistics too (rl/learner.py)
        return {"loss": loss, "q": tf.reduce_mean(taken), "reward": tf.reduce_mean(tf.abs(intrinsic))}


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A draw whose logarithm is uniform on [log low, log high] (the paper's epsilon, [1e-4, 0.4])."""
    if not 0.0 < low <= high:
        raise ValueError(f"A log-uniform range needs 0 < low <= high, got [{low}, {high}].")
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


@dataclasses.dataclass
class Option:
    """One committed option: keypoint i moved along DIRECTIONS[j], from agent step `start`, with its epsilon, drawn
    when `most_controllable` was equation 2's choice; when it ends, `steps` taken and `displacement` (the undiscounted
    sum of its intrinsic reward: the keypoint's move along its direction from its first to its last observation; an
    option cut by the episode's end is measured to the last observation the policy saw)."""

    keypoint: int
    direction: int
    epsilon: float
    start: int
    most_controllable: int
    origin: np.ndarray  # the keypoint's (y, x) when the option began
    steps: int = 0
    displacement: float = 0.0


class OptionPolicy:
    """Acts with one option at a time, redrawn every `option_steps` steps and at each episode start.

    mode "train": the (keypoint, direction) pair uniformly, epsilon log-uniform on `epsilon_range` (the paper's
    behaviour while learning); mode "explore": the most controllable keypoint (argmax of q_gap at the draw), a direction
    uniformly, greedy (section 4.2.2's evaluation). Carries the LSTM state through the episode like QPolicy. After each
    act: `last_q` [K, 4, A], `last_gap` [K], `option` (the current Option); `finished` collects ended options.
    """

    def __init__(
        self,
        network: OptionQNetwork,
        option_steps: int,
        seed: int,
        mode: str = "train",
        epsilon_range: tuple[float, float] = (1e-4, 0.4),
    ):
        if mode not in ("train", "explore"):
            raise ValueError(f"Unknown option mode {mode!r}; choose 'train' or 'explore'.")
        if option_steps < 1:
            raise ValueError(f"option_steps (T) must be >= 1, got {option_steps}.")
        self.network, self.option_steps, self.mode = network, option_steps, mode
        self.epsilon_range = (float(epsilon_range[0]), float(epsilon_range[1]))
        self.rng = np.random.default_rng(seed)
        self._q = tf.function(lambda view, state: network(view, initial_state=state, return_state=True))
        self.state = network.initial_state(1)
        self.option: Option | None = None
        self.finished: list[Option] = []
        self.last_q: np.ndarray | None = None
        self.last_gap: np.ndarray | None = None
        self.steps = 0  # agent steps acted, over all episodes
        self._last_keypoints: np.ndarray | None = None

    @property
    def most_controllable(self) -> int:
        """Equation 2's keypoint at the last observation acted on."""
        if self.last_gap is None:
            raise RuntimeError("most_controllable is known after the first act().")
        return int(np.argmax(self.last_gap))

    def reset(self) -> None:
        """A new episode: the LSTM state restarts and the running option ends (measured to the last observation)."""
        self._close()
        self.state = self.network.initial_state(1)

    def _close(self) -> None:
        option = self.option
        if option is not None and option.steps > 0 and self._last_keypoints is not None:
            ends = np.stack([option.origin, self._last_keypoints[option.keypoint]])[:, None]  # [2, 1, 2]
            option.displacement = float(intrinsic_rewards(ends)[0, 0, option.direction])  # the rewards telescope
            self.finished.append(option)
        self.option = None

    def _draw(self, keypoints: np.ndarray) -> Option:
        chosen = self.most_controllable
        if self.mode == "train":
            head = int(self.rng.integers(self.network.num_keypoints * len(DIRECTIONS)))
            keypoint, direction = divmod(head, len(DIRECTIONS))
            epsilon = log_uniform(self.rng, *self.epsilon_range)
        else:
            keypoint, direction, epsilon = chosen, int(self.rng.integers(len(DIRECTIONS))), 0.0
        return Option(keypoint, direction, epsilon, self.steps, chosen, keypoints[keypoint].copy())

    def act(self, observation: Observation) -> int:
        q, self.state = self._q(view_of(observation), self.state)
        values = q.numpy()[0, 0]  # [K, 4, A]
        keypoints = np.asarray(observation["keypoints"], np.float64)
        self.last_q, self.last_gap = values, q_gap(values)
        self._last_keypoints = keypoints
        if self.option is not None and self.option.steps >= self.option_steps:
            self._close()
        if self.option is None:
            self.option = self._draw(keypoints)
        option = self.option
        option.steps += 1
        self.steps += 1
        if option.epsilon > 0 and self.rng.random() < option.epsilon:
            return int(self.rng.integers(self.network.num_env_actions))
        return int(np.argmax(values[option.keypoint, option.direction]))


class RepeatedActionPolicy:
    """The control for option exploration's commitment: a uniformly random action held for `steps` agent steps, then
    redrawn (and at each episode start). Random options of T steps may win over random actions only by committing to
    an action for T steps; this policy commits the same way without any keypoint."""

    def __init__(self, num_actions: int, steps: int, seed: int):
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}.")
        self.num_actions, self.steps = num_actions, steps
        self.rng = np.random.default_rng(seed)
        self._action, self._left = 0, 0

    def reset(self) -> None:
        self._left = 0

    def act(self, observation: Any) -> int:
        if self._left == 0:
            self._action, self._left = int(self.rng.integers(self.num_actions)), self.steps
        self._left -= 1
        return self._action
