"""The ground-truth keypointer's slot rule, absent-object convention and geometry, without an emulator (the real
environment's objects: tests/rl/test_envs.py)."""

import numpy as np
import pytest
import tensorflow as tf

from keypoints.metrics import grid_to_frame, truth_from_boxes
from keypoints.oracle import ABSENT, OracleKeypointer, slot_categories, slot_positions
from rl.encoders import CNNEncoder, GNNEncoder, KeyQNEncoder, keypoint_features

PONG = ("Player", "Enemy", "Ball")


def test_slots_go_round_robin_over_categories_up_to_k_and_their_maxima():
    seaquest = ("Player", "Shark", "Submarine", "Diver", "EnemyMissile", "SurfaceSubmarine", "PlayerMissile")
    counts = {"Player": 1, "Shark": 12, "Submarine": 12, "Diver": 4, "EnemyMissile": 4}
    counts |= {"SurfaceSubmarine": 1, "PlayerMissile": 1}
    assert slot_categories(seaquest, counts, 10) == (
        "Player",
        "Shark",
        "Shark",
        "Submarine",
        "Submarine",
        "Diver",
        "Diver",
        "EnemyMissile",
        "SurfaceSubmarine",
        "PlayerMissile",
    )
    # MsPacman: 6 moving objects for K = 7, the last slot never taken.
    pacman = slot_categories(("Player", "Ghost", "Fruit"), {"Player": 1, "Ghost": 4, "Fruit": 1, "Pill": 252}, 7)
    assert pacman == ("Player", "Ghost", "Ghost", "Ghost", "Ghost", "Fruit", None)
    with pytest.raises(ValueError, match="moving_categories in data/games.py"):
        slot_categories(("Player", "Ghosts"), {"Player": 1, "Ghost": 4}, 5)


def test_objects_fill_their_category_slots_in_list_order_and_the_rest_are_absent():
    slots = ("Player", "Ghost", "Ghost", "Ghost", None)
    names = ["Ghost", "Player", "Pill", "Ghost", "Ghost", "Ghost"]
    boxes = np.array(
        [[10, 20, 8, 8], [80, 100, 8, 10], [5, 5, 2, 2], [30, 40, 8, 8], [170, 40, 8, 8], [50, 60, 8, 8]], np.float32
    )
    positions, present = slot_positions(slots, names, boxes)
    truth = truth_from_boxes(boxes)
    np.testing.assert_array_equal(present, [True, True, True, True, False])
    # the player; then the ghosts in list order, skipping the one off the native screen (x centre 174 > 160)
    np.testing.assert_allclose(positions[:4], truth[[1, 0, 3, 5]], atol=1e-6)
    np.testing.assert_array_equal(positions[4], ABSENT)


def test_absent_slots_sit_at_the_corner_with_zero_heatmaps_and_presence_zero():
    oracle = OracleKeypointer("pong", PONG)
    frames = np.full((2, 84, 84, 3), 200, np.uint8)
    positions = np.zeros((2, 3, 2), np.float32)
    present = np.array([[True, False, True], [False, False, False]])
    out = oracle(frames, positions, present)
    coordinates, heatmaps = out.coordinates.numpy(), out.heatmaps.numpy()
    np.testing.assert_array_equal(coordinates[~present], np.tile(ABSENT, (4, 1)))
    assert (heatmaps[0, ..., 1] == 0).all() and (heatmaps[1] == 0).all()
    assert heatmaps[0, ..., 0].max() > 0.9 and heatmaps[0, ..., 2].max() > 0.9
    presence = keypoint_features(out.heatmaps, out.features).numpy()[..., -1]
    np.testing.assert_allclose(presence, present.astype(float), atol=1e-4)
    np.testing.assert_allclose(out.features.numpy()[..., :3], 200 / 255, atol=1e-6)  # the frame, area-pooled
    np.testing.assert_array_equal(oracle.absent(frames).heatmaps.numpy(), 0.0)


def test_keypoints_map_back_to_the_object_centres_through_the_geometry():
    oracle = OracleKeypointer("pong", PONG)
    grid, geometry = oracle.geometry
    assert (grid, geometry) == (21, (4.0, 1.5))  # PermaKey's cell geometry on its 21x21 grid
    rng = np.random.default_rng(0)
    positions = rng.uniform(-1.0, 1.0, (4, 3, 2)).astype(np.float32)
    out = oracle(np.zeros((4, 84, 84, 3), np.uint8), positions, np.ones((4, 3), bool))
    low, high = grid_to_frame(np.array([-1.0, 1.0]), grid, geometry)  # the grid's extent on the frame
    back = grid_to_frame(out.coordinates.numpy(), grid, geometry)
    np.testing.assert_allclose(back, np.clip(positions, low, high), atol=1e-5)
    # Each heatmap peaks on the grid cell nearest its keypoint, as a learned keypointer's (keypoints_to_maps).
    cells = np.round((out.coordinates.numpy() + 1) / 2 * (grid - 1)).astype(int)
    peaks = out.heatmaps.numpy().reshape(4, grid * grid, 3).argmax(axis=1)
    np.testing.assert_array_equal(np.stack([peaks // grid, peaks % grid], -1), cells)


def test_a_wrong_number_of_slots_is_refused_with_the_shapes_needed():
    oracle = OracleKeypointer("pong", PONG)
    with pytest.raises(ValueError, match=r"positions \[B, 3, 2\] and present \[B, 3\]"):
        oracle(np.zeros((1, 84, 84, 3), np.uint8), np.zeros((1, 2, 2)), np.ones((1, 2), bool))


@pytest.mark.parametrize("encoder", [CNNEncoder(filters=8, binarise=None), GNNEncoder(steps=1), KeyQNEncoder(bins=4)])
def test_the_oracle_runs_through_every_encoder_unchanged(encoder):
    oracle = OracleKeypointer("ms_pacman", ("Player", "Ghost", "Ghost", "Ghost", "Ghost", "Fruit", None))
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2, 84, 84, 3), dtype=np.uint8)
    positions = rng.uniform(-0.9, 0.9, (2, 7, 2)).astype(np.float32)
    present = np.array([[True] * 6 + [False], [True, False, True, False, True, False, False]])
    out = oracle(frames, positions, present)
    assert out.features.shape == (2, 21, 21, 4) and out.heatmaps.shape == (2, 21, 21, 7)
    embedding = encoder(encoder.view(out.coordinates, out.heatmaps, out.features))
    assert embedding.shape == (2, 128) and np.isfinite(embedding.numpy()).all()
    assert tf.reduce_all(tf.abs(out.coordinates) <= 1.0)
