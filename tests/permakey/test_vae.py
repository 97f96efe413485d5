import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from permakey.keypointer import build_permakey
from permakey.vae import authors_decoder, authors_vae_loss, negative_elbo, vae_loss
from tests.permakey.conftest import tiny_config


def _layer_outputs(decoder: keras.Sequential, latent: int) -> list[tuple[str, tuple[int, ...]]]:
    x = tf.zeros((2, latent))
    shapes = []
    for layer in decoder.layers:
        x = layer(x)
        shapes.append((type(layer).__name__, tuple(x.shape[1:])))
    return shapes


def test_authors_decoder_has_their_layers_and_shapes():
    """The authors' code's ConvDecoder (vision_module.py): Dense 32 -> 21x21x1 (ReLU), convolutions 128, 64, 64, 32
    (kernel 3), 16 and 3 (kernel 4) each with BatchNorm, nearest 2x upsampling after the first two, ReLU after all but
    the last, whose BatchNorm comes right before the sigmoid."""
    decoder = authors_decoder((84, 84, 3), "batch", name="decoder")
    shapes = _layer_outputs(decoder, 32)
    block = ["Conv2D", "BatchNormalization", "ReLU"]
    assert [name for name, _ in shapes] == (
        ["Dense", "Reshape"] + block + ["UpSampling2D"] + block + ["UpSampling2D"] + block * 3 + block[:2]
    )
    conv_outputs = [shape for name, shape in shapes if name == "Conv2D"]
    assert conv_outputs == [(21, 21, 128), (42, 42, 64), (84, 84, 64), (84, 84, 32), (84, 84, 16), (84, 84, 3)]
    assert shapes[0][1] == (21 * 21,) and shapes[1][1] == (21, 21, 1)
    kernels = [tuple(layer.kernel.shape) for layer in decoder.layers if isinstance(layer, keras.layers.Conv2D)]
    assert kernels == [(3, 3, 1, 128), (3, 3, 128, 64), (3, 3, 64, 64), (3, 3, 64, 32), (4, 4, 32, 16), (4, 4, 16, 3)]
    ups = [layer.interpolation for layer in decoder.layers if isinstance(layer, keras.layers.UpSampling2D)]
    assert ups == ["nearest", "nearest"]
    assert decoder.layers[0].kernel.shape == (32, 441)


def test_a_model_with_the_authors_decoder_reconstructs_frames():
    model = build_permakey(tiny_config(decoder="authors"))
    assert model.vae.expand is None
    reconstruction = model(tf.random.uniform((2, 84, 84, 3), seed=0), training=True)["reconstruction"]
    assert reconstruction.shape == (2, 84, 84, 3)
    assert 0 <= float(tf.reduce_min(reconstruction)) and float(tf.reduce_max(reconstruction)) <= 1


def _tiny_example():
    """Two 2x2x1 images reconstructed 0.1 off everywhere (MSE 0.01); posteriors N((1, 0), I) and N((0, 0), I): KLs
    0.5 and 0, mean 0.25."""
    images = tf.fill((2, 2, 2, 1), 0.5)
    reconstruction = images + 0.1
    loc = tf.constant([[1.0, 0.0], [0.0, 0.0]])
    return images, reconstruction, loc, tf.ones((2, 2))


def test_elbo_is_equation_1_per_pixel_with_the_authors_variance():
    """Variance 0.1 (scale sqrt(0.1)): per pixel value 0.01 / 0.2 = 0.05 plus the Gaussian's constant
    0.5 log(2 pi 0.1), plus the mean KL over the 4 pixel values."""
    want = 0.05 + 0.5 * math.log(2 * math.pi * 0.1) + 0.25 / 4
    assert float(negative_elbo(*_tiny_example(), likelihood_scale=0.1**0.5)) == pytest.approx(want, rel=1e-5)
    # scale 0.1 (the quick preset): 50 x the MSE
    want = 0.5 + 0.5 * math.log(2 * math.pi * 0.01) + 0.25 / 4
    assert float(negative_elbo(*_tiny_example(), likelihood_scale=0.1)) == pytest.approx(want, rel=1e-5)


def test_authors_loss_is_5_mse_plus_the_summed_kl():
    """ul_loss.py: mean((x - x')^2) / (2 * 0.1) + KL summed over the latent: 5 * 0.01 + 0.25, no constant; the KL
    weighs pixels-times (4 here) more than in the ELBO per pixel."""
    assert float(authors_vae_loss(*_tiny_example(), likelihood_scale=0.1**0.5)) == pytest.approx(0.3, rel=1e-5)
    assert float(vae_loss("authors", *_tiny_example(), likelihood_scale=0.1**0.5)) == pytest.approx(0.3, rel=1e-5)
    elbo = float(vae_loss("elbo", *_tiny_example(), likelihood_scale=0.1**0.5))
    assert elbo == pytest.approx(float(negative_elbo(*_tiny_example(), likelihood_scale=0.1**0.5)))


def test_the_models_vae_loss_follows_its_config():
    frames = tf.random.uniform((2, 84, 84, 3), seed=0)
    losses = {}
    for form in ("elbo", "authors"):
        keras.utils.set_random_seed(0)
        model = build_permakey(tiny_config(vae_loss=form, likelihood_scale=0.1**0.5))
        out = model(frames)
        losses[form] = float(model.module_losses(frames, out)["vae"])
        mse = float(tf.reduce_mean(tf.square(out["reconstruction"] - frames)))
        kl = float(tf.reduce_mean(tf.reduce_sum(0.5 * (out["scale"] ** 2 + out["loc"] ** 2 - 1), -1)))
        kl -= float(tf.reduce_mean(tf.reduce_sum(tf.math.log(out["scale"]), -1)))
        pixels = 84 * 84 * 3
        want = 5 * mse + (kl if form == "authors" else 0.5 * math.log(2 * math.pi * 0.1) + kl / pixels)
        np.testing.assert_allclose(losses[form], want, rtol=1e-4)
