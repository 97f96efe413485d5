"""Transporter (Transporter paper, section 3.1, Appendix A and D; docs/method.md section 2) and the Jakab et al.
(IMM) conditional-generation baseline.

Both models see a (source, target) pair of frames from one episode and regress the target:

- `transporter`: features Phi and keypoints Psi of both frames; the source features are "transported" keypoint by
  keypoint, equation (1): out <- (1 - H_s^k)(1 - H_t^k) out + H_t^k Phi(x_t), suppressing the features around both
  frames' k-th keypoint and pasting the target's features around the target's. RefineNet decodes the result to
  x_t. As in the official model, the whole source branch (Phi(x_s), Psi(x_s)) is under stop_gradient.
- `transport="pixels"` (Appendix D): the same equation on the images themselves at full resolution, with heatmaps
  drawn on the image grid, and a stride-1 refine CNN from the transported image to x_t.
- `imm` (Jakab et al. 2018, the paper's baseline 1): no transport; the decoder regresses x_t from Phi(x_s)
  concatenated with the target's stacked keypoint heatmaps. Both branches train (no stop_gradient), as in the
  original model.

Loss: pixel-wise squared L2 on x_t (mean over pixels and batch). Frames enter as the protocol's 84x84 RGB in [0, 1]
and are resized to the architecture's `input_size` (128 for the paper's network) inside the model, so keypoint
coordinates in [-1, 1] mean the same for every architecture.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras
import tensorflow as tf

from keypoints.networks import NORMS, KeyNet, build_by_calling, conv_stack, transposed_stack
from keypoints.ops import keypoints_to_maps, maps_to_keypoints

MODELS = ("transporter", "imm")
TRANSPORTS = ("features", "pixels")

ARCHITECTURES: dict[str, dict[str, Any]] = {
    # Transporter paper, Appendix A: six Conv-BN-ReLU layers, 7x7 first, filters doubling every two layers,
    # 128x128 -> 32x32.
    "paper": {
        "input_size": 128,
        "filters": [32, 32, 64, 64, 128, 128],
        "kernels": [7, 3, 3, 3, 3, 3],
        "strides": [1, 1, 2, 1, 2, 1],
    },
    # PermaKey's re-implementation (PermaKey paper, Appendix A.2.2): 84x84 -> 42x42x32.
    "pkey_reimpl": {"input_size": 84, "filters": [16, 16, 32, 32], "kernels": [3, 3, 3, 3], "strides": [1, 1, 2, 1]},
}


def architecture_spec(name: str) -> dict[str, Any]:
    """A named architecture's input size, filters, kernels and strides (ARCHITECTURES)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[name]


@dataclasses.dataclass(frozen=True)
class TransporterConfig:
    model: str
    """"transporter" or "imm"."""
    num_keypoints: int
    image_shape: tuple[int, int, int]
    """What the model is fed (the keypointer protocol's 84x84x3)."""
    input_size: int
    """Frames are resized (bilinear) to input_size x input_size before Phi and Psi: 128 in the paper."""
    filters: tuple[int, ...]
    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    norm: str
    sigma: float
    transport: str
    """"features" (the paper) or "pixels" (Appendix D); transporter only."""

    def __post_init__(self) -> None:
        if self.num_keypoints < 1:
            raise ValueError(f"num_keypoints (K) must be >= 1, got {self.num_keypoints}.")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}.")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, got {self.transport!r}.")
        if self.model == "imm" and self.transport != "features":
            raise ValueError("transport='pixels' applies to model='transporter' only.")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}.")
        if not len(self.filters) == len(self.kernels) == len(self.strides):
            raise ValueError("filters, kernels and strides need equal length.")
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}.")
        if self.input_size % math.prod(self.strides):
            raise ValueError(
                f"input_size {self.input_size} is not divisible by the total stride {math.prod(self.strides)}."
            )

    @property
    def grid(self) -> int:
        """Side of the feature and keypoint maps."""
        return self.input_size // math.prod(self.strides)


def paper_config(model: str, num_keypoints: int, architecture: str = "paper") -> TransporterConfig:
    """Transporter (or the IMM baseline, `model="imm"`) as the Transporter paper gives it (Appendix A: batch norm,
    sigma 0.1, feature transport) on a named architecture (the paper's 128x128 or PermaKey's 84x84 re-implementation):
    the one place these values are written."""
    spec = architecture_spec(architecture)
    return TransporterConfig(
        model=model,
        num_keypoints=num_keypoints,
        image_shape=(84, 84, 3),
        input_size=spec["input_size"],
        filters=tuple(spec["filters"]),
        kernels=tuple(spec["kernels"]),
        strides=tuple(spec["strides"]),
        norm="batch",
        sigma=0.1,
        transport="features",
    )


def transport(
    source_features: tf.Tensor, target_features: tf.Tensor, source_maps: tf.Tensor, target_maps: tf.Tensor
) -> tf.Tensor:
    """Equation (1), applied one keypoint at a time, in closed form.

    Args:
      source_features, target_features: [B, h, w, C].
      source_maps, target_maps: [B, h, w, K] Gaussian heatmaps (peak 1) of the two frames' keypoints.
    Returns:
      [B, h, w, C]: for each k in order, out = (1 - Hs_k)(1 - Ht_k) out + Ht_k target_features, starting from the
      source features.

    The paper's sequential form unrolls to out = (prod_k a_k) source + (sum_k Ht_k prod_{j>k} a_j) target with
    a_k = (1 - Hs_k)(1 - Ht_k): two per-pixel weights computed from the K heatmaps (in float32), then one pass over
    the C feature channels instead of K (the loop cost K passes over [B, h, w, C]).
    """
    suppress = (1.0 - source_maps) * (1.0 - target_maps)  # a_k, [B, h, w, K]
    later = tf.math.cumprod(suppress, axis=-1, exclusive=True, reverse=True)  # prod_{j>k} a_j
    keep = tf.reduce_prod(suppress, axis=-1, keepdims=True)
    paste = tf.reduce_sum(target_maps * later, axis=-1, keepdims=True)
    dtype = source_features.dtype  # heatmaps are float32; features may be bfloat16
    return tf.cast(keep, dtype) * source_features + tf.cast(paste, dtype) * target_features


class Transporter(keras.Model):
    """call((source, target) frames [B, 84, 84, 3] in [0, 1]) -> dict with `reconstruction` [B, 84, 84, 3],
    `source_keypoints`/`target_keypoints` [B, K, 2], `source_heatmaps`/`target_heatmaps` [B, h, w, K] and
    `transported` (the decoder's input: transported features, transported image, or IMM's concatenation).

    Train with `compile(optimizer=...)` and `fit(pairs_dataset)`.
    """

    def __init__(self, config: TransporterConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = c = config
        self.keynet = KeyNet(c.num_keypoints, c.filters, c.kernels, c.strides, c.norm, name="keynet")
        if c.transport == "pixels":
            self.features = None
            ones = [1] * len(c.filters)
            self.refine = transposed_stack(c.filters, c.kernels, ones, c.image_shape[-1], c.norm, name="refine")
        else:
            self.features = conv_stack(c.filters, c.kernels, c.strides, c.norm, name="features")
            self.refine = transposed_stack(c.filters, c.kernels, c.strides, c.image_shape[-1], c.norm, name="refine")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker]

    def check_pair(self, pair: tuple[tf.Tensor, tf.Tensor] | list[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValueError(
                "Transporter takes a (source, target) pair of frame batches; got a single tensor. Read frames with "
                "data.readers.pairs_dataset."
            )
        source, target = pair
        want = tuple(self.config.image_shape)
        for name, frames in (("source", source), ("target", target)):
            if tuple(frames.shape[1:]) != want:
                raise ValueError(f"{name} frames must be [B, {', '.join(map(str, want))}], got {list(frames.shape)}.")
        if source.shape[0] is not None and target.shape[0] is not None and source.shape[0] != target.shape[0]:
            raise ValueError(f"source and target batches differ in size: {source.shape[0]} vs {target.shape[0]}.")
        return source, target

    def resize(self, frames: tf.Tensor) -> tf.Tensor:
        size = self.config.input_size
        if frames.shape[1] == size and frames.shape[2] == size:
            return frames
        return tf.image.resize(frames, (size, size), method="bilinear")

    def keypoints(self, frames: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """Coordinates [B, K, 2] and their Gaussian heatmaps [B, h, w, K] of resized frames."""
        maps = self.keynet(frames, training=training)
        coordinates = maps_to_keypoints(maps)
        return coordinates, keypoints_to_maps(coordinates, maps.shape[1], maps.shape[2], self.config.sigma)

    def infer(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Inference on single frames [B, 84, 84, 3] in [0, 1]: keypoints [B, K, 2] (y, x) in [-1, 1], their heatmaps
        [B, h, w, K] and the features [B, h, w, C] (pixel transport has no feature net: the resized image itself,
        pooled onto the keypoint grid)."""
        images = self.resize(frames)
        coordinates, heatmaps = self.keypoints(images, training=False)
        if self.features is not None:
            return coordinates, heatmaps, self.features(images, training=False)
        grid = self.config.grid
        return coordinates, heatmaps, tf.image.resize(images, (grid, grid), method="area")

    def call(self, pair: tuple[tf.Tensor, tf.Tensor], training: bool = False) -> dict:
        source, target = self.check_pair(pair)
        source, target = self.resize(source), self.resize(target)
        c = self.config
        target_keypoints, target_maps = self.keypoints(target, training)
        source_keypoints, source_maps = self.keypoints(source, training)  # IMM only shows them; the decoder ignores
        if c.model == "imm":
            assert self.features is not None
            features = self.features(source, training=training)
            decoder_input = tf.concat([features, tf.cast(target_maps, features.dtype)], axis=-1)
        else:
            source_keypoints, source_maps = tf.stop_gradient(source_keypoints), tf.stop_gradient(source_maps)
            if self.features is None:  # pixel transport, heatmaps on the image grid
                size = c.input_size
                decoder_input = transport(
                    tf.cast(source, self.compute_dtype),
                    tf.cast(target, self.compute_dtype),
                    keypoints_to_maps(source_keypoints, size, size, c.sigma),
                    keypoints_to_maps(target_keypoints, size, size, c.sigma),
                )
            else:
                source_features = tf.stop_gradient(self.features(source, training=training))
                target_features = self.features(target, training=training)
                decoder_input = transport(source_features, target_features, source_maps, target_maps)
        reconstruction = self.refine(decoder_input, training=training)
        if reconstruction.shape[1] != c.image_shape[0]:
            reconstruction = tf.image.resize(reconstruction, c.image_shape[:2], method="bilinear")
        return {
            "reconstruction": tf.cast(reconstruction, tf.float32),
            "source_keypoints": source_keypoints,
            "target_keypoints": target_keypoints,
            "source_heatmaps": source_maps,
            "target_heatmaps": target_maps,
            "transported": decoder_input,
        }

    def train_step(self, pair: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            out = self(pair, training=True)
            loss = reconstruction_loss(out["reconstruction"], pair[1])
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, pair: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        out = self(pair, training=False)
        self.loss_tracker.update_state(reconstruction_loss(out["reconstruction"], pair[1]))
        return {"loss": self.loss_tracker.result()}


def reconstruction_loss(reconstruction: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Pixel-wise squared L2 on the target frame, averaged over pixels, channels and batch (float32 scalar)."""
    return tf.reduce_mean(tf.square(tf.cast(reconstruction, tf.float32) - tf.cast(target, tf.float32)))


def build_transporter(config: TransporterConfig) -> Transporter:
    """A Transporter with its variables created (by one call on zeros, keypoints.networks.build_by_calling)."""
    model = Transporter(config)
    zeros = tf.zeros((1, *config.image_shape))
    build_by_calling(model, (zeros, zeros), training=False)
    return model
