import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from permakey.keypointer import PermaKeyKeypointer, build_permakey
from permakey.model import MODULES
from tests.conftest import assert_same_weights
from tests.permakey.conftest import tiny_config


def _frames(seed=0, n=4):
    rng = np.random.default_rng(seed)
    frames = np.zeros((n, 84, 84, 3), np.float32)
    for i in range(n):  # a few bright squares on a dark background: something to find
        for _ in range(3):
            y, x = rng.integers(0, 76, 2)
            frames[i, y : y + 8, x : x + 8] = rng.random(3)
    return tf.constant(frames)


def _compiled(config, lr=1e-3):
    model = build_permakey(config)
    model.compile(optimizers={name: keras.optimizers.Adam(lr) for name in MODULES})
    return model


def test_outputs_have_the_documented_shapes(config):
    out = build_permakey(config)(_frames())
    assert out["keypoints"].shape == (4, 3, 2)
    assert out["heatmaps"].shape == (4, 21, 21, 3)
    assert out["error_maps"].shape == (4, 84, 84, 2)
    assert out["reconstruction"].shape == (4, 84, 84, 3)
    keypoints = out["keypoints"].numpy()
    assert (np.abs(keypoints) <= 1).all()
    maps = out["error_maps"].numpy()
    assert maps.min() >= 0 and maps.max() <= 1


def test_heatmaps_of_the_paper_era_variant_are_42x42():
    out = build_permakey(tiny_config(pointnet_strides=(1, 1, 2, 1)))(_frames())
    assert out["heatmaps"].shape == (4, 42, 42, 3)


@pytest.mark.parametrize("options", [{}, {"decoder": "authors", "vae_loss": "authors", "lspn_norm": "batch"}])
def test_no_module_receives_gradient_from_another_modules_loss(options):
    model = build_permakey(tiny_config(**options))
    frames = _frames()
    with tf.GradientTape(persistent=True) as tape:
        losses = model.module_losses(frames, model(frames, training=True))
    variables = model.module_variables()
    for loss_name in MODULES:
        for module in MODULES:
            grads = tape.gradient(losses[loss_name], variables[module])
            if module == loss_name:
                assert any(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)
            else:
                assert all(g is None for g in grads), f"{loss_name} loss reaches {module}"


def test_every_loss_goes_down_on_tiny_data(config):
    model = _compiled(config)
    frames = _frames()
    step = tf.function(model.train_step)
    first = {k: float(v) for k, v in step(frames).items()}
    for _ in range(30):
        for tracker in model.metrics:
            tracker.reset_state()
        last = {k: float(v) for k, v in step(frames).items()}
    for name in MODULES:
        assert last[f"{name}_loss"] < first[f"{name}_loss"], (name, first, last)


def test_eager_and_compiled_steps_agree(config):
    """One SGD step, eager and compiled, from the same weights: the losses and each module's weight change agree to
    1e-3 relative (a change's error in norm, over the change's norm). With SGD a change is lr * gradient, so the bound
    is float32's: kernels (oneDNN or not, AVX-512/AMX or not) only reorder sums of up to ~1e4 terms, whose rounding
    error stays under n * 6e-8 ~ 6e-4 of the sum's scale; measured 1e-5 between TF_ENABLE_ONEDNN_OPTS=0 and =1.
    Adam would break this: its first step is lr * g / (|g| + eps), about lr * sign(g), so a weight whose gradient is
    rounding noise moves +lr on one kernel and -lr on another."""
    eager, compiled = (build_permakey(config) for _ in range(2))
    for model in (eager, compiled):
        model.compile(optimizers={name: keras.optimizers.SGD(0.1) for name in MODULES})
    compiled.set_weights(eager.get_weights())

    def groups(model):
        return {**model.module_variables(), "non-trainable": model.non_trainable_weights}

    before = {name: [v.numpy() for v in variables] for name, variables in groups(eager).items()}
    frames = _frames()
    a = eager.train_step(frames)
    b = tf.function(compiled.train_step)(frames)
    for name in a:
        assert float(a[name]) == pytest.approx(float(b[name]), rel=1e-3), name
    for name, start in before.items():
        if not start:
            continue
        change_a = np.concatenate([(v.numpy() - s).ravel() for v, s in zip(groups(eager)[name], start, strict=True)])
        change_b = np.concatenate([(v.numpy() - s).ravel() for v, s in zip(groups(compiled)[name], start, strict=True)])
        assert np.linalg.norm(change_a) > 0, f"the step left {name} unchanged"
        assert np.linalg.norm(change_a - change_b) <= 1e-3 * np.linalg.norm(change_a), name


def test_save_then_load_gives_identical_keypoints(config, tmp_path):
    model = _compiled(config)
    model.train_step(_frames())
    keypointer = PermaKeyKeypointer(model)
    keypointer.save(tmp_path / "kp")
    loaded = PermaKeyKeypointer.load(tmp_path / "kp")
    frames = _frames(seed=1)
    a, b = keypointer(frames), loaded(frames)
    np.testing.assert_array_equal(a.coordinates.numpy(), b.coordinates.numpy())
    np.testing.assert_array_equal(a.heatmaps.numpy(), b.heatmaps.numpy())
    assert a.features.shape == (4, 21, 21, 8) and a.heatmaps.shape == (4, 21, 21, 3)


def test_keypointer_accepts_uint8_and_rejects_bad_frames(config):
    keypointer = PermaKeyKeypointer(build_permakey(config))
    frames = (_frames().numpy() * 255).astype(np.uint8)
    np.testing.assert_allclose(
        keypointer(frames).coordinates.numpy(), keypointer(frames / 255.0).coordinates.numpy(), atol=1e-5
    )
    with pytest.raises(ValueError, match=r"\[B, 84, 84, 3\]"):
        keypointer(np.zeros((2, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="divide uint8 frames by 255"):
        keypointer(frames.astype(np.float32))


def test_model_rejects_wrong_frame_shape(config):
    with pytest.raises(ValueError, match=r"\[B, 84, 84, 3\]"):
        build_permakey(config)(tf.zeros([1, 84, 84, 1]))


def test_bad_configs_are_refused(config):
    with pytest.raises(ValueError, match="K"):
        dataclasses.replace(config, num_keypoints=0)
    with pytest.raises(ValueError, match="encoder has layers 0..3"):
        dataclasses.replace(config, lspn_layers=(0, 4))
    with pytest.raises(ValueError, match="error_metric"):
        dataclasses.replace(config, error_metric="mae")
    with pytest.raises(ValueError, match="sigma"):
        dataclasses.replace(config, sigma=0.0)
    for name in ("decoder", "vae_loss", "lspn_norm"):
        with pytest.raises(ValueError, match=name):
            dataclasses.replace(config, **{name: "mine"})
    with pytest.raises(ValueError, match="divisible by 4"):
        dataclasses.replace(config, decoder="authors", image_shape=(82, 82, 3), encoder_strides=(1, 1, 1, 1))


def test_missing_keypointer_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nothing")):
        PermaKeyKeypointer.load(tmp_path / "nothing")


def test_a_keypointer_saved_before_the_authors_options_loads_with_the_old_behaviour(config, tmp_path):
    """keypointer.json files written before decoder, vae_loss and lspn_norm existed lack them: they load as the
    paper's decoder, the ELBO and no LSPN normalisation, the model they were trained as."""
    model = _compiled(config)
    model.train_step(_frames())
    PermaKeyKeypointer(model).save(tmp_path / "kp")
    path = tmp_path / "kp" / "keypointer.json"
    saved = json.loads(path.read_text())
    for name in ("decoder", "vae_loss", "lspn_norm"):
        del saved["config"][name]
    path.write_text(json.dumps(saved))
    loaded = PermaKeyKeypointer.load(tmp_path / "kp")
    assert (loaded.config.decoder, loaded.config.vae_loss, loaded.config.lspn_norm) == ("paper", "elbo", "none")
    frames = _frames(seed=1)
    np.testing.assert_array_equal(loaded(frames).coordinates.numpy(), PermaKeyKeypointer(model)(frames).coordinates)


def test_the_authors_options_save_and_load(tmp_path):
    config = tiny_config(decoder="authors", vae_loss="authors", lspn_norm="batch")
    model = _compiled(config)
    model.train_step(_frames())
    PermaKeyKeypointer(model).save(tmp_path / "kp")
    loaded = PermaKeyKeypointer.load(tmp_path / "kp")
    assert loaded.config == config
    frames = _frames(seed=1)
    np.testing.assert_array_equal(loaded(frames).coordinates.numpy(), PermaKeyKeypointer(model)(frames).coordinates)
    np.testing.assert_array_equal(
        loaded.reconstructions(frames).numpy(), PermaKeyKeypointer(model).reconstructions(frames).numpy()
    )


def test_validation_reports_the_lspn_and_pointnet_losses_sum(config):
    """val_lsp_pointnet_loss: what the authors' code's early stopping watched (pkey_train.py evaluate)."""
    model = _compiled(config)
    logs = {name: float(value) for name, value in model.test_step(_frames()).items()}
    assert logs["lsp_pointnet_loss"] == pytest.approx(logs["lspn_loss"] + logs["pointnet_loss"], rel=1e-6)
    assert logs["total_loss"] == pytest.approx(logs["lsp_pointnet_loss"] + logs["vae_loss"], rel=1e-6)


@pytest.mark.parametrize("decoder", ["paper", "authors"])
def test_building_by_one_call_makes_the_variables_keras_own_build_makes(config, decoder):
    """build_permakey skips Keras's symbolic trace of the containers (keypoints.networks.build_by_calling): the same
    variables, in the same order, with the same initial values as a plain first call."""
    from permakey.model import PermaKey

    config = dataclasses.replace(config, decoder=decoder)
    keras.utils.set_random_seed(3)
    plain = PermaKey(config)
    plain(tf.zeros((1, *config.image_shape)), training=False)
    keras.utils.set_random_seed(3)
    fast = build_permakey(config)
    assert_same_weights(fast, plain)
    assert fast.built and fast.vae.built and fast.pointnet.built and all(lspn.built for lspn in fast.lspns)
