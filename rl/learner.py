"""The recurrent double-DQN learner (PermaKey paper, section 3 and Appendix A.2.3; docs/method.md section 4).

`Learner.train_step` is one tf.function: online and target values of a window, n-step double-Q targets
(rl/targets.py: the online network selects, the target network evaluates), squared TD error over the valid steps,
Adam with gradient-norm clipping, then a Polyak update of the target network. The target network is hard-copied from
the online one when the learner is started. Copy and update cover every weight, BatchNorm's moving statistics
included: the target evaluates in inference mode, and with trainable weights only (as the authors' code) a CNN
encoder's target normalised with its initial statistics (mean 0, variance 1) for the whole run.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from rl.networks import RecurrentQNetwork
from rl.targets import double_q_values, hard_copy, n_step_targets, polyak_update

PAPER_LEARNER: dict[str, Any] = {"learning_rate": 2e-4, "clip_norm": 10.0, "gamma": 0.99, "n": 3, "tau": 0.005}
"""The PermaKey paper's learner (section 5: 3-step targets; Appendix A.2.3: Adam 2e-4, clip 10, Polyak 0.005; gamma
0.99 is DQN's usual, the appendices do not state it): written once, for the experiments, bench/ and the tests."""


class Learner:
    """One update of the online network on a batch of windows (`train_step`, one tf.function): Adam with a global
    gradient-norm clip at `clip_norm`, n-step (`n`) double-Q targets with discount `gamma`, then a Polyak update of the
    target network by `tau`."""

    def __init__(
        self,
        online: RecurrentQNetwork,
        target: RecurrentQNetwork,
        *,
        learning_rate: float,
        clip_norm: float,
        gamma: float,
        n: int,
        tau: float,
        jit_compile: bool = True,
    ):
        self.online, self.target = online, target
        self.optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=clip_norm)
        self.gamma, self.n, self.tau = gamma, n, tau
        # XLA compiles the whole update (many small ops): 1.3x faster on the 2-core CPU (bench/bench_agent.py).
        self.step = tf.function(self._step, jit_compile=jit_compile)
        self._copied = False

    def start(self, views) -> None:
        """Builds both networks on a batch of views and hard-copies online -> target (once, before the first update)."""
        self.online(views)
        self.target(views)
        hard_copy(self.target.weights, self.online.weights)  # BatchNorm's moving statistics too (CNN encoder)
        self.optimizer.build(self.online.trainable_variables)  # its slots exist before a checkpoint is restored
        self._copied = True

    def _step(self, views, actions, rewards, terminated, truncated) -> dict[str, tf.Tensor]:
        """views: the encoder views of the W + 1 observations {name: [B, W + 1, ...]}; actions, rewards, terminated,
        truncated: [B, W]. Returns the loss and the mean Q of the taken actions."""
        with tf.GradientTape() as tape:
            q = self.online(views, training=True)  # [B, W + 1, A]
            taken = tf.gather(q[:, :-1], actions, axis=-1, batch_dims=2)  # [B, W]
            bootstrap = double_q_values(tf.stop_gradient(q), self.target(views))  # [B, W + 1]
            targets, valid = n_step_targets(rewards, terminated, truncated, bootstrap, self.n, self.gamma)
            mask = tf.cast(valid, tf.float32)
            loss = tf.reduce_sum(mask * tf.square(tf.stop_gradient(targets) - taken)) / tf.maximum(
                tf.reduce_sum(mask), 1.0
            )
        variables = self.online.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        polyak_update(self.target.weights, self.online.weights, self.tau)  # trainable and moving statistics
        return {"loss": loss, "q": tf.reduce_mean(taken)}

    def train_step(self, views, actions, rewards, terminated, truncated) -> dict[str, tf.Tensor]:
        if not self._copied:
            raise RuntimeError("Call Learner.start(batch) first: the target network must begin as a copy.")
        return self.step(views, actions, rewards, terminated, truncated)
