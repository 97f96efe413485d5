import numpy as np
import pytest
import tensorflow as tf

from keypoints.ops import keypoints_to_maps
from rl.encoders import CNNEncoder, GNNEncoder, KeyQNEncoder, keypoint_features, thermometer


def _inputs(seed=0, b=2, k=3, grid=21, c=5):
    rng = np.random.default_rng(seed)
    coordinates = tf.constant(rng.uniform(-0.9, 0.9, (b, k, 2)), tf.float32)
    heatmaps = keypoints_to_maps(coordinates, grid, grid, 0.1)
    features = tf.constant(rng.normal(size=(b, grid, grid, c)), tf.float32)
    return coordinates, heatmaps, features


@pytest.mark.parametrize("encoder", [CNNEncoder(filters=8, binarise=None), GNNEncoder(steps=2), KeyQNEncoder(bins=4)])
def test_encoders_map_keypointer_outputs_to_128(encoder):
    out = encoder(encoder.view(*_inputs()))
    assert out.shape == (2, 128)
    assert np.isfinite(out.numpy()).all()


def test_keypoint_features_average_under_each_heatmap():
    features = tf.reshape(tf.range(9, dtype=tf.float32), (1, 3, 3, 1))
    heatmaps = tf.one_hot([[4, 0]], 9)[..., None]  # keypoint 0 on the centre cell, keypoint 1 on the corner
    heatmaps = tf.transpose(tf.reshape(heatmaps, (1, 2, 3, 3)), (0, 2, 3, 1))
    np.testing.assert_allclose(keypoint_features(heatmaps, features).numpy()[0, :, 0], [4.0, 0.0], atol=1e-4)


def test_gnn_message_passing_really_iterates():
    one, two = GNNEncoder(steps=1), GNNEncoder(steps=2)
    inputs = one.view(*_inputs())
    one(inputs)
    two(inputs)
    two.set_weights(one.get_weights())  # same parameters: only the number of steps differs
    assert not np.allclose(one(inputs).numpy(), two(inputs).numpy())
    calls = []
    original = two.interaction

    def counting(nodes, edges):
        calls.append(1)
        return original(nodes, edges)

    two.interaction = counting
    two(inputs)
    assert len(calls) == 2


def test_gnn_edge_model_per_node_equals_the_concatenated_form():
    """The interaction step's edge model computes W [e_ij, v_i, v_j] + b by parts; it must equal the edge MLP applied
    to the concatenation (the same weights), and so must the node update."""
    encoder = GNNEncoder(steps=1)
    encoder(encoder.view(*_inputs()))
    rng = np.random.default_rng(0)
    nodes = tf.constant(rng.normal(size=(2, 3, 64)), tf.float32)
    edges = tf.constant(rng.normal(size=(2, 3, 3, 64)), tf.float32)
    new_nodes, new_edges = encoder.interaction(nodes, edges)
    receivers = tf.repeat(nodes[:, :, None, :], 3, axis=2)
    senders = tf.repeat(nodes[:, None, :, :], 3, axis=1)
    expected = encoder.edge_model(tf.concat([edges, receivers, senders], axis=-1))
    # Sums of 192 products reordered into three sums of 64: float32 rounding, relative 1e-5 of O(1) activations.
    np.testing.assert_allclose(new_edges.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
    incoming = tf.reduce_sum(expected * (1.0 - tf.eye(3))[None, :, :, None], axis=2)
    np.testing.assert_allclose(
        new_nodes.numpy(), encoder.node_model(tf.concat([nodes, incoming], axis=-1)).numpy(), rtol=1e-4, atol=1e-4
    )


def test_gnn_appends_the_positional_embedding_to_the_keypoint_features():
    """PermaKey section 3: keypoint features "are appended with learned positional embedding" (an MLP of 2 x 64 with
    linear output, Appendix A.2.3). Appended, not added: the node keeps the features unchanged beside 64 units of
    position, even when the keypointer has only 4 channels (the oracle's)."""
    encoder = GNNEncoder(steps=1)
    coordinates, heatmaps, features = _inputs(c=4)
    view = encoder.view(coordinates, heatmaps, features)
    encoder(view)
    seen = []
    node_encoder = encoder.node_encoder
    object.__setattr__(encoder, "node_encoder", lambda nodes: seen.append(nodes) or node_encoder(nodes))
    encoder(view)
    (nodes,) = seen
    assert nodes.shape == (2, 3, 4 + 64)
    np.testing.assert_array_equal(nodes[..., :4].numpy(), view["features"].numpy())
    np.testing.assert_allclose(nodes[..., 4:].numpy(), encoder.position(coordinates).numpy(), rtol=1e-6, atol=1e-6)


def test_gnn_nodes_see_each_other():
    encoder = GNNEncoder(steps=1)
    coordinates, heatmaps, features = _inputs()
    base = encoder(encoder.view(coordinates, heatmaps, features)).numpy()
    moved = coordinates.numpy().copy()
    moved[:, 2] = [0.0, 0.0]  # move only keypoint 2
    moved = tf.constant(moved)
    after = encoder(encoder.view(moved, keypoints_to_maps(moved, 21, 21, 0.1), features)).numpy()
    assert not np.allclose(base, after)


def test_cnn_mask_binarises_like_the_authors_code_when_asked():
    _, heatmaps, _ = _inputs()
    soft = CNNEncoder(filters=4, binarise=None).mask(heatmaps).numpy()
    hard = CNNEncoder(filters=4, binarise=0.2).mask(heatmaps).numpy()
    assert set(np.unique(hard)) <= {0.0, 1.0}
    assert 0.0 < soft.mean() < 1.0 and soft.max() <= 1.0


def test_thermometer_code():
    code = thermometer(tf.constant([-1.0, 0.0, 1.0]), 4).numpy()
    np.testing.assert_array_equal(code, [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    with pytest.raises(ValueError, match="steps"):
        GNNEncoder(steps=0)
