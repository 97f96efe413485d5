"""Keypoint bottleneck operations (Jakab et al. 2018) and coordinate conversions.

Conventions used throughout the project:

- Keypoints are [..., 2] pairs (y, x) in [-1, 1], y down, x to the right. The value -1 is the centre of the first
  row (column) of the map and +1 the centre of the last: the grid of an h-row map is linspace(-1, 1, h).
- Pixel positions on an image are continuous (row, col) with the pixel-centre convention: pixel i covers
  [i - 0.5, i + 0.5] and has its centre at i.
- Native Atari positions are (x, y) with the pixel-edge convention of the ground-truth boxes: native pixel j covers
  [j, j + 1], so a box (x, y, w, h) has its centre at (x + w / 2, y + h / 2).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

FRAME_SHAPE = (84, 84)
"""(rows, cols) of the frames the keypointers see."""
NATIVE_SHAPE = (210, 160)
"""(rows, cols) of the native Atari screen."""


def _marginal_expectation(marginal: tf.Tensor) -> tf.Tensor:
    """Softmax over axis 1 of [B, N, K] logits, then the expectation of linspace(-1, 1, N): returns [B, K]."""
    size = tf.shape(marginal)[1]
    grid = tf.linspace(tf.constant(-1.0, tf.float32), tf.constant(1.0, tf.float32), size)
    weights = tf.nn.softmax(marginal, axis=1)
    return tf.einsum("bnk,n->bk", weights, grid)


def maps_to_keypoints(maps: tf.Tensor) -> tf.Tensor:
    """Reduces keypoint maps to one expected position per map.

    For y, each map is averaged over x, a softmax over the rows turns the [H] marginal into a distribution, and the
    position is its expectation over linspace(-1, 1, H); x is the same with the axes swapped. This is a softmax over
    the marginals, not over the 2-D map. Computed in float32 whatever the dtype of `maps` (mixed precision safe).

    Args:
      maps: [B, H, W, K] unnormalised keypoint maps (logits), any float dtype; B, H and W may be unknown.
    Returns:
      [B, K, 2] float32 keypoints, (y, x) in [-1, 1], y down.
    """
    maps = tf.cast(maps, tf.float32)
    y = _marginal_expectation(tf.reduce_mean(maps, axis=2))  # marginal over rows: [B, H, K]
    x = _marginal_expectation(tf.reduce_mean(maps, axis=1))  # marginal over columns: [B, W, K]
    return tf.stack([y, x], axis=-1)


def keypoints_to_maps(keypoints: tf.Tensor, height: int, width: int, sigma: float) -> tf.Tensor:
    """Renders each keypoint as an isotropic Gaussian map.

    map[b, i, j, k] = exp(-((gy[i] - y[b, k])^2 + (gx[j] - x[b, k])^2) / sigma^2), with gy = linspace(-1, 1, height)
    and gx = linspace(-1, 1, width): the peak value is 1 and the value at distance sigma is exp(-1) (no factor 2).

    Args:
      keypoints: [B, K, 2] (y, x) in [-1, 1], y down, any float dtype.
      height, width: size of the maps.
      sigma: Gaussian width in [-1, 1] units, > 0.
    Returns:
      [B, height, width, K] float32 maps.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}.")
    keypoints = tf.cast(keypoints, tf.float32)
    gy = tf.linspace(-1.0, 1.0, height)
    gx = tf.linspace(-1.0, 1.0, width)
    dy = tf.square(gy[None, :, None] - keypoints[:, None, :, 0])  # [B, height, K]
    dx = tf.square(gx[None, :, None] - keypoints[:, None, :, 1])  # [B, width, K]
    distance = dy[:, :, None, :] + dx[:, None, :, :]
    return tf.exp(-distance / (sigma * sigma))


def keypoints_to_pixels(keypoints: np.ndarray | tf.Tensor, height: int, width: int) -> np.ndarray:
    """Converts keypoints to continuous pixel positions on an image of `height` x `width`.

    This is the grid convention of the maps: -1 maps to pixel 0 and +1 to pixel height - 1 (width - 1), so a keypoint
    on grid cell i of a map of the same size lands exactly on pixel i (pixel i has its centre at i):
    row = (y + 1) / 2 * (height - 1), col = (x + 1) / 2 * (width - 1).

    For maps smaller than the frame (e.g. 21x21 maps of an 84x84 frame), pass the frame's size: this is exact under
    the convention that the map's linspace grid spans the same extent as the frame's pixel centres. Receptive-field
    offsets of strided convolutions are a property of the learned model and are not corrected here.

    Args:
      keypoints: [..., 2] (y, x) in [-1, 1], y down.
      height, width: size of the image.
    Returns:
      [..., 2] float64 (row, col) pixel positions, pixel-centre convention.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    extent = np.array([height - 1, width - 1], dtype=np.float64)
    return (keypoints + 1.0) / 2.0 * extent


def frame_pixels_to_native(
    rowcol: np.ndarray,
    frame_shape: tuple[int, int] = FRAME_SHAPE,
    native_shape: tuple[int, int] = NATIVE_SHAPE,
) -> np.ndarray:
    """Maps frame pixel positions to native Atari positions, following the area-resize (INTER_AREA) geometry.

    Frame pixel r (pixel-centre convention, covering [r - 0.5, r + 0.5]) averages the native area
    [r * s, (r + 1) * s] with s = native / frame in the pixel-edge convention of the ground-truth boxes, so its centre
    is at native_edge = (r + 0.5) * s on each axis. Example: the centre of frame row 0 is native y = 0.5 * 210 / 84
    = 1.25. In pixel-centre native coordinates that would be native_edge - 0.5; the output here is pixel-edge, so it
    compares directly with box centres (x + w / 2, y + h / 2).

    Args:
      rowcol: [..., 2] (row, col) on the frame, pixel-centre convention.
      frame_shape: (rows, cols) of the frame.
      native_shape: (rows, cols) of the native screen.
    Returns:
      [..., 2] float64 (x, y) native positions, pixel-edge convention. Note the order swap to (x, y).
    """
    rowcol = np.asarray(rowcol, dtype=np.float64)
    scale = np.array(native_shape, dtype=np.float64) / np.array(frame_shape, dtype=np.float64)
    native_rowcol = (rowcol + 0.5) * scale
    return native_rowcol[..., ::-1].copy()


def native_to_frame_pixels(
    xy: np.ndarray,
    frame_shape: tuple[int, int] = FRAME_SHAPE,
    native_shape: tuple[int, int] = NATIVE_SHAPE,
) -> np.ndarray:
    """The exact inverse of `frame_pixels_to_native`: row = y * frame / native - 0.5, the same for columns.

    Args:
      xy: [..., 2] (x, y) native positions, pixel-edge convention (e.g. box centres (x + w / 2, y + h / 2)).
      frame_shape: (rows, cols) of the frame.
      native_shape: (rows, cols) of the native screen.
    Returns:
      [..., 2] float64 (row, col) on the frame, pixel-centre convention. Note the order swap to (row, col).
    """
    native_rowcol = np.asarray(xy, dtype=np.float64)[..., ::-1]
    scale = np.array(frame_shape, dtype=np.float64) / np.array(native_shape, dtype=np.float64)
    return native_rowcol * scale - 0.5
