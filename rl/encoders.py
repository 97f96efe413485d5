"""Keypoint encoders: the agent's view of a frame through a frozen keypointer's outputs (keypoints/protocol.py).

- `CNNEncoder` (PermaKey paper, section 3 and Appendix A.2.3; docs/method.md section 4.2): the keypoints' Gaussian
  masks, superposed, select the keypointer's features; 4 Conv-norm-ReLU layers (kernel 3, strides [1, 1, 2, 1]),
  flatten, Dense 128 ReLU. The authors' code binarises the summed heatmaps at 0.2 (`binarise=0.2`); the paper multiplies
  by the soft masks (`binarise=None`, default). Paper: 128 filters; authors' code: 32.
- `GNNEncoder` (same sections): a node per keypoint = the mask-weighted average of the features under it with a
  learned positional embedding of (y, x) appended (MLP of 2 x 64, linear output); a fully connected graph with zero
  edge features; Encode-Process-Decode with an Interaction Network whose message passing really iterates `steps` times
  (the authors' loop never did); MLPs of 2 x 64 ReLU; decoded nodes concatenated -> 2-layer MLP 128 ReLU.
- `KeyQNEncoder` (Transporter paper, section 3.2.1): thermometer-encoded coordinates plus the Gaussian-weighted features
  under each keypoint, concatenated over keypoints -> 2-layer MLP 128 ReLU.

Each encoder splits in two. `view(coordinates, heatmaps, features)` is the part that depends only on the frozen
keypointer: it runs once per environment step and its result is what the replay stores (the CNN's masked feature
maps; the GNN's and KeyQN's per-keypoint coordinates and mask-averaged features). `call(view)` is the trainable part
and returns [B, 128]. Storing the view is the same maths as recomputing it at every update from the frames, without
rerunning the keypointer: a frozen keypointer is a pure function of the frame (keypoints/protocol.py). For the
ground-truth oracle (keypoints/oracle.py), which reads the emulator's RAM, the stored view is the only record of it.
Inputs: coordinates [B, K, 2], heatmaps [B, h, w, K], features [B, h, w, C].
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from keypoints.networks import conv_stack


def mlp(widths: Sequence[int], name: str, linear_output: bool = False) -> keras.Sequential:
    layers = [
        keras.layers.Dense(w, activation=None if linear_output and i == len(widths) - 1 else "relu")
        for i, w in enumerate(widths)
    ]
    return keras.Sequential(layers, name=name)


def keypoint_features(heatmaps: tf.Tensor, features: tf.Tensor) -> tf.Tensor:
    """Average of the features under each keypoint, weighted by its heatmap: [B, K, C]."""
    heatmaps = tf.cast(heatmaps, features.dtype)
    weighted = tf.einsum("bhwk,bhwc->bkc", heatmaps, features)
    mass = tf.reduce_sum(heatmaps, axis=[1, 2])[..., None]  # [B, K, 1]
    return weighted / (mass + 1e-6)


def keypoint_view(coordinates: tf.Tensor, heatmaps: tf.Tensor, features: tf.Tensor) -> dict[str, tf.Tensor]:
    """{"coordinates": [B, K, 2], "features": [B, K, C]}: what the GNN and KeyQN encoders see of a frame."""
    return {"coordinates": tf.cast(coordinates, tf.float32), "features": keypoint_features(heatmaps, features)}


CNN_NORM = "batch"
"""The CNN encoder's normalisation (the paper's Conv-BN-ReLU layers)."""
GNN_WIDTH = 64
"""Width of the interaction network's MLPs."""


class CNNEncoder(keras.layers.Layer):
    def __init__(self, filters: int, binarise: float | None, **kwargs):
        super().__init__(**kwargs)
        self.binarise = binarise
        self.convs = conv_stack([filters] * 4, [3] * 4, [1, 1, 2, 1], CNN_NORM, name=f"{self.name}_convs")
        self.flatten = keras.layers.Flatten()
        self.out = keras.layers.Dense(128, activation="relu")

    def mask(self, heatmaps: tf.Tensor) -> tf.Tensor:
        summed = tf.reduce_sum(heatmaps, axis=-1, keepdims=True)
        if self.binarise is not None:
            return tf.cast(summed > self.binarise, summed.dtype)
        return tf.minimum(summed, 1.0)

    def view(self, coordinates: tf.Tensor, heatmaps: tf.Tensor, features: tf.Tensor) -> dict[str, tf.Tensor]:
        """{"masked": [B, h, w, C]}: the features under the superposed keypoint masks."""
        return {"masked": features * tf.cast(self.mask(heatmaps), features.dtype)}

    def call(self, view: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        masked = tf.cast(view["masked"], self.compute_dtype)
        return self.out(self.flatten(self.convs(masked, training=training)))


class GNNEncoder(keras.layers.Layer):
    def __init__(self, steps: int, **kwargs):
        super().__init__(**kwargs)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}.")
        self.steps, self.width = steps, GNN_WIDTH
        width = self.width
        self.position: keras.Sequential | None = None
        self.node_encoder = mlp([width, width], "node_encoder")
        self.edge_encoder = mlp([width, width], "edge_encoder")
        self.edge_model = mlp([width, width], "edge_model")
        self.node_model = mlp([width, width], "node_model")
        self.node_decoder = mlp([width, width], "node_decoder")
        self.head = mlp([128, 128], "head")

    def view(self, coordinates: tf.Tensor, heatmaps: tf.Tensor, features: tf.Tensor) -> dict[str, tf.Tensor]:
        return keypoint_view(coordinates, heatmaps, features)

    def build(self, input_shape) -> None:
        # "keypoint features ... are appended with learned positional embedding" (PermaKey, section 3; Appendix A.2.3:
        # "a similar MLP [2 x 64] but having linear output units"): concatenated, so that the position keeps its own
        # 64 units however few feature channels the keypointer has (the oracle's 4).
        self.position = mlp([self.width, self.width], "position", linear_output=True)
        self.built = True

    def interaction(self, nodes: tf.Tensor, edges: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One Interaction Network step on a fully connected graph.

        nodes [B, K, D]; edges [B, K, K, D] (edge i <- j at [:, i, j]). Edge model on [e_ij, v_i, v_j]; each node sums
        its incoming edges (self-edges excluded) and the node model sees [v_i, sum_j e_ij].

        The edge model's first layer W [e_ij, v_i, v_j] + b is computed as W_e e_ij + (W_r v_i) + (W_s v_j) + b: the
        node terms once per node instead of once per edge (the same weights and values; K x fewer node products).
        """
        k, width = nodes.shape[1], nodes.shape[-1]
        first, *rest = self.edge_model.layers
        if not first.built:
            self.edge_model.build((None, None, None, edges.shape[-1] + 2 * width))
        kernel = tf.cast(first.kernel, nodes.dtype)
        split = edges.shape[-1]
        hidden = (
            tf.einsum("bijd,de->bije", edges, kernel[:split])
            + tf.einsum("bid,de->bie", nodes, kernel[split : split + width])[:, :, None, :]
            + tf.einsum("bjd,de->bje", nodes, kernel[split + width :])[:, None, :, :]
            + tf.cast(first.bias, nodes.dtype)
        )
        edges = first.activation(hidden)
        for layer in rest:
            edges = layer(edges)
        off_diagonal = 1.0 - tf.eye(k, dtype=edges.dtype)[None, :, :, None]
        incoming = tf.reduce_sum(edges * off_diagonal, axis=2)
        return self.node_model(tf.concat([nodes, incoming], axis=-1)), edges

    def call(self, view: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        assert self.position is not None
        features = tf.cast(view["features"], self.compute_dtype)
        nodes = tf.concat([features, self.position(tf.cast(view["coordinates"], features.dtype))], axis=-1)
        nodes = self.node_encoder(nodes)
        k = nodes.shape[1]
        # Zero edge features: the encoded edge is one vector, computed once and shared by every edge.
        edge = self.edge_encoder(tf.zeros((1, 1, 1, 1), nodes.dtype))
        edges = tf.broadcast_to(edge, (tf.shape(nodes)[0], k, k, edge.shape[-1]))
        for _ in range(self.steps):
            nodes, edges = self.interaction(nodes, edges)
        decoded = self.node_decoder(nodes)
        return self.head(tf.reshape(decoded, (-1, k * decoded.shape[-1])))


def thermometer(values: tf.Tensor, bins: int) -> tf.Tensor:
    """Thermometer code of values in [-1, 1]: [..., bins] with unit i equal to 1 when value > threshold i, the
    thresholds evenly spaced in (-1, 1)."""
    thresholds = tf.linspace(-1.0, 1.0, bins + 2)[1:-1]
    return tf.cast(values[..., None] > tf.cast(thresholds, values.dtype), values.dtype)


class KeyQNEncoder(keras.layers.Layer):
    def __init__(self, bins: int, **kwargs):
        super().__init__(**kwargs)
        self.bins = bins
        self.head = mlp([128, 128], "head")

    def view(self, coordinates: tf.Tensor, heatmaps: tf.Tensor, features: tf.Tensor) -> dict[str, tf.Tensor]:
        return keypoint_view(coordinates, heatmaps, features)

    def call(self, view: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        features = tf.cast(view["features"], self.compute_dtype)
        code = thermometer(tf.cast(view["coordinates"], features.dtype), self.bins)  # [B, K, 2, bins]
        k = features.shape[1]
        code = tf.reshape(code, (-1, k, 2 * self.bins))
        per_keypoint = tf.concat([code, features], axis=-1)
        return self.head(tf.reshape(per_keypoint, (-1, k * per_keypoint.shape[-1])))


ENCODERS = {"cnn": CNNEncoder, "gnn": GNNEncoder, "keyqn": KeyQNEncoder}
