import keras
import numpy as np
import pytest
import tensorflow as tf

from keypoints.networks import KeyNet, conv_stack, transposed_stack
from keypoints.ops import maps_to_keypoints

FILTERS = [8, 8, 16, 16]
KERNELS = [5, 3, 3, 3]
STRIDES = [1, 2, 2, 1]


def _images(batch: int = 2) -> tf.Tensor:
    return tf.random.stateless_uniform([batch, 84, 84, 3], seed=[0, 1])


def test_conv_stack_downsamples_84_to_21():
    stack = conv_stack(FILTERS, KERNELS, STRIDES, "batch", name="encoder")
    assert stack(_images()).shape == (2, 21, 21, 16)


def test_transposed_stack_maps_a_stack_output_back_to_its_input_size():
    """PermaKey's decoder and Transporter's RefineNet: 84 -> 21 by the strides, then back to 84 with 3 channels."""
    filters, kernels, strides = [4, 8, 8], [3, 3, 3], [1, 2, 2]
    down = conv_stack(filters, kernels, strides, "layer", name="down")(tf.zeros((2, 84, 84, 3)))
    up = transposed_stack(filters, kernels, strides, 3, "layer", name="up")(down)
    assert down.shape == (2, 21, 21, 8) and up.shape == (2, 84, 84, 3)


@pytest.mark.parametrize("norm", ["batch", "instance", "layer", "none"])
def test_conv_stack_norms_build_and_run(norm):
    stack = conv_stack([4, 6], [3, 3], [2, 1], norm, name=f"stack_{norm}")
    out = stack(tf.random.stateless_uniform([2, 16, 16, 3], seed=[1, 2]), training=True).numpy()
    assert out.shape == (2, 8, 8, 6)
    assert np.isfinite(out).all() and (out >= 0).all()  # ReLU last
    convs = [layer for layer in stack.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 2
    assert all(conv.use_bias == (norm == "none") for conv in convs)


def test_instance_norm_has_one_group_per_channel():
    stack = conv_stack([4, 6], [3, 3], [1, 1], "instance", name="inst")
    groups = [layer.groups for layer in stack.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert groups == [4, 6]


def test_conv_stack_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch"):
        conv_stack([4], [3], [1], "group", name="bad")
    with pytest.raises(ValueError, match="same length"):
        conv_stack([4, 4], [3], [1, 1], "none", name="bad")


def test_keynet_maps_shape_and_keypoints():
    net = KeyNet(5, FILTERS, KERNELS, STRIDES, "instance", name="keynet")
    maps = net(_images(3))
    assert maps.shape == (3, 21, 21, 5)
    assert maps_to_keypoints(maps).shape == (3, 5, 2)


def test_keynet_rejects_no_keypoints():
    with pytest.raises(ValueError, match="num_keypoints"):
        KeyNet(0, FILTERS, KERNELS, STRIDES, "batch")


def test_keynet_config_round_trip():
    net = KeyNet(4, FILTERS, KERNELS, STRIDES, "layer", name="keynet")
    config = net.get_config()
    assert config["num_keypoints"] == 4 and config["norm"] == "layer"
    clone = KeyNet.from_config(config)
    assert clone(_images()).shape == net(_images()).shape == (2, 21, 21, 4)


def test_keynet_saves_and_loads(tmp_path):
    inputs = keras.Input([84, 84, 3])
    model = keras.Model(inputs, KeyNet(3, FILTERS, KERNELS, STRIDES, "batch", name="keynet")(inputs))
    path = tmp_path / "keynet.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    images = _images()
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), atol=1e-5)


@pytest.mark.parametrize("norm", ["batch", "instance", "layer"])
def test_every_norm_has_one_scale_and_offset_per_channel(norm):
    stack = conv_stack([4, 6], [3, 3], [1, 1], norm, name=f"params_{norm}")
    stack(tf.zeros([1, 16, 16, 3]))
    norms = [layer for layer in stack.layers if not isinstance(layer, keras.layers.Conv2D | keras.layers.ReLU)]
    for layer, channels in zip(norms, [4, 6], strict=True):
        assert sorted(tuple(w.shape) for w in layer.trainable_weights) == [(channels,), (channels,)]


@pytest.mark.parametrize("norm", ["batch", "instance", "layer", "none"])
def test_conv_stack_is_translation_equivariant(norm):
    """Moving an object moves the feature maps with it (away from the borders): no norm may learn per-pixel
    parameters, which would let a network paint fixed maps. The norms' parameters are perturbed first, so a norm with
    per-pixel parameters fails even though they start equal everywhere."""
    stack = conv_stack([4, 6], [3, 3], [1, 1], norm, name=f"equivariant_{norm}")
    image = np.zeros([1, 32, 32, 3], np.float32)
    image[0, 8:12, 6:11] = [0.9, 0.2, 0.5]
    stack(tf.constant(image))
    rng = np.random.default_rng(0)
    for layer in stack.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            for weight in layer.trainable_weights:
                weight.assign(weight.numpy() + rng.normal(0, 0.5, weight.shape).astype(np.float32))
    shifted = np.roll(image, (9, 12), axis=(1, 2))
    a = stack(tf.constant(image), training=False).numpy()
    b = stack(tf.constant(shifted), training=False).numpy()
    # Compare away from the borders, where zero padding makes every map differ from the interior. The tolerance is
    # float32 rounding (statistics summed in another order), relative to the outputs' scale; per-pixel parameters
    # perturbed by 0.5 would differ by about that much.
    np.testing.assert_allclose(a[:, 2:21, 2:18], b[:, 11:30, 14:30], atol=1e-3 * np.abs(a).max())
