"""The diagnostic commands in tools/ run end to end on a tiny PermaKey model."""

from __future__ import annotations

from permakey.keypointer import PermaKeyKeypointer


def test_error_mass_and_refit_variants_run_on_a_saved_model(tmp_path, pong_dataset, joint_permakey):
    from tools import error_mass, refit_variants

    (folder,) = [path for path in (joint_permakey / "runs").iterdir() if path.name.isdigit()]  # read only
    lines = error_mass.main([str(folder), "--game", "pong", "--dataset", str(pong_dataset), "--frames", "8"])
    rows = [line for line in lines if line.startswith(("| rmse", "| mse"))]
    assert len(rows) == 12  # 2 metrics x 3 normalisations x dead cells kept / masked
    out = tmp_path / "variants"
    refit_variants.main(
        [str(folder), "--game", "pong", "--dataset", str(pong_dataset), "--out", str(out)]
        + ["--variants", "mse:none", "rmse:activation", "--steps", "2", "--batch", "4"]
    )
    rmse = PermaKeyKeypointer.load(out / "rmse-activation-s0")
    assert rmse.config.error_metric == "rmse" and rmse.config.error_normalisation == "activation"
    assert PermaKeyKeypointer.load(out / "mse-none-s0").config.error_normalisation == "none"
