"""PointNet: keypoints from stacked error maps (seed 002, section 2 "Extracting Keypoints from Error Maps", equation
3, Appendix A.2.1).

A KeyNet (the VAE encoder's architecture plus a 1x1 regressor to K maps) turns the stacked error maps into K keypoints
(softmax over marginals); K fixed-width Gaussian windows (sigma 0.1) at the keypoints, summed, are decoded by the
encoder's transpose back to the M error maps. The reconstruction error (MSE) trains both; the bottleneck forces the
keypoints onto the regions that explain most of the error.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from keypoints.networks import KeyNet
from keypoints.ops import keypoints_to_maps, maps_to_keypoints
from permakey.vae import transposed_stack


class PointNet(keras.layers.Layer):
    """call(error_maps [B, H, W, M] in [0, 1]) -> dict of keypoints [B, K, 2] (y, x) in [-1, 1], heatmaps
    [B, h, w, K] (Gaussians at the keypoints, peak 1) and reconstruction [B, H, W, M] (float32)."""

    def __init__(
        self,
        num_keypoints: int,
        num_maps: int,
        filters: Sequence[int],
        kernels: Sequence[int],
        strides: Sequence[int],
        sigma: float,
        norm: str,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.keynet = KeyNet(num_keypoints, filters, kernels, strides, norm, name="keynet")
        self.decoder = transposed_stack(filters, kernels, strides, num_maps, norm, name="decoder")
        self.sigma = sigma

    def call(self, error_maps: tf.Tensor, training: bool = False) -> dict:
        maps = self.keynet(tf.stop_gradient(error_maps), training=training)  # [B, h, w, K]
        keypoints = maps_to_keypoints(maps)
        heatmaps = keypoints_to_maps(keypoints, maps.shape[1], maps.shape[2], self.sigma)
        summed = tf.reduce_sum(heatmaps, axis=-1, keepdims=True)
        reconstruction = tf.cast(self.decoder(tf.cast(summed, self.compute_dtype), training=training), tf.float32)
        return {"keypoints": keypoints, "heatmaps": heatmaps, "reconstruction": reconstruction}


def reconstruction_loss(reconstruction: tf.Tensor, error_maps: tf.Tensor) -> tf.Tensor:
    """Equation 3: mean squared error over maps, pixels and batch. Returns a float32 scalar."""
    return tf.reduce_mean(tf.square(reconstruction - tf.stop_gradient(tf.cast(error_maps, tf.float32))))
