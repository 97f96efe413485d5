"""Keypoint-agent throughput: `python -m bench.bench_agent [--encoders gnn,cnn,keyqn] [--keypointer permakey]
[--precisions float32,auto]`.

For each encoder, measured in one run on the real game (ms_pacman by default) with a keypointer of the real size
(PermaKey's `quick` architecture, or Transporter's pkey_reimpl, untrained: the cost does not depend on the weights;
or a saved keypointer folder):
  - the time per agent step of each part: emulation, keypointer inference plus the encoder's frozen view (batch 1),
    acting (the Q-network step), and learning (one update of batch 16 x window 8, made every 4 agent steps);
  - the share of each part and the projected wall time of a 100k-step run (learning from step 10k);
  - agent steps/s measured with acting and learning together (the real loop, learning every 4 steps), as a check
    on the projection;
and all of it once per keypointer precision, in one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import keras
import tensorflow as tf

from bench.common import rate
from rl.actor import QPolicy
from rl.envs import make_agent_env
from rl.learner import PAPER_LEARNER, Learner
from rl.loop import Schedule, Trainer, replay_fields
from rl.replay import SequenceReplay
from training.agents import agent_env, build_network
from training.keypointers import load_keypointer
from training.precision import detect_precision, keras_policy, machine_summary

ENCODER_OPTIONS = {"gnn": {"steps": 1}, "cnn": {"filters": 128, "binarise": None}, "keyqn": {"bins": 16}}


def make_keypointer(name: str, policy: str):
    """The benchmark's keypointer computing in Keras policy `policy`: an untrained one of the real size, or a saved
    one."""
    if name not in ("permakey", "transporter"):
        return load_keypointer(name, policy=policy)
    with keras_policy(policy):
        if name == "permakey":
            from bench.bench_permakey import PAPER
            from permakey.keypointer import PermaKeyKeypointer, build_permakey

            return PermaKeyKeypointer(build_permakey(dataclasses.replace(PAPER, norm="layer", num_keypoints=7)))
        from bench.bench_transporter import benchmark_config
        from transporter.keypointer import TransporterKeypointer
        from transporter.model import build_transporter

        return TransporterKeypointer(build_transporter(benchmark_config("pkey_reimpl", norm="layer")))


def projected(ms: dict[str, float]) -> dict[str, float]:
    """The per-part times `ms`, the projected wall time of 100k agent steps (learning every 4 from step 10k) and each
    part's share of it."""
    per_step = ms["emulation ms/step"] + ms["keypointer+view ms/step"] + ms["acting ms/step"]
    learning = ms["learning ms/update"] * (100_000 - 10_000) / 4
    total = per_step * 100_000 + learning
    result = dict(ms)
    result["projected 100k minutes"] = total / 1e3 / 60
    for name, part in (
        ("emulation", ms["emulation ms/step"] * 100_000),
        ("keypointer", ms["keypointer+view ms/step"] * 100_000),
        ("acting", ms["acting ms/step"] * 100_000),
        ("learning", learning),
    ):
        result[f"share {name}"] = part / total
    return result


def measure(game: str, keypointer, encoder: str, seconds: float, loop_steps: int) -> dict[str, float]:
    keras.utils.set_random_seed(0)
    plain = make_agent_env(game, train=True)
    info = {"num_actions": int(plain.action_space.n), "encoder": encoder, "units": 128}  # type: ignore[attr-defined]
    info["encoder_options"] = ENCODER_OPTIONS[encoder]
    online, target = build_network(info, keypointer), build_network(info, keypointer)
    env: Any = agent_env(game, keypointer, online, train=True, distractors="none", max_episode_frames=108_000)

    plain.reset(seed=0)

    def emulate():
        _, _, terminated, truncated, _ = plain.step(plain.action_space.sample())
        if terminated or truncated:
            plain.reset()

    observation, _ = env.reset(seed=0)
    frame = tf.constant(observation["frame"][None])
    policy = QPolicy(online, epsilon=0.0, seed=0)
    fields = replay_fields(env.observation_space)
    views = {k: tf.random.uniform((16, 9, *shape)) for k, (shape, _) in fields.items()}
    learner = Learner(online, target, **PAPER_LEARNER)
    learner.start(views)
    batch = (
        views,
        tf.zeros((16, 8), tf.int32),
        tf.zeros((16, 8)),
        tf.zeros((16, 8), tf.bool),
        tf.zeros((16, 8), tf.bool),
    )
    ms = {
        "emulation ms/step": 1e3 / rate(lambda: emulate(), 1, seconds),
        "keypointer+view ms/step": 1e3 / rate(lambda: env._observe(frame), 1, seconds),
        "acting ms/step": 1e3 / rate(lambda: policy.act(observation), 1, seconds),
        "learning ms/update": 1e3 / rate(lambda: learner.train_step(*batch)["loss"], 1, seconds, warmup=1),
    }
    result = projected(ms)

    # The real loop with learning on: prime the replay, then time acting and learning together.
    replay = SequenceReplay(loop_steps + 200, fields, seed=0)
    schedule = Schedule(
        100_000, learning_starts=0, update_every=4, batch_size=16, window=8, epsilon_start=1.0, epsilon_end=0.1
    )
    trainer = Trainer(env, online, learner, replay, schedule, seed=0)
    schedule.learning_starts = 10**9
    trainer.run(100)  # fills the replay with complete windows, no learning
    schedule.learning_starts = 0
    trainer.run(108)  # warm-up: traces the update
    start = time.perf_counter()
    trainer.run(108 + loop_steps)
    result["loop agent steps/s (learning every 4)"] = loop_steps / (time.perf_counter() - start)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="ms_pacman")
    parser.add_argument("--encoders", default="gnn,keyqn,cnn", help="comma-separated: gnn, cnn, keyqn")
    parser.add_argument("--keypointer", default="permakey", help="permakey, transporter, or a saved keypointer folder")
    parser.add_argument("--seconds", type=float, default=4.0, help="timing window per measurement")
    parser.add_argument("--loop-steps", type=int, default=200, help="agent steps of the combined-loop measurement")
    parser.add_argument(
        "--precisions", default="float32,auto", help="the keypointer's, comma-separated: auto, float32, mixed_bfloat16"
    )
    args = parser.parse_args()
    encoders = args.encoders.split(",")
    columns, rows = [], {}
    for requested in args.precisions.split(","):
        policy, _ = detect_precision(requested)
        keypointer = make_keypointer(args.keypointer, policy)
        for encoder in encoders:
            column = f"{encoder}, {requested} ({policy})" if requested == "auto" else f"{encoder}, {policy}"
            columns.append(column)
            rows[column] = measure(args.game, keypointer, encoder, args.seconds, args.loop_steps)
    names = list(next(iter(rows.values())))
    print(
        f"\n{machine_summary()}\n"
        f"{args.game}, keypointer {args.keypointer} (K={keypointer.num_keypoints}) in the column's precision, "
        "agent networks in float32, "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'all'} intra-op threads\n"
    )
    print("| measure | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{rows[c][name]:.3g}" for c in columns) + " |")
    if len(columns) == 2 * len(encoders):
        for i, encoder in enumerate(encoders):
            a, b = columns[i], columns[i + len(encoders)]
            ratio = rows[a]["projected 100k minutes"] / rows[b]["projected 100k minutes"]
            print(f"\n{encoder}: projected 100k-step time, {a.split(', ')[1]} / {b.split(', ')[1]} = {ratio:.2f}")


if __name__ == "__main__":
    main()
