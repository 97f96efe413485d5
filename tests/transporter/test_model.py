import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from keypoints.ops import keypoints_to_maps
from tests.conftest import assert_same_weights
from transporter.keypointer import TransporterKeypointer
from transporter.model import TransporterConfig, build_transporter, reconstruction_loss, transport


def tiny_config(**changes) -> TransporterConfig:
    """PermaKey's re-implementation shape with few filters: fast enough for unit tests."""
    base = dict(
        model="transporter",
        num_keypoints=3,
        image_shape=(84, 84, 3),
        input_size=84,
        filters=(4, 4, 8, 8),
        kernels=(3, 3, 3, 3),
        strides=(1, 1, 2, 1),
        norm="batch",
        sigma=0.1,
        transport="features",
    )
    base.update(changes)
    return TransporterConfig(**base)


def _pair(seed=0, n=4):
    """Frames with a bright square that moves between source and target."""
    rng = np.random.default_rng(seed)
    source = np.zeros((n, 84, 84, 3), np.float32)
    target = np.zeros((n, 84, 84, 3), np.float32)
    for i in range(n):
        y, x = rng.integers(4, 70, 2)
        dy, dx = rng.integers(-4, 5, 2)
        colour = rng.random(3)
        source[i, y : y + 8, x : x + 8] = colour
        target[i, y + dy : y + dy + 8, x + dx : x + dx + 8] = colour
    return tf.constant(source), tf.constant(target)


def _compiled(config, lr=1e-3):
    model = build_transporter(config)
    model.compile(optimizer=keras.optimizers.Adam(lr))
    return model


def test_transporting_a_frame_onto_itself_returns_its_own_features():
    rng = np.random.default_rng(0)
    features = tf.constant(rng.normal(size=(2, 10, 10, 5)), tf.float32)
    maps = keypoints_to_maps(tf.constant(rng.uniform(-1, 1, (2, 3, 2)), tf.float32), 10, 10, 0.2)
    out = transport(features, features, maps, maps).numpy()
    # Every step gives (1 - h)^2 f + h f = (1 - h + h^2) f, which is f only where h is 0 or 1; the full model is the
    # identity where no keypoint is and the pasted target features where the heatmap peaks.
    far = (maps.numpy() < 1e-6).all(axis=-1)
    np.testing.assert_allclose(out[far], features.numpy()[far], rtol=1e-6)
    single = keypoints_to_maps(tf.constant([[[0.0, 0.0]]]), 9, 9, 0.1)  # peak exactly 1 at the centre cell
    one = transport(features[:1, :9, :9], features[:1, :9, :9], single, single).numpy()
    np.testing.assert_allclose(one[0, 4, 4], features.numpy()[0, 4, 4], rtol=1e-6)


def test_closed_form_transport_equals_the_papers_keypoint_by_keypoint_loop():
    rng = np.random.default_rng(1)
    source, target = (tf.constant(rng.normal(size=(2, 7, 7, 5)), tf.float32) for _ in range(2))
    source_maps, target_maps = (tf.constant(rng.uniform(0, 1, (2, 7, 7, 4)), tf.float32) for _ in range(2))
    expected = source.numpy()
    for k in range(4):
        hs, ht = source_maps.numpy()[..., k : k + 1], target_maps.numpy()[..., k : k + 1]
        expected = (1 - hs) * (1 - ht) * expected + ht * target.numpy()
    # Products and sums of at most K + 1 terms in [0, 1] times O(1) features: float32 rounding stays near 1e-6.
    np.testing.assert_allclose(transport(source, target, source_maps, target_maps).numpy(), expected, atol=1e-5)


def test_heatmap_suppression_zeroes_features_at_both_keypoint_sets():
    source = tf.ones((1, 9, 9, 2))
    target = tf.zeros((1, 9, 9, 2))
    source_maps = keypoints_to_maps(tf.constant([[[-0.5, -0.5]]]), 9, 9, 0.1)  # peak 1 at cell (2, 2)
    target_maps = keypoints_to_maps(tf.constant([[[0.5, 0.5]]]), 9, 9, 0.1)  # peak 1 at cell (6, 6)
    out = transport(source, target, source_maps, target_maps).numpy()
    assert out[0, 2, 2, 0] == pytest.approx(0.0, abs=1e-6)  # the source keypoint's features are gone
    assert out[0, 6, 6, 0] == pytest.approx(0.0, abs=1e-6)  # replaced by the target's (zeros)
    assert out[0, 0, 8, 0] == pytest.approx(1.0, abs=1e-4)  # far from both: the source's


def test_no_gradient_reaches_the_source_branch():
    model = build_transporter(tiny_config())
    source, target = _pair()
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(source)
        tape.watch(target)
        loss = reconstruction_loss(model((source, target), training=True)["reconstruction"], target)
    assert tape.gradient(loss, source) is None
    assert tape.gradient(loss, target) is not None
    # Every trainable variable still learns (through the target branch).
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)


def test_imm_decoder_sees_source_features_and_target_heatmaps():
    model = build_transporter(tiny_config(model="imm"))
    source, target = _pair()
    with tf.GradientTape() as tape:
        tape.watch(source)
        out = model((source, target), training=True)
        loss = reconstruction_loss(out["reconstruction"], target)
    assert tape.gradient(loss, source) is not None  # the appearance branch trains in IMM
    assert out["transported"].shape == (4, 42, 42, 8 + 3)


@pytest.mark.parametrize("changes", [{}, {"model": "imm"}, {"transport": "pixels"}])
def test_loss_goes_down_on_tiny_data(changes):
    model = _compiled(tiny_config(**changes))
    pair = _pair()
    step = tf.function(model.train_step)
    first = float(step(pair)["loss"])
    for _ in range(25):
        model.loss_tracker.reset_state()
        last = float(step(pair)["loss"])
    assert last < 0.7 * first, (first, last)


def _square_pairs(rng, n, side=32, square=8):
    """A yellow square on black that jumps up to a quarter of the frame between source and target; returns the pair
    and the target square's centre as (y, x) in [-1, 1]."""
    source = np.zeros((n, side, side, 3), np.float32)
    target = np.zeros_like(source)
    centres = np.zeros((n, 2))
    for i in range(n):
        y, x = rng.integers(0, side - square, 2)
        ty, tx = np.clip([y, x] + rng.integers(-side // 4, side // 4 + 1, 2), 0, side - square)
        source[i, y : y + square, x : x + square] = (1.0, 0.8, 0.2)
        target[i, ty : ty + square, tx : tx + square] = (1.0, 0.8, 0.2)
        centres[i] = (np.array([ty, tx]) + (square - 1) / 2) / (side - 1) * 2 - 1
    return (tf.constant(source), tf.constant(target)), centres


def test_a_keypoint_learns_to_follow_a_moving_square():
    """The method end to end: reconstruction alone must pull the keypoint onto the only moving object. With layer
    norm this happens within 100-200 steps for seeds 0-2 (scratch runs); an untrained keypoint is nowhere near."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    config = tiny_config(
        num_keypoints=1, image_shape=(32, 32, 3), input_size=32, filters=(8, 8, 16, 16), norm="layer", sigma=0.15
    )
    model = _compiled(config, lr=2e-3)
    held_out, centres = _square_pairs(np.random.default_rng(99), 64)

    def distances():
        keypoints = model(held_out)["target_keypoints"].numpy()[:, 0]
        return np.linalg.norm(keypoints - centres, axis=-1)

    assert np.mean(distances() < 0.15) < 0.3
    step = tf.function(model.train_step)
    for _ in range(300):
        step(_square_pairs(rng, 16)[0])
    assert np.mean(distances() < 0.15) > 0.9, np.median(distances())


def test_eager_and_compiled_steps_agree():
    """One SGD step, eager and compiled, from the same weights: the losses and the weight change agree to 1e-3
    relative (the change's error in norm over its norm). With SGD the change is lr * gradient, so the bound is
    float32's, not one CPU's: kernels only reorder sums of up to ~1e4 terms (rounding error under n * 6e-8 ~ 6e-4 of
    the sum's scale). Adam's first step, about lr * sign(g), would move a weight whose gradient is rounding noise +lr on
    one kernel and -lr on another (tests/permakey/test_model.py has the same test)."""
    eager, compiled = build_transporter(tiny_config()), build_transporter(tiny_config())
    for model in (eager, compiled):
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    compiled.set_weights(eager.get_weights())
    groups = ("trainable_weights", "non_trainable_weights")
    before = {group: [v.numpy() for v in getattr(eager, group)] for group in groups}
    pair = _pair()
    a = float(eager.train_step(pair)["loss"])
    b = float(tf.function(compiled.train_step)(pair)["loss"])
    assert a == pytest.approx(b, rel=1e-3)
    for group, start in before.items():
        change_a, change_b = (
            np.concatenate([(v.numpy() - s).ravel() for v, s in zip(getattr(model, group), start, strict=True)])
            for model in (eager, compiled)
        )
        assert np.linalg.norm(change_a) > 0, f"the step left the {group} unchanged"
        assert np.linalg.norm(change_a - change_b) <= 1e-3 * np.linalg.norm(change_a), group


def test_paper_architecture_resizes_to_128_and_gives_32x32_maps():
    config = tiny_config(
        input_size=128, filters=(4, 4, 4, 4, 8, 8), kernels=(7, 3, 3, 3, 3, 3), strides=(1, 1, 2, 1, 2, 1)
    )
    model = build_transporter(config)
    out = model(_pair(n=2))
    assert out["target_heatmaps"].shape == (2, 32, 32, 3)
    assert out["reconstruction"].shape == (2, 84, 84, 3)


def test_save_then_load_gives_identical_keypoints(tmp_path):
    model = _compiled(tiny_config())
    model.train_step(_pair())
    keypointer = TransporterKeypointer(model)
    keypointer.save(tmp_path / "kp")
    loaded = TransporterKeypointer.load(tmp_path / "kp")
    frames = _pair(seed=1)[0]
    a, b = keypointer(frames), loaded(frames)
    np.testing.assert_array_equal(a.coordinates.numpy(), b.coordinates.numpy())
    np.testing.assert_array_equal(a.heatmaps.numpy(), b.heatmaps.numpy())
    assert a.features.shape == (4, 42, 42, 8) and a.heatmaps.shape == (4, 42, 42, 3)


def test_bad_input_gets_clear_errors(tmp_path):
    model = build_transporter(tiny_config())
    source, target = _pair()
    with pytest.raises(ValueError, match="pair"):
        model(source)
    with pytest.raises(ValueError, match=r"target frames must be \[B, 84, 84, 3\]"):
        model((source, tf.zeros((4, 64, 64, 3))))
    with pytest.raises(ValueError, match="differ in size"):
        model((source, target[:2]))
    with pytest.raises(ValueError, match="K"):
        tiny_config(num_keypoints=0)
    with pytest.raises(ValueError, match="transport"):
        tiny_config(model="imm", transport="pixels")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nothing")):
        TransporterKeypointer.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="permakey"):
        TransporterKeypointer(model).save(tmp_path / "kp")
        (tmp_path / "kp" / "keypointer.json").write_text('{"kind": "permakey", "config": {}}')
        TransporterKeypointer.load(tmp_path / "kp")


def test_config_fields_round_trip():
    config = tiny_config()
    assert TransporterConfig(**dataclasses.asdict(config)) == config


@pytest.mark.parametrize("changes", [{}, {"model": "imm"}, {"transport": "pixels"}])
def test_mixed_bfloat16_runs_and_keeps_float32_outputs(changes):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = _compiled(tiny_config(**changes))
        loss = float(model.train_step(_pair(n=2))["loss"])
        out = model(_pair(n=2))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(loss)
    assert out["reconstruction"].dtype == tf.float32 and out["target_keypoints"].dtype == tf.float32


def test_building_by_one_call_makes_the_variables_keras_own_build_makes():
    """build_transporter skips Keras's symbolic trace of the containers (keypoints.networks.build_by_calling): the
    same variables, in the same order, with the same initial values as a plain first call."""
    from transporter.model import Transporter

    config = tiny_config()
    zeros = tf.zeros((1, *config.image_shape))
    keras.utils.set_random_seed(3)
    plain = Transporter(config)
    plain((zeros, zeros), training=False)
    keras.utils.set_random_seed(3)
    fast = build_transporter(config)
    assert_same_weights(fast, plain)
