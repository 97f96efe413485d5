"""PermaKey's spatial feature embedding: a convolutional VAE (seed 002, section 2 "Spatial Feature Embedding" and
Appendix A.2.1).

Encoder: Conv-BN-ReLU layers (paper: kernels [4, 3, 3, 3], filters [32, 64, 64, 128], strides [1, 2, 2, 1], so maps of
84, 42, 21, 21 for an 84x84 frame), then a dense layer to a Gaussian posterior over a global latent (32-d). Its
per-layer activations are the features the local spatial prediction networks work on.
Decoder: the transpose of the encoder with 2x bilinear upsampling where the encoder strided.
Loss: the negative ELBO with a Gaussian likelihood of fixed scale and a standard normal prior, through
tensorflow-probability distributions; the authors' code instead weights the per-pixel MSE by 1/0.2 against the summed
KL, which corresponds to a likelihood scale of sqrt(0.1) per pixel averaged, and is not our default.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keypoints.networks import conv_stack, track_for_checkpoints, transposed_stack

tfd = tfp.distributions


class Encoder(keras.layers.Layer):
    """Conv-BN-ReLU stack that returns every layer's activation.

    Returns: list of [B, H_l, W_l, filters[l]] activations, one per layer.
    """

    def __init__(self, filters: Sequence[int], kernels: Sequence[int], strides: Sequence[int], norm: str, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [
            conv_stack([f], [k], [s], norm, name=f"encoder_{i}")
            for i, (f, k, s) in enumerate(zip(filters, kernels, strides, strict=True))
        ]
        track_for_checkpoints(self, self.blocks)

    def call(self, images: tf.Tensor, training: bool = False) -> list[tf.Tensor]:
        activations = []
        x = images
        for block in self.blocks:
            x = block(x, training=training)
            activations.append(x)
        return activations


class VAE(keras.layers.Layer):
    """Convolutional VAE with a global Gaussian latent.

    call(images [B, 84, 84, 3] in [0, 1]) returns a dict:
      activations: list of encoder activations per layer.
      reconstruction: [B, 84, 84, 3] decoder mean in [0, 1] (sigmoid), from a posterior sample when training and
        from the posterior mean otherwise.
      loc, scale: [B, latent] posterior parameters.
    """

    def __init__(
        self,
        filters: Sequence[int],
        kernels: Sequence[int],
        strides: Sequence[int],
        latent_dim: int,
        norm: str,
        image_shape: Sequence[int],
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = Encoder(filters, kernels, strides, norm, name="encoder")
        self.posterior = keras.layers.Dense(2 * latent_dim, name="posterior")
        reduction = 1
        for s in strides:
            reduction *= s
        self._bottleneck_shape = (image_shape[0] // reduction, image_shape[1] // reduction, filters[-1])
        h, w, c = self._bottleneck_shape
        self.expand = keras.layers.Dense(h * w * c, activation="relu", name="expand")
        self.decoder = transposed_stack(filters, kernels, strides, image_shape[2], norm, name="decoder")
        self.latent_dim = latent_dim
        self.noise = keras.random.SeedGenerator(0)

    def call(self, images: tf.Tensor, training: bool = False) -> dict:
        activations = self.encoder(images, training=training)
        h, w, c = self._bottleneck_shape
        flat = tf.reshape(activations[-1], (-1, h * w * c))
        params = tf.cast(self.posterior(flat), tf.float32)
        loc, raw_scale = tf.split(params, 2, axis=-1)
        scale = tf.nn.softplus(raw_scale) + 1e-4
        z = loc + scale * keras.random.normal(tf.shape(loc), seed=self.noise) if training else loc
        bottleneck = tf.reshape(self.expand(tf.cast(z, self.compute_dtype)), (-1, h, w, c))
        reconstruction = tf.sigmoid(tf.cast(self.decoder(bottleneck, training=training), tf.float32))
        return {"activations": activations, "reconstruction": reconstruction, "loc": loc, "scale": scale}


def negative_elbo(
    images: tf.Tensor, reconstruction: tf.Tensor, loc: tf.Tensor, scale: tf.Tensor, likelihood_scale: float
) -> tf.Tensor:
    """-ELBO per pixel, averaged over the batch (equation 1): -E_q[log p(x|z)] + KL(q(z|x) || N(0, I)), divided by the
    number of pixel values so the number reads the same for any image size. Returns a float32 scalar."""
    images = tf.cast(images, tf.float32)
    likelihood = tfd.Independent(tfd.Normal(reconstruction, likelihood_scale), reinterpreted_batch_ndims=3)
    posterior = tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)
    prior = tfd.Independent(tfd.Normal(tf.zeros_like(loc), 1.0), reinterpreted_batch_ndims=1)
    nll = -likelihood.log_prob(images)
    kl = tfd.kl_divergence(posterior, prior)
    pixels = tf.cast(tf.reduce_prod(tf.shape(images)[1:]), tf.float32)
    return tf.reduce_mean(nll + kl) / pixels
