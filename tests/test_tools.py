"""The diagnostic commands in tools/ run end to end on a tiny PermaKey model."""

from __future__ import annotations

from permakey.keypointer import PermaKeyKeypointer


def test_error_mass_and_refit_variants_run_on_a_saved_model(tmp_path, pong_dataset, joint_permakey):
    from tools import error_mass, refit_variants

    (folder,) = [path for path in (joint_permakey / "runs").iterdir() if path.name.isdigit()]  # read only
    lines = error_mass.main([str(folder), "--game", "pong", "--dataset", str(pong_dataset), "--frames", "8"])
    rows = [line for line in lines if line.startswith(("| rmse", "| mse"))]
    assert len(rows) == 12  # 2 metrics x 3 normalisations x dead cells kept / masked
    where = {line.split(" | ")[0][2:]: line for line in lines[lines.index("| where | layer 0 | layer 1 |") :]}
    assert {"Player", "Enemy", "Ball"} <= set(where)
    bands = [[float(v) for v in line.strip(" |").split(" | ")[1:]] for k, line in where.items() if k.startswith("rows")]
    # 35 native rows = 14 frame rows each: the bands partition the frame, so their shares (printed to 3 decimals,
    # each within 0.0005) sum to 1
    assert len(bands) == 6
    assert abs(sum(b[0] for b in bands) - 1) <= 0.0031 and abs(sum(b[1] for b in bands) - 1) <= 0.0031
    out = tmp_path / "variants"
    refit_variants.main(
        [str(folder), "--game", "pong", "--dataset", str(pong_dataset), "--out", str(out)]
        + ["--variants", "mse:none", "rmse:activation", "--steps", "2", "--batch", "4"]
    )
    rmse = PermaKeyKeypointer.load(out / "rmse-activation-s0")
    assert rmse.config.error_metric == "rmse" and rmse.config.error_normalisation == "activation"
    assert PermaKeyKeypointer.load(out / "mse-none-s0").config.error_normalisation == "none"


def test_health_table_reads_each_epochs_health_from_a_run(tmp_path, joint_permakey, capsys):
    """One row per finished epoch with the health training/health.py logged (recall beside held still, the error
    mass per map) and the monitored validation loss; a run folder without a finished epoch is named as such."""
    import json
    import shutil

    import pytest

    from tools import health_table

    (folder,) = [path for path in (joint_permakey / "runs").iterdir() if path.name.isdigit()]  # read only
    metrics = json.loads((folder / "metrics.json").read_text())
    table = health_table.health_table(folder)
    assert list(table["epoch"]) == metrics["epoch.keypoint_recall"]["steps"] == [1]
    assert table["recall"].tolist() == metrics["epoch.keypoint_recall"]["values"]
    assert table["held still"].tolist() == metrics["epoch.keypoint_recall_held_still"]["values"]
    assert {"error mass 0", "error mass 1", "val_lsp_pointnet_loss"} <= set(table.columns)
    assert (table["minutes"] >= 0).all()
    health_table.main([str(folder)])
    assert len(capsys.readouterr().out.splitlines()) == 3  # header, rule and one epoch
    unfinished = tmp_path / "unfinished"
    shutil.copytree(folder, unfinished)
    kept = {key: value for key, value in metrics.items() if not key.startswith("epoch.")}
    (unfinished / "metrics.json").write_text(json.dumps(kept))
    with pytest.raises(ValueError, match="has not finished an epoch yet"):
        health_table.health_table(unfinished)
    with pytest.raises(FileNotFoundError, match="is not a Sacred run folder"):
        health_table.health_table(tmp_path)
