"""PointNet: keypoints from stacked error maps (PermaKey paper, section 2 "Extracting Keypoints from Error Maps",
equation 3, Appendix A.2.1; docs/method.md section 3.6).

A KeyNet (the VAE encoder's architecture plus a 1x1 regressor to K maps) turns the stacked error maps into K keypoints
(softmax over marginals). K fixed-width Gaussian windows (sigma; 0.1 in the paper) at the keypoints are summed,
resized (nearest) to the error maps' resolution and compared directly with every error-map channel (MSE, equation 3;
the authors' ul_loss.py: `mean((heatmaps_sum - stacked_error_mask)^2)`). There is no decoder: the Gaussians are the
bottleneck, so the only way to lower the loss is to move the keypoints onto the regions that carry the error.

Off the paper, `coordinates=True` appends two channels holding each pixel's (y, x) in [-1, 1] to PointNet's input
(CoordConv, Liu et al. 2018). Error maps carry no colour, so Pong's two paddles look alike to a translation-equivariant
KeyNet and a keypoint drawn to "a paddle" is split between both; the coordinates let it tell left from right
(docs/permakey_quick.md measures it). The quick preset uses it; the paper preset does not.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from keypoints.networks import KeyNet
from keypoints.ops import keypoints_to_maps, maps_to_keypoints


def summed_windows(heatmaps: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """The K Gaussian windows [B, h, w, K] summed and resized (nearest) to `size`: [B, H, W, 1] float32, what the
    loss compares with the error maps. Grid cell g covers frame pixels [g H/h, (g + 1) H/h), so its window is drawn
    centred at frame pixel (g + 0.5) H/h - 0.5 (permakey.keypointer.PermaKeyKeypointer.geometry)."""
    summed = tf.reduce_sum(tf.cast(heatmaps, tf.float32), axis=-1, keepdims=True)
    return tf.image.resize(summed, size, method="nearest")


def with_coordinates(images: tf.Tensor) -> tf.Tensor:
    """[B, H, W, C] -> [B, H, W, C + 2]: the images, then each pixel's y and x on linspace(-1, 1) (the keypoints'
    convention, keypoints/ops.py), in the images' dtype."""
    shape = tf.shape(images)
    height, width = images.shape[1], images.shape[2]
    y, x = tf.meshgrid(tf.linspace(-1.0, 1.0, height), tf.linspace(-1.0, 1.0, width), indexing="ij")
    grid = tf.cast(tf.stack([y, x], axis=-1), images.dtype)[None]
    return tf.concat([images, tf.tile(grid, [shape[0], 1, 1, 1])], axis=-1)


class PointNet(keras.layers.Layer):
    """call(error_maps [B, H, W, M] in [0, 1]) -> dict of keypoints [B, K, 2] (y, x) in [-1, 1] and heatmaps
    [B, h, w, K] (Gaussians at the keypoints on the KeyNet's grid, peak 1, float32)."""

    def __init__(
        self,
        num_keypoints: int,
        filters: Sequence[int],
        kernels: Sequence[int],
        strides: Sequence[int],
        sigma: float,
        norm: str,
        coordinates: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.keynet = KeyNet(num_keypoints, filters, kernels, strides, norm, name="keynet")
        self.sigma = sigma
        self.coordinates = coordinates

    def keypoint_maps(self, error_maps: tf.Tensor, training: bool = False) -> tf.Tensor:
        """The KeyNet's keypoint maps (logits) [B, h, w, K] of error maps [B, H, W, M]; with `coordinates`, the KeyNet
        sees M + 2 channels (the error maps, then each pixel's y and x in [-1, 1])."""
        inputs = tf.stop_gradient(error_maps)
        if self.coordinates:
            inputs = with_coordinates(inputs)
        return self.keynet(inputs, training=training)

    def call(self, error_maps: tf.Tensor, training: bool = False) -> dict:
        maps = self.keypoint_maps(error_maps, training=training)  # [B, h, w, K]
        keypoints = maps_to_keypoints(maps)
        heatmaps = keypoints_to_maps(keypoints, maps.shape[1], maps.shape[2], self.sigma)
        return {"keypoints": keypoints, "heatmaps": heatmaps}


def window_loss(heatmaps: tf.Tensor, error_maps: tf.Tensor) -> tf.Tensor:
    """Equation 3: mean squared error between the summed Gaussian windows (at the error maps' resolution) and every
    error-map channel, over maps, pixels and batch. Returns a float32 scalar."""
    error_maps = tf.stop_gradient(tf.cast(error_maps, tf.float32))
    windows = summed_windows(heatmaps, (error_maps.shape[1], error_maps.shape[2]))  # [B, H, W, 1]
    return tf.reduce_mean(tf.square(windows - error_maps))


def shuffled_window_loss(heatmaps: tf.Tensor, error_maps: tf.Tensor) -> tf.Tensor:
    """Equation 3's loss with each frame's windows compared with the next frame's error maps (the batch rolled by
    one): what keypoints that ignore their frame would score. A PointNet whose loss is not below this has not learned
    where each frame's errors are. Float32 scalar (a health check, not a training loss)."""
    return window_loss(tf.roll(heatmaps, 1, axis=0), error_maps)
