"""Local spatial prediction networks and their error maps (Gopalakrishnan et al., ICLR 2021, section 2 "Local Spatial
Prediction Task", equation 2, Appendix A.2.1).

An encoder activation map [B, H, W, C] is cut into non-overlapping p x p cells ([B, H/p, W/p, p*p*C]). Each cell is
predicted from its 8 first-order neighbouring cells (zeros beyond the border) by an MLP with linear output:
8p^2C -> 512 -> 256 -> p^2C (the paper's "3-layer MLP"; `extra_hidden_layer` adds the authors' code's first hidden
layer of width 8p^2C, which triples the cost; `norm="batch"` puts the authors' code's BatchNorm between every hidden
Dense and its ReLU, on which the paper is silent). The per-cell error, normalised by the target's mean activation, is
the predictability ("error") map: high where the features are hard to predict from their context, i.e. on objects.
"""

from __future__ import annotations

import keras
import tensorflow as tf

NEIGHBOUR_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
"""(row, column) offsets of the 8 neighbours, in the order they are concatenated: row-major, centre skipped."""

ERROR_METRICS = ("rmse", "mse")
ERROR_NORMALISATIONS = ("activation", "image", "none")
LSPN_NORMS = ("none", "batch")


def to_cells(features: tf.Tensor, patch: int) -> tf.Tensor:
    """[B, H, W, C] -> [B, H/p, W/p, p*p*C] non-overlapping p x p cells (H and W must be multiples of p)."""
    return tf.nn.space_to_depth(features, patch)


def neighbours(cells: tf.Tensor) -> tf.Tensor:
    """The 8 neighbouring cells of every cell, concatenated in NEIGHBOUR_OFFSETS order, zeros beyond the border.

    Args:
      cells: [B, h, w, D].
    Returns:
      [B, h, w, 8 * D]; entry [b, i, j, n*D:(n+1)*D] is cells[b, i + dy_n, j + dx_n] or zeros.
    """
    h, w = tf.shape(cells)[1], tf.shape(cells)[2]
    padded = tf.pad(cells, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return tf.concat([padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in NEIGHBOUR_OFFSETS], axis=-1)


class LSPN(keras.layers.Layer):
    """One local spatial prediction network for one encoder layer.

    call(features [B, H, W, C], training) -> (prediction, target), both [B, H/p, W/p, p*p*C], float32; the target is
    the features' cells with gradients stopped (the LSPN never trains the encoder). `norm` (LSPN_NORMS): "none", hidden
    layers Dense-ReLU; "batch", Dense-BatchNorm-ReLU as the authors' code (ul_loss.py LspMlp), its statistics over
    every cell of the batch.
    """

    def __init__(
        self,
        channels: int,
        patch: int,
        hidden: tuple[int, ...],
        extra_hidden_layer: bool,
        norm: str = "none",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.patch = patch
        cell = patch * patch * channels
        widths = ((8 * cell,) if extra_hidden_layer else ()) + tuple(hidden)
        self.mlp = keras.Sequential(hidden_layers(widths, norm) + [keras.layers.Dense(cell)], name="mlp")

    def call(self, features: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        cells = to_cells(tf.stop_gradient(features), self.patch)
        prediction = tf.cast(self.mlp(neighbours(cells), training=training), tf.float32)
        return prediction, tf.cast(cells, tf.float32)


def hidden_layers(widths: tuple[int, ...], norm: str) -> list[keras.layers.Layer]:
    """The MLP's hidden layers: per width Dense(ReLU) for norm "none" (the layers LSPNs had before the option, so
    saved weights load), Dense, BatchNorm, ReLU for "batch"."""
    if norm == "none":
        return [keras.layers.Dense(width, activation="relu") for width in widths]
    layers: list[keras.layers.Layer] = []
    for width in widths:
        layers += [keras.layers.Dense(width), keras.layers.BatchNormalization(), keras.layers.ReLU()]
    return layers


def prediction_loss(prediction: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Equation 2: mean squared error over cells, batch and features. Returns a float32 scalar."""
    return tf.reduce_mean(tf.square(prediction - target))


def live_cells(target: tf.Tensor) -> tf.Tensor:
    """[B, h, w] bool: cells whose 3x3 neighbourhood (the cell and its 8 neighbours, zeros beyond the border) holds a
    non-zero activation. Elsewhere (a black HUD band or border after the ReLU) the LSPN's input and target are all
    zero: there is nothing to predict, and its constant output (biases) is no error of the scene. tools.error_mass
    measures the error mass such cells get."""
    active = tf.cast(tf.reduce_max(tf.abs(target), axis=-1, keepdims=True) > 0, tf.float32)
    return tf.nn.max_pool2d(active, 3, 1, "SAME")[..., 0] > 0


def error_map(
    prediction: tf.Tensor,
    target: tf.Tensor,
    metric: str,
    normalisation: str = "activation",
) -> tf.Tensor:
    """Per-cell prediction error [B, h, w], made relative to the target's activation scale.

    metric "mse" (the authors' final code, "lsp rmse fix") or "rmse" (their code at the paper's time); the paper names
    neither. normalisation:
    - "activation" (the authors' code; the paper does not state it): error / (the cell's mean target activation +
      1e-3). Where a region's activations are near zero tiny errors become the largest: with RMSE a dead cell's
      constant prediction c scores |c| / 1e-3, about 1 for c ~ 1e-3; with MSE c^2 / 1e-3.
    - "image": error / (the cell's mean target activation + the image's mean activation on this layer). The same
      relative error where activations are typical, bounded where they vanish.
    - "none": the raw error.
    """
    mse = tf.reduce_mean(tf.square(prediction - target), axis=-1)
    error = tf.sqrt(mse + 1e-12) if metric == "rmse" else mse
    if normalisation != "none":
        activation = tf.reduce_mean(target, axis=-1)
        if normalisation == "image":
            error = error / (activation + tf.reduce_mean(activation, axis=[1, 2], keepdims=True) + 1e-6)
        else:
            error = error / (activation + 1e-3)
    return error


def stack_error_maps(maps: list[tf.Tensor], size: tuple[int, int]) -> tf.Tensor:
    """Resizes each [B, h_l, w_l] map to `size` (nearest), min-max normalises per image and map, stacks: [B, H, W, M]
    with values in [0, 1]; gradients are stopped (the maps are PointNet's fixed targets)."""
    resized = []
    for m in maps:
        m = tf.image.resize(tf.stop_gradient(m)[..., None], size, method="nearest")[..., 0]
        low = tf.reduce_min(m, axis=[1, 2], keepdims=True)
        high = tf.reduce_max(m, axis=[1, 2], keepdims=True)
        resized.append((m - low) / tf.maximum(high - low, 1e-8))
    return tf.stack(resized, axis=-1)
