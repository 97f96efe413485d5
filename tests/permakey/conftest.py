import pytest

from permakey.model import PermaKeyConfig


def tiny_config(**changes) -> PermaKeyConfig:
    """The paper's architecture shape with few filters: fast enough for unit tests."""
    base = dict(
        num_keypoints=3,
        image_shape=(84, 84, 3),
        encoder_filters=(4, 8, 8, 8),
        encoder_kernels=(4, 3, 3, 3),
        encoder_strides=(1, 2, 2, 1),
        latent_dim=4,
        likelihood_scale=0.1,
        norm="batch",
        lspn_layers=(0, 1),
        patch=2,
        lspn_hidden=(16, 8),
        lspn_extra_hidden_layer=False,
        error_metric="rmse",
        pointnet_strides=(1, 2, 2, 1),
        sigma=0.1,
    )
    base.update(changes)
    return PermaKeyConfig(**base)


@pytest.fixture
def config() -> PermaKeyConfig:
    return tiny_config()
