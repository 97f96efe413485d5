import numpy as np
import pytest
import tensorflow as tf

from permakey.lspn import NEIGHBOUR_OFFSETS, error_map, live_cells, neighbours, stack_error_maps, to_cells


def test_neighbours_in_documented_order_with_zeros_at_borders():
    cells = tf.reshape(tf.range(1, 10, dtype=tf.float32), [1, 3, 3, 1])  # 1 2 3 / 4 5 6 / 7 8 9
    n = neighbours(cells).numpy()[0, ..., :]
    assert n.shape == (3, 3, 8)
    np.testing.assert_array_equal(n[1, 1], [1, 2, 3, 4, 6, 7, 8, 9])  # NW N NE W E SW S SE
    np.testing.assert_array_equal(n[0, 0], [0, 0, 0, 0, 2, 0, 4, 5])
    np.testing.assert_array_equal(n[2, 2], [5, 6, 0, 8, 0, 0, 0, 0])
    assert NEIGHBOUR_OFFSETS[0] == (-1, -1) and NEIGHBOUR_OFFSETS[-1] == (1, 1)


def test_neighbours_concatenate_whole_cells():
    cells = tf.reshape(tf.range(2 * 2 * 3, dtype=tf.float32), [1, 2, 2, 3])
    n = neighbours(cells).numpy()[0, 0, 0]  # top-left cell: only E (index 4), S (6), SE (7) exist
    np.testing.assert_array_equal(n[4 * 3 : 5 * 3], cells.numpy()[0, 0, 1])
    np.testing.assert_array_equal(n[6 * 3 : 7 * 3], cells.numpy()[0, 1, 0])
    np.testing.assert_array_equal(n[7 * 3 : 8 * 3], cells.numpy()[0, 1, 1])
    assert not n[: 4 * 3].any()


def test_cells_are_non_overlapping_patches():
    features = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])
    cells = to_cells(features, 2).numpy()
    assert cells.shape == (1, 2, 2, 4)
    np.testing.assert_array_equal(cells[0, 0, 0], [0, 1, 4, 5])
    np.testing.assert_array_equal(cells[0, 1, 1], [10, 11, 14, 15])


def test_error_maps_are_normalised_and_mark_the_unpredictable_cell():
    target = tf.ones([2, 6, 6, 4])
    prediction = tf.tensor_scatter_nd_update(target, [[0, 2, 3], [1, 5, 0]], tf.zeros([2, 4]))
    for metric in ("rmse", "mse"):
        maps = stack_error_maps([error_map(prediction, target, metric)], (12, 12)).numpy()
        assert maps.shape == (2, 12, 12, 1)
        assert maps.min() >= 0.0 and maps.max() <= 1.0
        assert maps[0, 4:6, 6:8, 0].min() == 1.0 and maps[0, :4].max() == 0.0  # nearest resize of cell (2, 3)
        assert maps[1, 10:12, 0:2, 0].min() == 1.0


def test_error_normalisations_on_a_dark_region():
    """A tiny error where the target is dark (a black HUD band) against a 10x larger error where the target is bright.
    The paper's division by (activation + 1e-3) makes the dark cell's error the larger; dividing by (activation + the
    image's mean activation) keeps the bright cell's error the larger, as does the raw error."""
    target = np.full([1, 4, 4, 2], 0.5, np.float32)
    target[0, 3] = 0.0  # the dark bottom row
    prediction = target.copy()
    prediction[0, 3, 1] += 0.01  # small error in the dark row
    prediction[0, 1, 1] += 0.1  # ten times larger error in the bright region
    target, prediction = tf.constant(target), tf.constant(prediction)
    for normalisation, dark_wins in (("activation", True), ("image", False), ("none", False)):
        errors = error_map(prediction, target, "rmse", normalisation).numpy()[0]
        assert (errors[3, 1] > errors[1, 1]) == dark_wins, normalisation
    activation = error_map(prediction, target, "mse", "activation").numpy()[0]
    np.testing.assert_allclose(activation[1, 1], 0.1**2 / (0.5 + 1e-3), rtol=1e-5)
    image = error_map(prediction, target, "mse", "image").numpy()[0]
    mean = (12 * 0.5 + 4 * 0.0) / 16
    np.testing.assert_allclose(image[1, 1], 0.1**2 / (0.5 + mean + 1e-6), rtol=1e-5)
    np.testing.assert_allclose(image[3, 1], 0.01**2 / (0.0 + mean + 1e-6), rtol=1e-5)


def test_live_cells_are_those_with_any_activation_in_their_neighbourhood():
    target = np.zeros([1, 5, 6, 3], np.float32)
    target[0, 0, 0, 2] = 0.5  # one active cell in the corner
    live = live_cells(tf.constant(target)).numpy()[0]
    expected = np.zeros([5, 6], bool)
    expected[:2, :2] = True  # the cell and its neighbours inside the frame
    np.testing.assert_array_equal(live, expected)


@pytest.mark.parametrize("metric", ["rmse", "mse"])
def test_only_the_division_by_activation_lets_dead_cells_outshine_an_object(metric):
    """A black band (target and neighbours all zero) where the LSPN outputs its biases c = 0.01, against an object
    whose bright cell is predicted with a larger error (0.05): the division by (activation + 1e-3) makes the band the
    brightest part of the map under either metric; `image` and `none` keep the object on top."""
    target = np.full([1, 8, 8, 4], 0.5, np.float32)
    target[0, 5:] = 0.0  # a black band: rows 5-7, of which 6-7 are dead (row 5 borders active cells)
    prediction = target.copy()
    prediction[0, 6:] = 0.01  # the constant output c on the dead cells
    prediction[0, 2, 3] += 0.05  # the object
    target, prediction = tf.constant(target), tf.constant(prediction)
    assert not live_cells(target).numpy()[0, 6:].any()
    for normalisation, band_wins in (("activation", True), ("image", False), ("none", False)):
        errors = error_map(prediction, target, metric, normalisation).numpy()[0]
        assert (errors[6:].max() > errors[2, 3]) == band_wins, normalisation
        assert errors[2, 3] == errors[:5].max()  # among live cells the object is the brightest
