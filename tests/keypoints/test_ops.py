import numpy as np
import pytest
import tensorflow as tf

from keypoints.ops import (
    frame_pixels_to_native,
    keypoints_to_maps,
    keypoints_to_pixels,
    maps_to_keypoints,
    native_to_frame_pixels,
)

# A non-square map, so that swapped axes cannot pass. Small enough that a value of 100 dominates the softmax
# of the marginals (the hot pixel's marginal is 100 / W or 100 / H).
H, W = 6, 10


def _hot_pixel(row: int, col: int, height: int = H, width: int = W, value: float = 100.0) -> np.ndarray:
    maps = np.zeros([1, height, width, 1], np.float32)
    maps[0, row, col, 0] = value
    return maps


@pytest.mark.parametrize(
    ("row", "col", "expected"),
    [(0, 0, (-1.0, -1.0)), (H - 1, W - 1, (1.0, 1.0)), (0, W - 1, (-1.0, 1.0)), (H - 1, 0, (1.0, -1.0))],
)
def test_hot_pixel_in_a_corner_gives_that_corner_in_y_x_order(row, col, expected):
    keypoints = maps_to_keypoints(tf.constant(_hot_pixel(row, col)))
    assert keypoints.shape == (1, 1, 2)
    assert keypoints.dtype == tf.float32
    np.testing.assert_allclose(keypoints.numpy()[0, 0], expected, atol=1e-3)


def test_uniform_map_gives_the_centre():
    keypoints = maps_to_keypoints(tf.fill([2, H, W, 3], 7.0))
    np.testing.assert_allclose(keypoints.numpy(), 0.0, atol=1e-6)


def test_keypoints_are_per_map_and_per_batch_element():
    maps = np.zeros([2, H, W, 2], np.float32)
    maps[0, 0, 0, 0] = 100.0
    maps[0, H - 1, W - 1, 1] = 100.0
    maps[1, 0, W - 1, 0] = 100.0
    maps[1, H - 1, 0, 1] = 100.0
    expected = [[[-1, -1], [1, 1]], [[-1, 1], [1, -1]]]
    np.testing.assert_allclose(maps_to_keypoints(tf.constant(maps)).numpy(), expected, atol=1e-3)


def test_keypoints_to_maps_peaks_at_the_keypoint_grid_cell_with_value_one():
    # linspace(-1, 1, 21) has spacing 0.1 and linspace(-1, 1, 41) 0.05: (y, x) = (-0.3, 0.5) is row 7, column 30.
    keypoints = tf.constant([[[-0.3, 0.5]]])
    maps = keypoints_to_maps(keypoints, 21, 41, sigma=0.2).numpy()
    assert maps.shape == (1, 21, 41, 1)
    assert maps.dtype == np.float32
    np.testing.assert_allclose(maps.max(), 1.0, atol=1e-5)
    assert np.unravel_index(maps[0, :, :, 0].argmax(), (21, 41)) == (7, 30)
    # Two rows further down is a distance of 0.2 = sigma in y: exp(-1), no factor 2. Likewise four columns left.
    np.testing.assert_allclose(maps[0, 9, 30, 0], np.exp(-1.0), rtol=1e-4)
    np.testing.assert_allclose(maps[0, 7, 26, 0], np.exp(-1.0), rtol=1e-4)


def test_keypoints_to_maps_rejects_non_positive_sigma():
    with pytest.raises(ValueError, match="sigma"):
        keypoints_to_maps(tf.zeros([1, 1, 2]), 8, 8, sigma=0.0)


def test_maps_round_trip_recovers_keypoints():
    # With sigma = 0.05 and a gain of 50 the averaged marginals are too flat for the softmax to recover the position
    # (error ~0.6); sigma = 0.2 with gain 50 gives errors below 4e-3.
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(-0.8, 0.8, [4, 5, 2]).astype(np.float32)
    maps = keypoints_to_maps(tf.constant(keypoints), 32, 32, sigma=0.2) * 50.0
    np.testing.assert_allclose(maps_to_keypoints(maps).numpy(), keypoints, atol=1e-2)


def test_bfloat16_maps_give_float32_keypoints_close_to_float32():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=[2, 16, 16, 4]).astype(np.float32) * 3.0
    reference = maps_to_keypoints(tf.constant(maps))
    half = maps_to_keypoints(tf.cast(tf.constant(maps), tf.bfloat16))
    assert half.dtype == tf.float32
    np.testing.assert_allclose(half.numpy(), reference.numpy(), atol=2e-2)


def test_works_in_tf_function_with_unknown_sizes():
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float16)])
    def detect(maps):
        return maps_to_keypoints(maps)

    @tf.function(input_signature=[tf.TensorSpec([None, 3, 2], tf.float32)])
    def render(keypoints):
        return keypoints_to_maps(keypoints, 12, 16, sigma=0.3)

    keypoints = tf.constant([[[-0.5, 0.25], [0.0, 0.0], [0.5, -0.75]]])
    maps = render(keypoints)
    assert maps.shape == (1, 12, 16, 3)
    recovered = detect(tf.cast(maps * 20.0, tf.float16))
    assert recovered.dtype == tf.float32
    assert recovered.shape == (1, 3, 2)
    np.testing.assert_allclose(recovered.numpy(), keypoints.numpy(), atol=5e-2)


def test_keypoints_to_pixels_ends_and_order():
    pixels = keypoints_to_pixels(np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]]), 21, 11)
    np.testing.assert_allclose(pixels, [[0, 0], [20, 10], [0, 10], [10, 5]])


def test_keypoints_to_pixels_accepts_tensors_and_keeps_leading_shape():
    pixels = keypoints_to_pixels(tf.zeros([2, 3, 4, 2]), 84, 84)
    assert isinstance(pixels, np.ndarray)
    assert pixels.shape == (2, 3, 4, 2)
    np.testing.assert_allclose(pixels, 41.5)


@pytest.mark.parametrize(("row", "col"), [(0, 0), (2, 7), (5, 3), (H - 1, W - 1)])
def test_hot_pixel_maps_back_to_its_pixel(row, col):
    keypoints = maps_to_keypoints(tf.constant(_hot_pixel(row, col))).numpy()
    np.testing.assert_allclose(keypoints_to_pixels(keypoints, H, W)[0, 0], (row, col), atol=1e-2)


def test_keypoint_on_grid_cell_maps_to_that_pixel():
    keypoints = np.stack(np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij"), -1)  # [H, W, 2]
    expected = np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij"), -1)
    np.testing.assert_allclose(keypoints_to_pixels(keypoints, H, W), expected, atol=1e-12)


def test_frame_pixel_centres_to_native_numbers():
    # Frame pixel (row 0, col 0): native y = 0.5 * 210 / 84 = 1.25, x = 0.5 * 160 / 84; output is (x, y).
    native = frame_pixels_to_native(np.array([[0.0, 0.0], [83.0, 83.0], [41.5, 41.5]]))
    np.testing.assert_allclose(native[0], [0.5 * 160 / 84, 1.25])
    np.testing.assert_allclose(native[1], [160 - 0.5 * 160 / 84, 210 - 1.25])
    np.testing.assert_allclose(native[2], [80.0, 105.0])  # the frame centre is the screen centre


def test_native_box_centre_round_trips():
    # A native box (x, y, w, h) = (30, 100, 4, 10): its centre (32, 105) in pixel-edge coordinates maps to itself.
    box = np.array([30.0, 100.0, 4.0, 10.0])
    centre = box[:2] + box[2:] / 2
    rowcol = native_to_frame_pixels(centre)
    np.testing.assert_allclose(rowcol, [105 * 84 / 210 - 0.5, 32 * 84 / 160 - 0.5])
    np.testing.assert_allclose(frame_pixels_to_native(rowcol), centre)


def test_native_and_frame_conversions_are_inverse():
    rng = np.random.default_rng(2)
    rowcol = rng.uniform(-0.5, 83.5, [3, 7, 2])
    np.testing.assert_allclose(native_to_frame_pixels(frame_pixels_to_native(rowcol)), rowcol, atol=1e-12)
    xy = rng.uniform(0, 160, [5, 2])
    np.testing.assert_allclose(frame_pixels_to_native(native_to_frame_pixels(xy)), xy, atol=1e-12)
    # Other sizes: a 2x downscale of a 4x4 image puts frame pixel 0's centre at native edge coordinate 1.
    np.testing.assert_allclose(frame_pixels_to_native(np.zeros(2), (2, 2), (4, 4)), [1.0, 1.0])
