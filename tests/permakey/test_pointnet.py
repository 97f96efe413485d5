import keras
import numpy as np
import pytest
import tensorflow as tf

from keypoints.metrics import grid_to_frame
from keypoints.ops import keypoints_to_maps, maps_to_keypoints
from permakey.keypointer import PermaKeyKeypointer, build_permakey
from permakey.pointnet import PointNet, shuffled_window_loss, summed_windows, window_loss, with_coordinates
from tests.permakey.conftest import tiny_config


def _blobs(rng: np.random.Generator, n: int, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """n two-channel 84x84 maps, each with one 6x6 blob of ones whose centre lies between `low` and `high` from the
    frame's centre (normalised units); returns the maps and the blob centres (y, x)."""
    maps, centres = np.zeros((n, 84, 84, 2), np.float32), []
    while len(centres) < n:
        y, x = rng.integers(0, 79, 2)
        centre = (np.array([y, x]) + 2.5) / 83 * 2 - 1
        if low <= np.linalg.norm(centre) <= high:
            maps[len(centres), y : y + 6, x : x + 6] = 1.0
            centres.append(centre)
    return maps, np.array(centres)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pointnet_learns_to_put_its_keypoint_on_the_error_blob_anywhere(seed):
    """Equation 3 alone (no decoder) trains PointNet onto the errors: trained on blobs near the centre (within reach
    of the initial Gaussian window), the keypoint lands on held-out blobs far from it (>= 0.35 away), which needs a
    translation-equivariant KeyNet that learned to follow the error, not a fixed spot."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    net = PointNet(1, (8, 16, 16, 16), (4, 3, 3, 3), (1, 2, 2, 1), 0.1, "layer")
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def step(maps):
        with tf.GradientTape() as tape:
            loss = window_loss(net(maps, training=True)["heatmaps"], maps)
        optimizer.apply_gradients(
            zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables, strict=False)
        )

    test, centres = _blobs(np.random.default_rng(100 + seed), 64, 0.35, 2.0)

    def within(distance: float) -> float:
        keypoints = net(tf.constant(test))["keypoints"].numpy()  # [64, 1, 2] on the 21x21 grid
        frame = grid_to_frame(keypoints, 21, (4.0, 1.5))[:, 0]  # where the loss draws the window
        return float((np.linalg.norm(frame - centres, axis=-1) < distance).mean())

    assert within(0.1) < 0.2  # untrained: near the centre, far from the blobs
    for _ in range(250):
        step(tf.constant(_blobs(rng, 4, 0.0, 0.3)[0]))
    assert within(0.1) >= 0.9


@pytest.mark.parametrize("strides, grid", [((1, 2, 2, 1), 21), ((1, 1, 2, 1), 42)])
def test_keypointer_maps_a_cell_to_where_the_loss_draws_its_window(strides, grid):
    """The evaluation's geometry is derived from the loss: a keypoint on grid cell g gets its window drawn (summed
    Gaussians resized to 84x84) centred at the frame pixel that PermaKeyKeypointer.geometry gives for g."""
    keypointer = PermaKeyKeypointer(build_permakey(tiny_config(pointnet_strides=strides)))
    size, (scale, offset) = keypointer.geometry
    assert size == grid
    for g in (0, 3, grid // 2, grid - 1):
        position = -1.0 + 2.0 * g / (grid - 1)
        keypoint = tf.constant([[[position, position]]], tf.float32)
        window = summed_windows(keypoints_to_maps(keypoint, grid, grid, 0.1), (84, 84)).numpy()[0, :, :, 0]
        rows = np.nonzero(window.max(axis=1) == window.max())[0]  # the frame rows covered by the peak cell
        assert rows.mean() == pytest.approx(scale * g + offset)
        np.testing.assert_allclose(
            grid_to_frame(keypoint.numpy(), grid, (scale, offset)), [[[(2 * rows.mean() / 83) - 1] * 2]]
        )


def test_window_loss_is_lowest_with_the_windows_on_the_errors():
    maps = np.zeros((1, 84, 84, 2), np.float32)
    maps[0, 40:48, 60:68] = 1.0  # errors around frame pixel (43.5, 63.5)
    on = tf.constant([[[43.5 / 83 * 2 - 1, 63.5 / 83 * 2 - 1]]], tf.float32)
    off = tf.constant([[[-0.5, -0.5]]], tf.float32)
    loss = {name: float(window_loss(keypoints_to_maps(k, 84, 84, 0.1), maps)) for name, k in (("on", on), ("off", off))}
    assert loss["on"] < loss["off"]


def test_shuffled_loss_compares_each_frame_with_another_frames_windows():
    rng = np.random.default_rng(0)
    maps, centres = _blobs(rng, 4, 0.3, 0.8)
    heatmaps = keypoints_to_maps(tf.constant(centres[:, None], tf.float32), 84, 84, 0.1)
    assert float(window_loss(heatmaps, maps)) < float(shuffled_window_loss(heatmaps, maps))


@pytest.mark.parametrize("coordinates", [False, True])
def test_only_coordinates_let_pointnet_tell_two_identical_blobs_apart(coordinates):
    """Why the quick preset gives PointNet coordinate channels: error maps carry no colour, so to a translation-
    equivariant KeyNet two identical objects (Pong's paddles) give identical keypoint logits, and a keypoint drawn to
    one is drawn as much to the other (its marginal softmax splits between them). With each pixel's (y, x) as input
    the logits around the two differ, so a keypoint can prefer one (docs/permakey_quick.md measures the effect)."""
    maps = np.zeros((1, 84, 84, 2), np.float32)
    maps[0, 36:42, 24:30] = maps[0, 36:42, 52:58] = 1.0  # 28 px apart: 7 cells of the 21x21 grid (total stride 4)
    keras.utils.set_random_seed(0)
    net = PointNet(2, (8, 16, 16, 16), (4, 3, 3, 3), (1, 2, 2, 1), 0.1, "layer", coordinates=coordinates)
    logits = net.keypoint_maps(tf.constant(maps)).numpy()[0]  # [21, 21, 2]
    left, right = logits[5:14, 3:10], logits[5:14, 10:17]  # the same neighbourhood of each blob
    difference = np.abs(left - right).max() / np.abs(logits).max()
    if coordinates:
        assert difference > 1e-2
    else:  # equal up to float32 rounding: the same sums over the same values, in another place
        assert difference < 1e-4


def test_coordinate_channels_follow_the_keypoint_convention():
    images = tf.zeros((2, 21, 11, 3), tf.bfloat16)
    out = with_coordinates(images)
    assert out.shape == (2, 21, 11, 5) and out.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(out[1, :, 0, 3], tf.float32), np.linspace(-1, 1, 21), atol=1e-2)
    np.testing.assert_allclose(tf.cast(out[0, 0, :, 4], tf.float32), np.linspace(-1, 1, 11), atol=1e-2)


def test_inference_and_training_paths_agree_with_coordinates():
    model = build_permakey(tiny_config(pointnet_coordinates=True))
    frames = tf.random.uniform((2, 84, 84, 3), seed=0)
    error_maps, maps, _ = model.infer(frames)
    assert model.pointnet.keynet.features.layers[0].kernel.shape[-2] == error_maps.shape[-1] + 2
    np.testing.assert_allclose(
        model.pointnet(error_maps)["keypoints"].numpy(), maps_to_keypoints(maps).numpy(), rtol=1e-5, atol=1e-6
    )
