"""Train PermaKey: `python -m experiments.train_permakey with game=pong [quick] [distractors=vertical]`.

Generates the game's dataset if it is missing, trains VAE, LSPNs and PointNet together (each on its own loss, own
Adam), validates every epoch on `monitor` (the LSPN and PointNet losses' sum by default, as the authors' code), keeps
the best epoch's keypointer, stops early, and
resumes from its work folder when rerun with the same settings. The run folder receives the metrics, the pictures
(keypoints on test frames, layer-wise error maps, VAE reconstructions) and the keypointer itself.
"""

from __future__ import annotations

from pathlib import Path

from data.games import get_game
from data.generate import policy_tag
from experiments.common import experiment
from experiments.generation import run_generation
from permakey.model import PermaKeyConfig, paper_config
from training.checkpointing import FitSettings
from training.keypoint_training import DataSettings, train_keypoint_model
from training.permakey_training import Optimization, PermaKeyTraining
from training.workspace import Workspace

ex = experiment("train_permakey", __doc__)

# The paper's values, written once (permakey.model.paper_config, Optimization.paper); K is the game's.
_PAPER = paper_config(num_keypoints=1)
_PAPER_OPTIMIZATION = Optimization.paper()


@ex.config
def config():
    game = "pong"
    num_keypoints = get_game(game).num_keypoints  # docs/method.md section 3.8 (the authors' per-game K)
    seed = 0
    distractors = "none"  # Noisy Atari distractor bars: none / vertical / horizontal / both, drawn on the fly
    # Architecture (Appendix A.2.1).
    encoder_filters = list(_PAPER.encoder_filters)
    encoder_kernels = list(_PAPER.encoder_kernels)
    encoder_strides = list(_PAPER.encoder_strides)
    latent_dim = _PAPER.latent_dim
    decoder = _PAPER.decoder  # the encoder's transpose (A.2.1); "authors": their code's (permakey/vae.py)
    vae_loss = _PAPER.vae_loss  # equation 1 per pixel; "authors": their weighting (docs/method.md section 3.3)
    likelihood_scale = _PAPER.likelihood_scale  # sqrt of the authors' variance 0.1 (the paper gives none)
    norm = _PAPER.norm
    lspn_layers = list(_PAPER.lspn_layers)
    patch = _PAPER.patch
    lspn_hidden = list(_PAPER.lspn_hidden)
    lspn_extra_hidden_layer = _PAPER.lspn_extra_hidden_layer  # True: the authors' extra first layer (8p^2C)
    lspn_norm = _PAPER.lspn_norm  # "batch": the authors' (paper silent); "none": Dense-ReLU
    error_metric = _PAPER.error_metric  # "mse": the authors' final code; "rmse": theirs at the paper's time
    error_normalisation = _PAPER.error_normalisation  # "activation", "image" or "none" (permakey/lspn.py)
    pointnet_strides = list(_PAPER.pointnet_strides)  # 21x21 heatmaps; [1, 1, 2, 1] gives the paper-era code's 42x42
    sigma = _PAPER.sigma
    pointnet_coordinates = _PAPER.pointnet_coordinates  # off the paper: (y, x) channels (permakey/pointnet.py)
    # Training (Appendix A.2.1).
    batch_size = 32
    epochs = 100
    patience = 10
    learning_rate = _PAPER_OPTIMIZATION.learning_rate
    pointnet_learning_rate = learning_rate  # PointNet's own Adam (each module has one)
    decay_steps = _PAPER_OPTIMIZATION.decay_steps
    decay_rate = _PAPER_OPTIMIZATION.decay_rate
    # x0.85 every 10k steps, staircase (the paper); "inverse_time": the authors' code's
    lr_schedule = _PAPER_OPTIMIZATION.lr_schedule
    # The validation loss of the best epoch and early stopping (the paper names none); any of permakey.model.LOSSES.
    monitor = "val_lsp_pointnet_loss"  # the LSPN and PointNet losses' sum, as the authors' code
    steps_per_epoch = None  # None: one pass over the training split
    precision = "auto"  # mixed_bfloat16 on GPUs and CPUs where it measures fast, else float32 (training/precision.py)
    log_every = 50
    preset = "paper"
    # Data: generated with these settings when missing (the paper: 85k / 5k / 5k frames).
    data_frames = 95_000
    generate_missing = True
    data_policy = "uniform"  # the random policy of a generated dataset: uniform or sticky (data/generate.py)
    data_change_probability = 1.0 if data_policy == "uniform" else 0.1  # sticky: chance of a new action per step
    dataset = Workspace.here().dataset(
        game, "" if preset == "paper" else preset, policy_tag(data_policy, data_change_probability)
    )
    work = Workspace.here().work_folder("permakey", get_game(game).name, preset, distractors, seed=seed)
    picture_frames = 8
    progress = True


@ex.config
def refit():
    """Off the paper's joint training: the PointNet refit after it (docs/method.md section 3.10)."""
    # PointNet re-initialised after the joint training and trained alone this many steps on the best epoch's frozen
    # error maps: a schedule change, not a method change. 0: the paper's joint training.
    pointnet_refit_steps = 0
    # Off the paper: refit this many PointNets, keep the one whose keypoints move most on validation frames.
    pointnet_refit_restarts = 1
    # Off the paper: the restarts repeated on the error maps of each of these normalisations (permakey/lspn.py), the
    # most moving keypoints kept with theirs. []: the model's error_normalisation only.
    pointnet_refit_normalisations = []
    pointnet_refit_batch_size = None  # None: batch_size
    # The kept refit's initialisation trained again for this many steps at this batch (None: the refit's), kept
    # instead when its keypoints move more. 0: no final refit.
    pointnet_refit_final_steps = 0
    pointnet_refit_final_batch_size = None


@ex.named_config
def paper():
    """The paper's settings, the authors' final code's where the paper is silent (the defaults, named for clarity;
    README.md "PermaKey" lists every difference and its option): a GPU job."""
    preset = "paper"


@ex.named_config
def cpu():
    """The paper's architecture, values and joint training (the defaults; no refit), at the authors' own budget,
    sized for 3 hours of 2 CPU cores where bfloat16 is fast. The authors' visualised ms_pacman model is their epoch-1
    checkpoint: about 5.3k steps of batch 32 (docs/method.md section 3.7). `make bench-permakey` trains the paper
    model at 27.2 images/s in mixed bfloat16 on 2 cores of an AMD EPYC (docs/benchmarks.md): 98 minutes for these
    steps, before validation and health; on 2 cores of an Intel Xeon without fast bfloat16 (float32) an epoch took
    20-23 minutes with validation and health, so the 10 take about 3.5 hours (docs/permakey_cpu.md).
    - 10 epochs of 500 steps at batch 32 (5,000 steps): short epochs, so a killed run that resumes (every epoch ends
      in a checkpoint) loses at most one; patience 10 never stops it early.
    - data_frames 95,000 (85k / 5k / 5k, the paper's), of the sticky random policy (p = 0.1), which moves the
      avatars further than the uniform one (docs/data_coverage.md); the paper trains on trained agents' rollouts."""
    preset = "cpu"
    epochs = 10
    steps_per_epoch = 500
    data_policy = "sticky"


@ex.named_config
def quick():
    """Same method and architecture, CPU-sized (about 17 minutes on 2 cores in mixed bfloat16). Each setting and why;
    the A/B measurements behind them are in docs/permakey_quick.md:
    - data_frames 3000, 5 epochs of 150 steps at batch 16: what fits the time; longer joint training did not help.
    - norm layer (per channel), lspn_norm none: BatchNorm's moving statistics lag at a few hundred steps.
    - likelihood_scale 0.1, monitor val_total_loss: what every quick figure was measured with.
    - error_metric rmse: same-seed refits on frozen Pong maps track both paddles with it, one with MSE.
    - learning_rate 1e-3 (paper 2e-4): at 2e-4 the error maps are unformed and the keypoints still at 300 steps.
    - sigma 0.15 (paper 0.1): a window feels errors within about 2 sigma; at 0.1 a fresh PointNet misses the paddles.
    - pointnet_refit_steps 600: PointNet re-initialised on the frozen final maps; the joint one parks its keypoints.
    - pointnet_coordinates (off the paper): Pong's two paddles are identical error blobs without (y, x) channels.
    - pointnet_refit_restarts 4, the most moving kept (off the paper): the loss prefers the static score digits, and
      on Pong a 3000-step batch-32 refit from a restart the short refit found poor still misses a paddle.
    - pointnet_refit_normalisations activation and none (off the paper): the division suits Pong, the raw error
      ms_pacman (whose HUD band the division inflates), at 600 steps and at 3000; motion, which needs no ground
      truth, picks per run.
    - pointnet_refit_batch_size (None: 16): ms_pacman's keypoints follow Ms. Pac-Man only after a 3000-step batch-32
      refit, not this 600-step one; not the default because Pong needs the restarts, and both cost 5.6x.
    - pointnet_refit_final_steps 0: a final 3000 x 32 refit of the kept restart doubled ms_pacman's recall@1 (0.254
      to 0.551, sticky frames) at about the cost of the eight short refits; not the default until measured end to
      end on Pong and within the preset's time."""
    preset = "quick"
    data_frames = 3000
    epochs = 5
    steps_per_epoch = 150
    patience = 5
    batch_size = 16
    norm = "layer"
    error_metric = "rmse"
    lspn_norm = "none"
    likelihood_scale = 0.1
    monitor = "val_total_loss"
    learning_rate = 1e-3
    sigma = 0.15
    pointnet_refit_steps = 600
    pointnet_coordinates = True
    pointnet_refit_restarts = 4
    pointnet_refit_normalisations = ["activation", "none"]


def model_config(c: dict) -> PermaKeyConfig:
    return PermaKeyConfig(
        num_keypoints=c["num_keypoints"],
        image_shape=(84, 84, 3),
        encoder_filters=tuple(c["encoder_filters"]),
        encoder_kernels=tuple(c["encoder_kernels"]),
        encoder_strides=tuple(c["encoder_strides"]),
        latent_dim=c["latent_dim"],
        likelihood_scale=c["likelihood_scale"],
        decoder=c["decoder"],
        vae_loss=c["vae_loss"],
        norm=c["norm"],
        lspn_layers=tuple(c["lspn_layers"]),
        patch=c["patch"],
        lspn_hidden=tuple(c["lspn_hidden"]),
        lspn_extra_hidden_layer=c["lspn_extra_hidden_layer"],
        lspn_norm=c["lspn_norm"],
        error_metric=c["error_metric"],
        error_normalisation=c["error_normalisation"],
        pointnet_strides=tuple(c["pointnet_strides"]),
        sigma=c["sigma"],
        pointnet_coordinates=c["pointnet_coordinates"],
    )


def permakey_training(c: dict) -> PermaKeyTraining:
    """PermaKey for the keypoint-training harness, from a run's config."""
    return PermaKeyTraining(
        config=model_config(c),
        optimization=Optimization.from_config(c),
        work=Path(c["work"]),
        refit_steps=c["pointnet_refit_steps"],
        refit_restarts=c["pointnet_refit_restarts"],
        refit_normalisations=tuple(c["pointnet_refit_normalisations"]) or (c["error_normalisation"],),
        refit_batch_size=c["pointnet_refit_batch_size"],
        final_steps=c["pointnet_refit_final_steps"],
        final_batch_size=c["pointnet_refit_final_batch_size"],
        picture_frames=c["picture_frames"],
        log_every=c["log_every"],
        progress=c["progress"],
        monitor=c["monitor"],
    )


@ex.main
def main(_config, _run, _seed):
    c = _config
    training = permakey_training(c)
    data, fit = DataSettings.from_config(c), FitSettings.from_config(c)
    state, results = train_keypoint_model(_run, training, data, fit, c["seed"], c["precision"], run_generation)
    return {"best_epoch": state["best_epoch"], f"best_{training.monitor}": state["best"], **results}


if __name__ == "__main__":
    ex.run_commandline()
