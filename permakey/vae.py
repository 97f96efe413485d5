"""PermaKey's spatial feature embedding: a convolutional VAE (Gopalakrishnan et al., ICLR 2021, section 2 "Spatial
Feature Embedding", equation 1, and Appendix A.2.1).

Encoder: Conv-BN-ReLU layers (paper: kernels [4, 3, 3, 3], filters [32, 64, 64, 128], strides [1, 2, 2, 1], so maps of
84, 42, 21, 21 for an 84x84 frame), then a dense layer to a Gaussian posterior over a global latent (32-d). Its
per-layer activations are the features the local spatial prediction networks work on.
Decoder (`decoder`): "paper", the transpose of the encoder with 2x bilinear upsampling where the encoder strided (the
paper's words); "authors", the authors' code's (agopal42/permakey, last commit, vision_module.py ConvDecoder): a dense
layer from the latent to one 21x21 map, then six convolutions 128, 64, 64, 32, 16 (kernel 3, 3, 3, 3, 4) and 3
(kernel 4), each with the model's normalisation, ReLU after all but the last, 2x nearest upsampling after the first
two, a sigmoid after the last one's normalisation.
Loss (`vae_loss`): "elbo", the negative ELBO of equation 1 per pixel value, with a Gaussian likelihood of fixed scale
and a standard normal prior, through tensorflow-probability distributions; "authors", the authors' code's weighting:
the per-pixel mean of (x - x')^2 / (2 scale^2) plus the KL summed over the latent dimensions, which weights the KL
pixels-times (84 * 84 * 3) more against the likelihood than the ELBO does.
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


DECODERS = ("paper", "authors")
VAE_LOSSES = ("elbo", "authors")

AUTHORS_DECODER = ((128, 3), (64, 3), (64, 3), (32, 3), (16, 4))
"""(filters, kernel) of the authors' decoder's hidden convolutions, in order; 2x nearest upsampling follows the first
two (the authors' code, vision_module.py ConvDecoder)."""


def authors_decoder(image_shape: Sequence[int], norm: str, name: str) -> keras.Sequential:
    """The authors' code's decoder: latent [B, D] -> [B, H, W, C] pre-sigmoid logits. A ReLU dense layer to one map of
    a quarter of the image's size, the AUTHORS_DECODER convolutions (normalisation, ReLU), a last convolution of
    kernel 4 to C channels with a normalisation and no ReLU (the sigmoid follows in VAE.call)."""
    h, w, channels = image_shape[0] // 4, image_shape[1] // 4, image_shape[2]
    layers: list[keras.layers.Layer] = [
        keras.layers.Dense(h * w, activation="relu", name=f"{name}_dense"),
        keras.layers.Reshape((h, w, 1), name=f"{name}_map"),
    ]
    for i, (filters, kernel) in enumerate(AUTHORS_DECODER):
        layers.extend(conv_stack([filters], [kernel], [1], norm, name=f"{name}_{i}").layers)
        if i < 2:
            layers.append(keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up{i}"))
    last = conv_stack([channels], [4], [1], norm, name=f"{name}_out").layers[:-1]  # its ReLU dropped
    return keras.Sequential(layers + last, name=name)


class VAE(keras.layers.Layer):
    """Convolutional VAE with a global Gaussian latent.

    call(images [B, 84, 84, 3] in [0, 1]) returns a dict:
      activations: list of encoder activations per layer.
      reconstruction: [B, 84, 84, 3] decoder mean in [0, 1] (sigmoid), from a posterior sample when training and
        from the posterior mean otherwise.
      loc, scale: [B, latent] posterior parameters.
    `decoder` (DECODERS): "paper" (the encoder's transpose) or "authors" (`authors_decoder`).
    """

    def __init__(
        self,
        filters: Sequence[int],
        kernels: Sequence[int],
        strides: Sequence[int],
        latent_dim: int,
        norm: str,
        image_shape: Sequence[int],
        decoder: str = "paper",
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
        self.expand: keras.layers.Dense | None = None  # the paper's decoder's dense layer to the bottleneck map
        if decoder == "authors":
            self.decoder = authors_decoder(image_shape, norm, name="decoder")
        else:  # the same layers, in the same order, as before the option: saved weights load
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
        decoder_input = tf.cast(z, self.compute_dtype)
        if self.expand is not None:
            decoder_input = tf.reshape(self.expand(decoder_input), (-1, h, w, c))
        reconstruction = tf.sigmoid(tf.cast(self.decoder(decoder_input, training=training), tf.float32))
        return {"activations": activations, "reconstruction": reconstruction, "loc": loc, "scale": scale}


def _kl(loc: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """[B] KL(q(z|x) || N(0, I)), summed over the latent dimensions."""
    posterior = tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)
    prior = tfd.Independent(tfd.Normal(tf.zeros_like(loc), 1.0), reinterpreted_batch_ndims=1)
    return tfd.kl_divergence(posterior, prior)


def negative_elbo(
    images: tf.Tensor, reconstruction: tf.Tensor, loc: tf.Tensor, scale: tf.Tensor, likelihood_scale: float
) -> tf.Tensor:
    """-ELBO per pixel, averaged over the batch (equation 1): -E_q[log p(x|z)] + KL(q(z|x) || N(0, I)), divided by the
    number of pixel values so the number reads the same for any image size. Returns a float32 scalar."""
    images = tf.cast(images, tf.float32)
    likelihood = tfd.Independent(tfd.Normal(reconstruction, likelihood_scale), reinterpreted_batch_ndims=3)
    nll = -likelihood.log_prob(images)
    pixels = tf.cast(tf.reduce_prod(tf.shape(images)[1:]), tf.float32)
    return tf.reduce_mean(nll + _kl(loc, scale)) / pixels


def authors_vae_loss(
    images: tf.Tensor, reconstruction: tf.Tensor, loc: tf.Tensor, scale: tf.Tensor, likelihood_scale: float
) -> tf.Tensor:
    """The authors' code's VAE loss (ul_loss.py nll_gaussian and pkey_loss), averaged over the batch: the mean over
    pixel values of (x - x')^2 / (2 scale^2), no constant, plus the KL summed over the latent dimensions. With their
    variance 0.1 (scale sqrt(0.1)): 5 x the per-pixel MSE + the summed KL. Returns a float32 scalar."""
    squared = tf.reduce_mean(tf.square(reconstruction - tf.cast(images, tf.float32)), axis=[1, 2, 3])
    return tf.reduce_mean(squared / (2.0 * likelihood_scale**2) + _kl(loc, scale))


def vae_loss(
    form: str, images: tf.Tensor, reconstruction: tf.Tensor, loc: tf.Tensor, scale: tf.Tensor, likelihood_scale: float
) -> tf.Tensor:
    """The VAE's loss of `form` (VAE_LOSSES): "elbo" `negative_elbo`, "authors" `authors_vae_loss`."""
    loss = authors_vae_loss if form == "authors" else negative_elbo
    return loss(images, reconstruction, loc, scale, likelihood_scale)
