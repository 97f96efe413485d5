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
    """The encoder's view of each step -> Q values, through an LSTM.

    call(view {name: [B, T, ...]}) -> Q [B, T, A], from a zero LSTM state (how windows are trained);
    call(view, initial_state=[h, c], return_state=True) -> (Q, [h, c]) (how the actor carries its memory).
    `view(coordinates, heatmaps, features)` is the encoder's frozen part (rl/encoders.py).
    """

    def __init__(self, num_actions: int, encoder: str, units: int = 128, encoder_options: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if encoder not in ENCODERS:
            raise ValueError(f"Unknown encoder {encoder!r}; choose one of {sorted(ENCODERS)}.")
        self.num_actions, self.units = num_actions, units
        self.encoder = ENCODERS[encoder](**(encoder_options or {}))
        # Unrolled: windows are short (W + 1 = 9 steps) and the actor feeds one step; 1.3x faster updates on this CPU.
        self.lstm = keras.layers.LSTM(units, return_sequences=True, return_state=True, unroll=True)
        self.q = keras.layers.Dense(num_actions)

    def view(self, coordinates: tf.Tensor, heatmaps: tf.Tensor, features: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.encoder.view(coordinates, heatmaps, features)

    def initial_state(self, batch_size: int = 1) -> list[tf.Tensor]:
        return [tf.zeros((batch_size, self.units)), tf.zeros((batch_size, self.units))]

    def call(self, view, initial_state=None, return_state: bool = False, training: bool = False):
        first = next(iter(view.values()))
        b, t = tf.shape(first)[0], tf.shape(first)[1]

        def fold(x: tf.Tensor) -> tf.Tensor:  # [B, T, ...] -> [B * T, ...]
            return tf.reshape(x, tf.concat([[b * t], tf.shape(x)[2:]], 0))

        encoded = self.encoder({k: fold(v) for k, v in view.items()}, training=training)
        encoded = tf.reshape(encoded, (b, t, encoded.shape[-1]))
        sequence, h, c = self.lstm(encoded, initial_state=initial_state, training=training)
        q = self.q(sequence)
        return (q, [h, c]) if return_state else q


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
        hard_copy(self.target.trainable_variables, self.online.trainable_variables)
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
        polyak_update(self.target.trainable_variables, variables, self.tau)
        return {"loss": loss, "q": tf.reduce_mean(taken)}

    def train_step(self, views, actions, rewards, terminated, truncated) -> dict[str, tf.Tensor]:
        if not self._copied:
            raise RuntimeError("Call Learner.start(batch) first: the target network must begin as a copy.")
        return self.step(views, actions, rewards, terminated, truncated)


def epsilon_at(step: int, total: int, start: float = 1.0, end: float = 0.1) -> float:
    """The linear exploration schedule: start -> end over `total` agent steps, then end."""
    if total <= 0:
        return end
    return start + (end - start) * min(step / total, 1.0)
