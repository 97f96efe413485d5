"""The generation's random policies (uniform, sticky) and how datasets record them."""

import json
import shutil

import numpy as np
import pytest

from data import generate as gen
from data import storage
from data.readers import read_episodes
from tests.conftest import tiny_config


def _repeats(actions: list[int]) -> float:
    return float(np.mean(np.diff(actions) == 0))


def test_sticky_actions_repeat_at_rate_one_minus_p_plus_a_redraw_of_the_same_action():
    num_actions, p, n = 6, 0.1, 20_000
    policy = gen.StickyActions(num_actions, p, np.random.default_rng(0))
    actions = [policy() for _ in range(n)]
    expected = (1 - p) + p / num_actions  # a new draw repeats the old action with chance 1/A
    bound = 5 * np.sqrt(expected * (1 - expected) / (n - 1))  # 5 binomial standard deviations
    assert abs(_repeats(actions) - expected) < bound
    assert set(actions) == set(range(num_actions))


def test_sticky_actions_with_probability_one_draw_exactly_the_uniform_policys_actions():
    policy = gen.StickyActions(18, 1.0, np.random.default_rng(7))
    uniform = np.random.default_rng(7)
    assert [policy() for _ in range(500)] == [int(uniform.integers(18)) for _ in range(500)]


def test_an_episodes_first_action_is_drawn_anew():
    policy = gen.StickyActions(6, 1e-12, np.random.default_rng(0))
    firsts = []
    for _ in range(60):
        policy.reset()
        episode = [policy() for _ in range(5)]
        assert len(set(episode)) == 1  # held throughout
        firsts.append(episode[0])
    assert len(set(firsts)) == 6


@pytest.mark.parametrize(
    ("policy", "p", "message"),
    [
        ("greedy", 0.1, r"Unknown policy 'greedy'; choose one of \('uniform', 'sticky'\)"),
        ("sticky", 0.0, r"change_probability must be a number in \(0, 1\], got 0.0"),
        ("sticky", 1.5, r"change_probability must be a number in \(0, 1\], got 1.5"),
        ("sticky", -0.1, r"in \(0, 1\]"),
        ("uniform", 0.5, r"policy 'uniform' draws a new action every step .* use policy=sticky"),
    ],
)
def test_an_unknown_policy_or_a_probability_outside_the_range_is_refused_naming_the_allowed_values(policy, p, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(policy=policy, change_probability=p)


def test_policy_specs_parse_and_name_their_folders():
    assert gen.parse_policy("uniform") == ("uniform", 1.0)
    assert gen.parse_policy("sticky") == ("sticky", 0.1)
    assert gen.parse_policy("sticky:0.25") == ("sticky", 0.25)
    with pytest.raises(ValueError, match="'abc' is not a number; write e.g. sticky:0.1"):
        gen.parse_policy("sticky:abc")
    assert gen.policy_tag("uniform", 1.0) == "" and gen.policy_tag("sticky", 0.1) == "sticky0.1"


def _hashes(manifest):
    return [s["sha256"] for split in manifest["splits"].values() for s in split["shards"]]


STICKY = {"policy": "sticky", "change_probability": 0.1, "split_frames": {"train": 120}}


def test_a_sticky_dataset_holds_its_actions_records_its_policy_and_reproduces(tmp_path, pong_dataset):
    manifest = gen.generate(tiny_config(**STICKY), tmp_path / "sticky", workers=1, progress=False)
    assert manifest["generator"]["policy"] == "sticky" and manifest["generator"]["change_probability"] == 0.1
    assert gen.manifest_policy(manifest) == ("sticky", 0.1)
    actions = np.concatenate([e.actions[:-1] for e in read_episodes(tmp_path / "sticky", "train")])
    assert _repeats(list(actions)) > 0.7  # expected 0.9 + 0.1/6 over ~120 steps; uniform gives ~1/6
    again = gen.generate(tiny_config(**STICKY), tmp_path / "again", workers=1, progress=False)
    assert _hashes(again) == _hashes(manifest)
    uniform = gen.generate(tiny_config(split_frames={"train": 120}), tmp_path / "uniform", workers=1, progress=False)
    assert _hashes(uniform) != _hashes(manifest)


def _without_policy(dataset, tmp_path):
    """A copy of `dataset` whose manifest predates policies (no policy keys in its generator config)."""
    out = tmp_path / "old"
    shutil.copytree(dataset, out)
    manifest = json.loads((out / storage.MANIFEST).read_text())
    for key in gen.LEGACY_GENERATOR:
        del manifest["generator"][key]
    storage.write_json_atomic(out / storage.MANIFEST, manifest)
    return out, manifest


def test_an_older_manifest_without_a_policy_reads_as_uniform(pong_dataset, tmp_path, monkeypatch):
    old, manifest = _without_policy(pong_dataset, tmp_path)
    assert gen.manifest_policy(manifest) == ("uniform", 1.0)

    def never_run(config, job, folder):
        raise AssertionError("an intact dataset was made again")

    monkeypatch.setattr(gen, "_run_job", never_run)
    assert gen.generate(tiny_config(), old, workers=1, progress=False) == manifest
    with pytest.raises(storage.DatasetError, match=r"other settings \(change_probability: 1.0, asked 0.1; policy: "):
        gen.generate(tiny_config(policy="sticky", change_probability=0.1), old, workers=1, progress=False)


def test_a_training_refuses_an_existing_dataset_of_another_policy(pong_dataset):
    from experiments.generation import ensure_dataset

    ensure_dataset(str(pong_dataset), "pong", 180, 0, True, False)  # uniform, as made: nothing to do
    with pytest.raises(storage.DatasetError, match=r"generated with policy uniform .* asks for sticky .*dataset="):
        ensure_dataset(str(pong_dataset), "pong", 180, 0, True, False, policy="sticky", change_probability=0.1)


def test_the_configs_name_the_policy_and_give_sticky_data_its_own_folder():
    from sacred.initialize import create_run

    from experiments import generate_data, train_permakey

    config = create_run(generate_data.ex, "main", {"policy": "sticky"}).config
    assert config["change_probability"] == 0.1 and config["out"].endswith("pong_sticky0.1")
    assert create_run(generate_data.ex, "main", {}).config["out"].endswith("pong")
    training = create_run(
        train_permakey.ex, "main", {"data_policy": "sticky", "data_change_probability": 0.25}, named_configs=["quick"]
    ).config
    assert training["dataset"].endswith("pong_quick_sticky0.25")


def test_diverse_pairs_take_the_policy_too(tmp_path):
    config = tiny_config(mode="diverse_pairs", **STICKY)
    manifest = gen.generate(config, tmp_path / "pairs", workers=1, progress=False)
    assert gen.manifest_policy(manifest) == ("sticky", 0.1) and manifest["splits"]["train"]["frames"] == 120
