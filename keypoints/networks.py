"""Convolutional keypoint networks: the keypoint detector shared by Transporter and PermaKey."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

NORMS = ("batch", "instance", "layer", "none")


def track_for_checkpoints(owner: keras.layers.Layer, layers: Sequence[keras.layers.Layer]) -> None:
    """Makes `layers`, kept by `owner` in a list, visible to tf.train.Checkpoint as well: Keras 3 tracks a list of
    layers for its own saving but TensorFlow's checkpoints do not see into it, so their variables were saved only when
    an optimizer listed them (never a BatchNorm's moving statistics) and restored only through a built optimizer.
    Private attributes, which Keras's weight files visit after the list, so their layout does not change."""
    for layer in layers:
        setattr(owner, f"_checkpointed_{layer.name}", layer)


def build_by_calling(model: keras.layers.Layer, *args: Any, **kwargs: Any) -> None:
    """Creates `model`'s variables by one eager call `model(*args, **kwargs)`.

    Keras builds a layer that has no `build` method of its own by first running its `call` on symbolic inputs, then
    calling it for real; in a container such as PermaKey (layers holding layers) each level repeats that trace for the
    levels below it. Here the containers are marked built first, so that the one eager call builds every inner Keras
    layer from its real input, in the same order: the same variables and initial values, about 3x faster (a tiny
    PermaKey, one thread: 0.85 s against 0.25 s)."""
    for layer in [model, *model._flatten_layers(include_self=False)]:  # Keras's own walk over nested layers
        if type(layer).build is keras.layers.Layer.build:  # keras.Model.build is the same method
            layer.built = True
    model(*args, **kwargs)


def _normalisation(norm: str, filters: int, name: str) -> keras.layers.Layer:
    """Every option has one scale and one offset per channel, so the stack stays translation equivariant."""
    if norm == "batch":
        return keras.layers.BatchNormalization(name=name)
    if norm == "instance":
        # One group per channel: statistics over (H, W) per sample and channel.
        return keras.layers.GroupNormalization(groups=filters, name=name)
    # Layer norm as Sonnet's (the official Transporter): statistics over (H, W, C) per sample, parameters per channel.
    # keras.layers.LayerNormalization(axis=[-3, -2, -1]) would learn a scale and offset per pixel ([H, W, C]), which
    # breaks translation equivariance and lets a network paint fixed maps (docs/method.md section 1.5).
    return keras.layers.GroupNormalization(groups=1, name=name)


def conv_stack(
    filters: Sequence[int],
    kernels: Sequence[int],
    strides: Sequence[int],
    norm: str,
    name: str,
) -> keras.Sequential:
    """A stack of Conv2D (same padding) + normalisation + ReLU blocks, one per entry of `filters`.

    Convolutions have no bias when followed by a normalisation (it would be cancelled by the centring).

    Args:
      filters, kernels, strides: per-layer output channels, square kernel sizes and strides; equal lengths.
      norm: "batch", "instance" (statistics over H, W per channel), "layer" (statistics over H, W and C, as
        Sonnet's LayerNorm) or "none"; the normalisations have one scale and offset per channel.
      name: name of the Sequential; its layers are named f"{name}_conv{i}", f"{name}_norm{i}", f"{name}_relu{i}".
    Returns:
      A keras.Sequential mapping [B, H, W, C] to [B, H / prod(strides), W / prod(strides), filters[-1]] (rounded up).
    """
    if norm not in NORMS:
        raise ValueError(f"Unknown norm {norm!r}; choose one of {NORMS}.")
    if not len(filters) == len(kernels) == len(strides):
        raise ValueError(
            f"filters, kernels and strides must have the same length, got {len(filters)}, {len(kernels)}, "
            f"{len(strides)}."
        )
    layers: list[keras.layers.Layer] = []
    for i, (channels, kernel, stride) in enumerate(zip(filters, kernels, strides, strict=True)):
        layers.append(
            keras.layers.Conv2D(
                int(channels),
                int(kernel),
                strides=int(stride),
                padding="same",
                use_bias=norm == "none",
                name=f"{name}_conv{i}",
            )
        )
        if norm != "none":
            layers.append(_normalisation(norm, int(channels), f"{name}_norm{i}"))
        layers.append(keras.layers.ReLU(name=f"{name}_relu{i}"))
    return keras.Sequential(layers, name=name)


def transposed_stack(
    filters: Sequence[int],
    kernels: Sequence[int],
    strides: Sequence[int],
    out_channels: int,
    norm: str,
    name: str,
) -> keras.Sequential:
    """The transpose of `conv_stack(filters, kernels, strides)`: maps its output back to `out_channels` channels at
    the stack's input size.

    Layers run in reverse order; each undoes a stride s with s-times bilinear upsampling followed by a convolution to
    the channel count that layer received (the previous layer's filters, or `out_channels` for the first layer, whose
    convolution is linear).
    """
    layers: list[keras.layers.Layer] = []
    channels_in = [out_channels, *filters[:-1]]
    for i in reversed(range(len(filters))):
        if strides[i] > 1:
            layers.append(keras.layers.UpSampling2D(strides[i], interpolation="bilinear"))
        if i == 0:
            layers.append(keras.layers.Conv2D(out_channels, kernels[i], padding="same"))
        else:
            layers.extend(conv_stack([channels_in[i]], [kernels[i]], [1], norm, name=f"{name}_{i}").layers)
    return keras.Sequential(layers, name=name)


@keras.saving.register_keras_serializable(package="keypoints")
class KeyNet(keras.layers.Layer):
    """Keypoint detector: a conv_stack followed by a linear 1x1 convolution to one map per keypoint.

    The same module is Transporter's KeyNet (Psi) and the backbone of PermaKey's PointNet; reduce its maps to
    coordinates with `keypoints.ops.maps_to_keypoints`.
    """

    def __init__(
        self,
        num_keypoints: int,
        filters: Sequence[int],
        kernels: Sequence[int],
        strides: Sequence[int],
        norm: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints must be >= 1, got {num_keypoints}.")
        self.num_keypoints = int(num_keypoints)
        self.filters = [int(f) for f in filters]
        self.kernels = [int(k) for k in kernels]
        self.strides = [int(s) for s in strides]
        self.norm = norm
        self.features = conv_stack(self.filters, self.kernels, self.strides, norm, name=f"{self.name}_features")
        self.head = keras.layers.Conv2D(self.num_keypoints, 1, name=f"{self.name}_maps")

    def build(self, input_shape: Any) -> None:
        self.features.build(input_shape)
        self.head.build(self.features.compute_output_shape(input_shape))
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return tuple(self.head.compute_output_shape(self.features.compute_output_shape(input_shape)))

    def call(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Keypoint maps of a batch of images.

        Args:
          images: [B, H, W, C] float images.
          training: batch-normalisation mode.
        Returns:
          [B, h, w, K] unnormalised maps (logits), h = H / prod(strides), w likewise (rounded up).
        """
        return self.head(self.features(images, training=training))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_keypoints=self.num_keypoints,
            filters=list(self.filters),
            kernels=list(self.kernels),
            strides=list(self.strides),
            norm=self.norm,
        )
        return config
