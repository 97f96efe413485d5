import numpy as np
import pytest
import tensorflow as tf

from keypoints.metrics import (
    collapse_statistics,
    frame_precision_recall,
    grid_to_frame,
    held_still,
    link_tracks,
    match_window,
    normalise_frame_pixels,
    receptive_field,
    tracking_precision_recall,
    truth_from_boxes,
    window_matches,
)
from keypoints.ops import maps_to_keypoints


def _moving_truth(t=40, n=3, seed=0):
    rng = np.random.default_rng(seed)
    start = rng.uniform(-0.8, 0.8, (1, n, 2))
    return start + np.cumsum(rng.normal(0, 0.01, (t, n, 2)), axis=0)


def test_ground_truth_centres_as_keypoints_give_precision_and_recall_one():
    truth = _moving_truth()
    result = tracking_precision_recall([(truth.copy(), truth)], lengths=[1, 10, 40], epsilon=0.2)
    for length in (1, 10, 40):
        assert result[length]["precision"] == 1.0 and result[length]["recall"] == 1.0
    assert result[10]["windows"] == 4


def test_moving_half_the_keypoints_beyond_epsilon_halves_precision_and_recall():
    truth = _moving_truth(n=4)
    detected = truth.copy()
    detected[:, :2] += np.array([0.5, 0.0])  # two of four keypoints 0.5 away, epsilon 0.2
    result = tracking_precision_recall([(detected, truth)], lengths=[1, 20], epsilon=0.2)
    assert result[20]["precision"] == pytest.approx(0.5) and result[20]["recall"] == pytest.approx(0.5)
    more = np.concatenate([truth, truth + 0.9], axis=1)  # 8 keypoints, 4 of them nowhere near an object
    result = tracking_precision_recall([(more, truth)], lengths=[5], epsilon=0.2)
    assert result[5]["precision"] == pytest.approx(0.5) and result[5]["recall"] == pytest.approx(1.0)


def test_frames_where_an_object_is_absent_are_ignored():
    truth = _moving_truth(t=10, n=1)
    detected = truth.copy()
    detected[:5] += 0.9  # far away exactly while the object is absent
    truth[:5] = np.nan
    assert match_window(detected, truth, 0.2) == (1, 1, 1)
    truth[:] = np.nan  # an object absent from the whole window is not a true trajectory
    assert match_window(detected, truth, 0.2) == (0, 1, 0)


def test_matching_is_one_to_one():
    truth = np.zeros((5, 1, 2))
    detected = np.zeros((5, 3, 2))  # three keypoints on the one object
    assert match_window(detected, truth, 0.2) == (1, 3, 1)


def test_truth_mapping_is_exact_for_a_known_object():
    # A 2x2-native-pixel box whose centre is native (x, y) = (80, 105): the frame's centre row/col.
    box = np.array([[79.0, 104.0, 2.0, 2.0]])
    y, x = truth_from_boxes(box)[0]
    assert y == pytest.approx(normalise_frame_pixels(np.array([105 * 84 / 210 - 0.5, 0]))[0])
    assert x == pytest.approx(normalise_frame_pixels(np.array([0, 80 * 84 / 160 - 0.5]))[1])
    corner = truth_from_boxes(np.array([[0.0, 0.0, 160 / 84, 210 / 84]]))[0]  # exactly frame pixel (0, 0)
    np.testing.assert_allclose(corner, [-1.0, -1.0], atol=1e-12)


@pytest.mark.parametrize("kernels,strides", [([3], [2]), ([3, 3], [2, 2]), ([4, 3, 3, 3], [1, 2, 2, 1])])
def test_receptive_field_geometry_matches_real_convolutions(kernels, strides):
    # Delta kernels (1 at the centre tap, rounded down for even k) push a hot pixel through 'same' convolutions;
    # the cell that lights up must be the one whose receptive-field centre is that pixel.
    scale, offset = receptive_field(84, kernels, strides)
    for row in range(0, 84):
        image = np.zeros((1, 84, 84, 1), np.float32)
        image[0, row, row] = 1.0
        x = tf.constant(image)
        exact = True
        for k, s in zip(kernels, strides, strict=True):
            kernel = np.zeros((k, k, 1, 1), np.float32)
            kernel[(k - 1) // 2, (k - 1) // 2] = 1.0
            x = tf.nn.conv2d(x, kernel, s, "SAME")
            exact &= k % 2 == 1
        lit = np.argwhere(x.numpy()[0, :, :, 0] > 0.5)
        if lit.size and exact:
            i = lit[0, 0]
            assert scale * i + offset == pytest.approx(row), (row, i)


def test_keypoints_from_a_hot_cell_land_on_its_receptive_field_centre():
    maps = np.full((1, 21, 21, 1), -1000.0, np.float32)  # marginal softmax: a hot row 5 and a hot column 7
    maps[0, 5, :, 0] = 0.0
    maps[0, :, 7, 0] = 0.0
    keypoints = maps_to_keypoints(tf.constant(maps)).numpy()[0]
    geometry = receptive_field(84, [4, 3, 3, 3], [1, 2, 2, 1])
    y, x = grid_to_frame(keypoints, 21, geometry)[0]
    scale, offset = geometry
    assert y == pytest.approx(normalise_frame_pixels(np.array([scale * 5 + offset]))[0], abs=1e-4)
    assert x == pytest.approx(normalise_frame_pixels(np.array([scale * 7 + offset]))[0], abs=1e-4)
    np.testing.assert_allclose(grid_to_frame(keypoints, 21, None), keypoints)


def test_resize_to_128_is_part_of_the_geometry():
    scale, offset = receptive_field(128, [1], [1])  # identity network on a resized frame
    assert scale == pytest.approx(84 / 128)
    assert scale * 0 + offset == pytest.approx(0.5 * 84 / 128 - 0.5)


def test_link_tracks_follows_objects_of_one_category_and_starts_new_ones():
    frames = []
    for t in range(6):
        categories = [1, 1, 2]
        positions = [[-0.5, -0.5 + 0.05 * t], [0.5, 0.5 - 0.05 * t], [0.0, 0.0]]
        if t >= 3:  # the first ghost jumps far: a new track; category 2 disappears
            positions = [[0.9, -0.9], [0.5, 0.5 - 0.05 * t]]
            categories = [1, 1]
        frames.append((np.array(categories), np.array(positions)))
    tracks = link_tracks(frames, gate=0.3)
    assert len(tracks) == 4
    second = [tr for tr in tracks if tr.category == 1 and not np.isnan(tr.positions).any()]
    assert len(second) == 1  # the second ghost is one unbroken track
    only_first = link_tracks(frames, keep=[2])
    assert len(only_first) == 1 and np.isnan(only_first[0].positions[3:]).all()


def test_frame_precision_recall():
    truth = [np.array([[0.0, 0.0], [0.5, 0.5]])]
    assert frame_precision_recall([np.array([[0.0, 0.01]])], truth, 0.05) == {"precision": 1.0, "recall": 0.5}


def test_collapse_statistics_flag_identical_keypoints():
    collapsed = np.zeros((10, 5, 2))
    stats = collapse_statistics(collapsed)
    assert stats["distinct"] == 1 and stats["collapsed_fraction"] == 1 and stats["spread"] == 0
    assert stats["motion"] == 0
    spread = np.stack([np.linspace(-0.8, 0.8, 5)] * 2, axis=-1)[None].repeat(10, axis=0)
    stats = collapse_statistics(spread)
    assert stats["distinct"] == 5 and stats["collapsed_fraction"] == 0 and stats["spread"] > 0.5
    with pytest.raises(ValueError, match=r"\[T, K, 2\]"):
        collapse_statistics(np.zeros((5, 2)))


def test_a_static_keypointer_held_still_scores_exactly_its_own_recall():
    """Held still, a keypointer that never moves is itself (the mean is taken about the first frame, so no rounding),
    hence the same precision and recall at every length, per category too; a moving one loses its tracking."""
    truth = _moving_truth(t=40, n=3)
    static = np.broadcast_to(truth[0] + np.array([0.01, -0.02]), (40, 3, 2)).copy()
    episodes = [static[:25], static[25:]]
    still = held_still(episodes)
    assert all(np.array_equal(s, e) for s, e in zip(still, episodes, strict=True))
    categories = [np.array([0, 1, 1])] * 2
    pairs = list(zip(episodes, [truth[:25], truth[25:]], strict=True))
    held = list(zip(still, [truth[:25], truth[25:]], strict=True))
    assert tracking_precision_recall(held, [1, 5, 20], 0.2, categories) == tracking_precision_recall(
        pairs, [1, 5, 20], 0.2, categories
    )
    circling = np.stack([np.cos(np.linspace(0, 2 * np.pi, 40)), np.sin(np.linspace(0, 2 * np.pi, 40))], -1)
    track = 0.5 * circling[:, None]  # [40, 1, 2]: one object going round a circle of radius 0.5
    (centre,) = held_still([track])
    assert np.allclose(centre, track.mean(axis=0), atol=1e-12) and np.abs(centre).max() < 0.02
    assert tracking_precision_recall([(track, track)], [1], 0.2)[1]["recall"] == 1.0
    assert tracking_precision_recall([(centre, track)], [1], 0.2)[1]["recall"] == 0.0  # the centre is 0.5 away


def test_keypoints_on_one_category_only_give_that_category_recall_one_and_the_other_zero():
    truth = _moving_truth(t=30, n=4, seed=3)
    categories = np.array([0, 1, 0, 1])  # objects 0 and 2 of category A (0), 1 and 3 of category B (1)
    on_a = truth[:, [0, 2]].copy()  # two keypoints, each on one category-A object
    gap = np.linalg.norm(truth[:, [1, 3], None] - on_a[:, None], axis=-1)
    assert gap.min() > 0.2  # every B object is farther than epsilon from every keypoint in every frame (seeded layout)
    result = tracking_precision_recall([(on_a, truth)], [1, 10], 0.2, [categories])
    for length in (1, 10):
        assert result[length]["category_recall"] == {0: 1.0, 1: 0.0}
        assert result[length]["recall"] == 0.5 and result[length]["precision"] == 1.0
    assert result[10]["category_trajectories"] == {0: 6, 1: 6}  # 3 windows x 2 objects each
    present, matched = window_matches(on_a[:10], truth[:10], 0.2)
    assert present.tolist() == [True] * 4 and matched.tolist() == [True, False, True, False]
