"""The PermaKey model: VAE, layer-wise LSPNs and PointNet trained at once, each only on its own loss (Gopalakrishnan et
al., ICLR 2021, section 2 and Appendix A.2.1).

No gradient flows between modules (the paper: "We do not backpropagate gradients between modules"): the LSPNs see the
encoder's activations and PointNet the error maps through stop_gradient. Each module has its own optimizer and
learning-rate schedule (the authors' code shared one Adam across modules, which advanced its schedule 4x too fast).
Validation reports every module's loss, their sum (`total`) and the LSPN and PointNet losses' sum (`lsp_pointnet`, what
the authors' code's early stopping watched; the paper does not say which loss).
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from keypoints.networks import track_for_checkpoints
from permakey.lspn import (
    ERROR_METRICS,
    ERROR_NORMALISATIONS,
    LSPN,
    LSPN_NORMS,
    error_map,
    prediction_loss,
    stack_error_maps,
)
from permakey.pointnet import PointNet, shuffled_window_loss, window_loss
from permakey.vae import DECODERS, VAE, VAE_LOSSES, vae_loss

MODULES = ("vae", "lspn", "pointnet")
LOSSES = (*MODULES, "total", "lsp_pointnet", "pointnet_shuffled")
"""Every loss the model reports as f"{name}_loss" (Keras prefixes validation's with val_): each module's, their sum,
the LSPN and PointNet losses' sum, and PointNet's loss with another frame's keypoints (a health check, not a loss)."""


@dataclasses.dataclass(frozen=True)
class PermaKeyConfig:
    num_keypoints: int
    image_shape: tuple[int, int, int]
    encoder_filters: tuple[int, ...]
    encoder_kernels: tuple[int, ...]
    encoder_strides: tuple[int, ...]
    latent_dim: int
    likelihood_scale: float
    norm: str
    lspn_layers: tuple[int, ...]
    patch: int
    lspn_hidden: tuple[int, ...]
    lspn_extra_hidden_layer: bool
    error_metric: str
    pointnet_strides: tuple[int, ...]
    """PointNet uses the encoder's filters and kernels; strides [1, 2, 2, 1] (the paper: "the same encoder
    architecture") give 21x21 heatmaps, [1, 1, 2, 1] the paper-era code's 42x42."""
    sigma: float
    error_normalisation: str = "activation"
    """How a cell's error is made relative to activation scale (permakey.lspn.error_map); "activation": the paper's."""
    pointnet_coordinates: bool = False
    """Off the paper: PointNet also sees each pixel's (y, x) (permakey.pointnet.with_coordinates); False: paper."""
    decoder: str = "paper"
    """The VAE's decoder (permakey.vae.DECODERS): "paper", the encoder's transpose (Appendix A.2.1); "authors", the
    authors' code's."""
    vae_loss: str = "elbo"
    """The VAE's loss (permakey.vae.VAE_LOSSES): "elbo", equation 1 per pixel; "authors", the authors' code's
    weighting (per-pixel mean likelihood term + summed KL)."""
    lspn_norm: str = "none"
    """Normalisation of the LSPN MLPs' hidden layers (permakey.lspn.LSPN_NORMS): "batch", the authors' code; "none",
    the default of keypointers saved before the option (the paper is silent)."""

    def __post_init__(self) -> None:
        if self.num_keypoints < 1:
            raise ValueError(f"num_keypoints (K) must be >= 1, got {self.num_keypoints}.")
        n = len(self.encoder_filters)
        if not (len(self.encoder_kernels) == len(self.encoder_strides) == len(self.pointnet_strides) == n):
            raise ValueError(
                "encoder_filters, encoder_kernels, encoder_strides and pointnet_strides need equal length."
            )
        if not self.lspn_layers or any(not 0 <= layer < n for layer in self.lspn_layers):
            raise ValueError(
                f"lspn_layers {list(self.lspn_layers)} must name encoder layers; the encoder has layers 0..{n - 1}."
            )
        for layer, size in zip(self.lspn_layers, self.layer_sizes(), strict=True):
            if size[0] % self.patch or size[1] % self.patch:
                raise ValueError(f"Encoder layer {layer} maps are {size}, not divisible by patch {self.patch}.")
        if self.error_metric not in ERROR_METRICS:
            raise ValueError(f"error_metric must be one of {ERROR_METRICS}, got {self.error_metric!r}.")
        if self.error_normalisation not in ERROR_NORMALISATIONS:
            raise ValueError(
                f"error_normalisation must be one of {ERROR_NORMALISATIONS}, got {self.error_normalisation!r}."
            )
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}.")
        self.check_options()

    def check_options(self) -> None:
        """The named choices (decoder, vae_loss, lspn_norm) are known ones; the authors' decoder starts from a
        quarter-size map, so it needs an image size divisible by 4."""
        for name, value, known in (
            ("decoder", self.decoder, DECODERS),
            ("vae_loss", self.vae_loss, VAE_LOSSES),
            ("lspn_norm", self.lspn_norm, LSPN_NORMS),
        ):
            if value not in known:
                raise ValueError(f"{name} must be one of {known}, got {value!r}.")
        if self.decoder == "authors" and (self.image_shape[0] % 4 or self.image_shape[1] % 4):
            raise ValueError(f"decoder='authors' needs image sides divisible by 4, got {self.image_shape[:2]}.")

    def layer_sizes(self) -> list[tuple[int, int]]:
        """Spatial sizes of the chosen encoder layers' maps."""
        sizes, h, w = [], self.image_shape[0], self.image_shape[1]
        for stride in self.encoder_strides:
            h, w = -(-h // stride), -(-w // stride)
            sizes.append((h, w))
        return [sizes[layer] for layer in self.lspn_layers]


def paper_config(num_keypoints: int) -> PermaKeyConfig:
    """PermaKey as the paper gives it (Appendix A.2.1), the authors' final code where the paper is silent
    (docs/method.md section 3): the one place these values are written. The Sacred paper preset, bench/ and the tests
    start from it; other presets are differences from it."""
    return PermaKeyConfig(
        num_keypoints=num_keypoints,
        image_shape=(84, 84, 3),
        encoder_filters=(32, 64, 64, 128),
        encoder_kernels=(4, 3, 3, 3),
        encoder_strides=(1, 2, 2, 1),
        latent_dim=32,
        likelihood_scale=0.1**0.5,  # the authors' code's likelihood variance 0.1; the paper gives none
        norm="batch",
        lspn_layers=(0, 1),
        patch=2,
        lspn_hidden=(512, 256),
        lspn_extra_hidden_layer=False,  # the authors' code's extra first hidden layer of width 8p^2C
        lspn_norm="batch",  # BatchNorm after each hidden Dense: the authors' code (the paper is silent)
        error_metric="mse",  # the authors' final code; the paper names none ("rmse": their code at the paper's time)
        error_normalisation="activation",  # the authors' / (mean activation + 1e-3)
        pointnet_strides=(1, 2, 2, 1),  # 21x21 heatmaps
        sigma=0.1,
        pointnet_coordinates=False,
        decoder="paper",  # the encoder's transpose (A.2.1)
        vae_loss="elbo",  # equation 1 per pixel value
    )


class PermaKey(keras.Model):
    """call(frames [B, 84, 84, 3] float in [0, 1]) -> dict with the VAE outputs, `error_maps` [B, 84, 84, M] in [0, 1],
    `lspn` (prediction, target) pairs, and PointNet's `keypoints` [B, K, 2] and `heatmaps` [B, h, w, K].

    Train with `compile(optimizers={"vae": ..., "lspn": ..., "pointnet": ...})` and `fit(frames_dataset)`.
    """

    def __init__(self, config: PermaKeyConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        c = config
        self.vae = VAE(
            c.encoder_filters,
            c.encoder_kernels,
            c.encoder_strides,
            c.latent_dim,
            c.norm,
            c.image_shape,
            decoder=c.decoder,
            name="vae",
        )
        self.lspns = [
            LSPN(
                c.encoder_filters[layer],
                c.patch,
                c.lspn_hidden,
                c.lspn_extra_hidden_layer,
                norm=c.lspn_norm,
                name=f"lspn_{layer}",
            )
            for layer in c.lspn_layers
        ]
        track_for_checkpoints(self, self.lspns)
        self.pointnet = PointNet(
            c.num_keypoints,
            c.encoder_filters,
            c.encoder_kernels,
            c.pointnet_strides,
            c.sigma,
            c.norm,
            coordinates=c.pointnet_coordinates,
            name="pointnet",
        )
        self.trackers = {name: keras.metrics.Mean(name=f"{name}_loss") for name in LOSSES}
        self.module_optimizers: dict[str, keras.optimizers.Optimizer] = {}

    def compile(self, optimizers: dict[str, keras.optimizers.Optimizer], **kwargs) -> None:  # type: ignore[override]
        if set(optimizers) != set(MODULES):
            raise ValueError(f"Need one optimizer per module {MODULES}, got {sorted(optimizers)}.")
        super().compile(**kwargs)
        self.module_optimizers = optimizers
        # A built model's optimizers create their slots now, not at the first step: a checkpoint of model and
        # optimizers restores whole into a built graph only (restored before the slots existed, the encoder and LSPN
        # weights were silently left at their initialisation, matched through the unbuilt optimizers' variable lists).
        if self.weights:
            for name, variables in self.module_variables().items():
                optimizers[name].build(variables)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def check_frames(self, frames: tf.Tensor) -> None:
        want = tuple(self.config.image_shape)
        if tuple(frames.shape[1:]) != want:
            raise ValueError(f"PermaKey expects frames [B, {', '.join(map(str, want))}], got {list(frames.shape)}.")

    def call(self, frames: tf.Tensor, training: bool = False) -> dict:
        self.check_frames(frames)
        out = self.vae(frames, training=training)
        pairs, error_maps = self.predict_errors(out["activations"], training=training)
        return {**out, "lspn": pairs, "error_maps": error_maps, **self.pointnet(error_maps, training=training)}

    def error_maps(self, frames: tf.Tensor) -> tf.Tensor:
        """Inference: the stacked error maps [B, 84, 84, M] in [0, 1] of frames [B, 84, 84, 3] in [0, 1]."""
        return self.predict_errors(self.vae.encoder(frames, training=False))[1]

    def infer(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
        """Inference (the VAE encoder, the LSPNs and PointNet's KeyNet; no decoder): for frames [B, 84, 84, 3] in
        [0, 1], the error maps [B, 84, 84, M] in [0, 1], PointNet's keypoint maps [B, h, w, K] and the encoder's
        per-layer activations."""
        activations = self.vae.encoder(frames, training=False)
        error_maps = self.predict_errors(activations)[1]
        return error_maps, self.pointnet.keypoint_maps(error_maps, training=False), activations

    def predict_errors(
        self, activations: list[tf.Tensor], training: bool = False
    ) -> tuple[list[tuple[tf.Tensor, tf.Tensor]], tf.Tensor]:
        """The LSPNs' (prediction, target) cells per chosen encoder layer and the stacked error maps [B, 84, 84, M]."""
        layers = self.config.lspn_layers
        pairs = [lspn(activations[layer], training=training) for lspn, layer in zip(self.lspns, layers, strict=True)]
        c = self.config
        maps = [error_map(p, t, c.error_metric, c.error_normalisation) for p, t in pairs]
        return pairs, stack_error_maps(maps, self.config.image_shape[:2])

    def module_losses(self, frames: tf.Tensor, out: dict) -> dict[str, tf.Tensor]:
        """Each module's own loss (float32 scalars): the VAE's (config.vae_loss), summed LSPN MSEs, PointNet MSE."""
        c = self.config
        return {
            "vae": vae_loss(c.vae_loss, frames, out["reconstruction"], out["loc"], out["scale"], c.likelihood_scale),
            "lspn": tf.add_n([prediction_loss(p, t) for p, t in out["lspn"]]),
            "pointnet": window_loss(out["heatmaps"], out["error_maps"]),
        }

    def module_variables(self) -> dict[str, list[tf.Variable]]:
        return {
            "vae": self.vae.trainable_variables,
            "lspn": [v for lspn in self.lspns for v in lspn.trainable_variables],
            "pointnet": self.pointnet.trainable_variables,
        }

    def reported(self, losses: dict[str, tf.Tensor], out: dict) -> dict[str, tf.Tensor]:
        """Every loss of LOSSES from the module losses and the model's outputs."""
        return {
            **losses,
            "total": tf.add_n([losses[name] for name in MODULES]),
            "lsp_pointnet": losses["lspn"] + losses["pointnet"],
            "pointnet_shuffled": shuffled_window_loss(out["heatmaps"], out["error_maps"]),
        }

    def _track_losses(self, losses: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        for name, value in losses.items():
            self.trackers[name].update_state(value)
        return {f"{name}_loss": tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, frames: tf.Tensor) -> dict[str, tf.Tensor]:
        # One tape over the sum is enough: stop_gradient between modules makes d(total)/d(module) equal to
        # d(module's own loss)/d(module).
        with tf.GradientTape() as tape:
            out = self(frames, training=True)
            losses = self.module_losses(frames, out)
            total = tf.add_n(list(losses.values()))
        variables = self.module_variables()
        flat = [v for name in MODULES for v in variables[name]]
        gradients = tape.gradient(total, flat)
        start = 0
        for name in MODULES:
            count = len(variables[name])
            self.module_optimizers[name].apply_gradients(
                zip(gradients[start : start + count], variables[name], strict=True)
            )
            start += count
        return self._track_losses(self.reported(losses, out))

    def pointnet_step(self, error_maps: tf.Tensor) -> tf.Tensor:
        """One PointNet update on fixed error maps [B, 84, 84, M] (its own optimizer); returns the loss before it."""
        variables = self.pointnet.trainable_variables
        with tf.GradientTape() as tape:
            loss = window_loss(self.pointnet(error_maps, training=True)["heatmaps"], error_maps)
        self.module_optimizers["pointnet"].apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    def test_step(self, frames: tf.Tensor) -> dict[str, tf.Tensor]:
        out = self(frames, training=False)
        return self._track_losses(self.reported(self.module_losses(frames, out), out))
