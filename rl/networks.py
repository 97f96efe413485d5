"""The recurrent Q-network of the keypoint agent (PermaKey paper, section 3 and Appendix A.2.3; docs/method.md
section 4).

`RecurrentQNetwork`: a keypoint encoder (rl/encoders.py) applied per time step, an LSTM, and a linear layer to one
value per action.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from rl.encoders import ENCODERS


class RecurrentQNetwork(keras.Model):
    """The encoder's view of each step -> Q values, through an LSTM.

    call(view {name: [B, T, ...]}) -> Q [B, T, A], from a zero LSTM state (how windows are trained);
    call(view, initial_state=[h, c], return_state=True) -> (Q, [h, c]) (how the actor carries its memory).
    `view(coordinates, heatmaps, features)` is the encoder's frozen part (rl/encoders.py).
    """

    def __init__(self, num_actions: int, encoder: str, units: int, encoder_options: dict[str, Any], **kwargs):
        super().__init__(**kwargs)
        if encoder not in ENCODERS:
            raise ValueError(f"Unknown encoder {encoder!r}; choose one of {sorted(ENCODERS)}.")
        self.num_actions, self.units = num_actions, units
        self.encoder = ENCODERS[encoder](**encoder_options)
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
