"""The recurrent double-DQN agent's networks and learner step (seed 002, section 3 and Appendix A.2.3;
reference.md section 4).

`RecurrentQNetwork`: a keypoint encoder (rl/encoders.py) applied per time step, an LSTM with 128 units, and a linear
layer to one value per action. `Learner.train_step` is one tf.function: online and target values of a window, n-step
double-Q targets (rl/targets.py: the online network selects, the target network evaluates), squared TD error over
the valid steps, Adam with gradient-norm clipping, then a Polyak update of the target network. The target network is
hard-copied from the online one when the learner is made.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from rl.encoders import ENCODERS
from rl.targets import double_q_values, hard_copy, n_step_targets, polyak_update


class RecurrentQNetwork(keras.Model):
    """call((coordinates [B, T, K, 2], heatmaps [B, T, h, w, K], features [B, T, h, w, C])) -> Q [B, T, A]."""

    def __init__(self, num_actions: int, encoder: str, units: int = 128, **kwargs):
        super().__init__(**kwargs)
        if encoder not in ENCODERS:
            raise ValueError(f"Unknown encoder {encoder!r}; choose one of {sorted(ENCODERS)}.")
        self.encoder = ENCODERS[encoder]()
        self.lstm = keras.layers.LSTM(units, return_sequences=True)
        self.q = keras.layers.Dense(num_actions)

    def call(self, inputs, training: bool = False) -> tf.Tensor:
        coordinates, heatmaps, features = inputs
        b, t = tf.shape(coordinates)[0], tf.shape(coordinates)[1]

        def fold(x: tf.Tensor) -> tf.Tensor:  # [B, T, ...] -> [B * T, ...]
            return tf.reshape(x, tf.concat([[b * t], tf.shape(x)[2:]], 0))

        encoded = self.encoder((fold(coordinates), fold(heatmaps), fold(features)), training=training)
        encoded = tf.reshape(encoded, (b, t, encoded.shape[-1]))
        return self.q(self.lstm(encoded, training=training))


class Learner:
    def __init__(
        self,
        online: RecurrentQNetwork,
        target: RecurrentQNetwork,
        *,
        learning_rate: float = 2e-4,
        clip_norm: float = 10.0,
        gamma: float = 0.99,
        n: int = 3,
        tau: float = 0.005,
    ):
        self.online, self.target = online, target
        self.optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=clip_norm)
        self.gamma, self.n, self.tau = gamma, n, tau
        self.step = tf.function(self._step)
        self._copied = False

    def start(self, inputs) -> None:
        """Builds both networks on a batch and hard-copies online -> target (done once, before the first update)."""
        self.online(inputs)
        self.target(inputs)
        hard_copy(self.target.trainable_variables, self.online.trainable_variables)
        self._copied = True

    def _step(self, inputs, actions, rewards, terminated, truncated) -> dict[str, tf.Tensor]:
        """inputs: keypointer outputs of the W + 1 observations [B, W + 1, ...]; actions, rewards, terminated,
        truncated: [B, W]. Returns the loss and the mean Q of the taken actions."""
        with tf.GradientTape() as tape:
            q = self.online(inputs, training=True)  # [B, W + 1, A]
            taken = tf.gather(q[:, :-1], actions, axis=-1, batch_dims=2)  # [B, W]
            bootstrap = double_q_values(tf.stop_gradient(q), self.target(inputs))  # [B, W + 1]
            targets, valid = n_step_targets(rewards, terminated, truncated, bootstrap, self.n, self.gamma)
            mask = tf.cast(valid, tf.float32)
            loss = tf.reduce_sum(mask * tf.square(tf.stop_gradient(targets) - taken)) / tf.maximum(
                tf.reduce_sum(mask), 1.0
            )
        variables = self.online.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        polyak_update(self.target.trainable_variables, variables, self.tau)
        return {"loss": loss, "q": tf.reduce_mean(taken)}

    def train_step(self, inputs, actions, rewards, terminated, truncated) -> dict[str, tf.Tensor]:
        if not self._copied:
            raise RuntimeError("Call Learner.start(batch) first: the target network must begin as a copy.")
        return self.step(inputs, actions, rewards, terminated, truncated)


def epsilon_at(step: int, total: int, start: float = 1.0, end: float = 0.1) -> float:
    """The linear exploration schedule: start -> end over `total` agent steps, then end."""
    if total <= 0:
        return end
    return start + (end - start) * min(step / total, 1.0)
