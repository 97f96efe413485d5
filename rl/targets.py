"""Learning targets of the recurrent double DQN (PermaKey paper, Appendix A.2.3; docs/method.md section 4).

The authors' code has three bugs here that we do not copy, each pinned by a test in tests/rl/test_targets.py:
  - its 3-step target summed the three rewards *before* the action and bootstrapped from t+1 with gamma^3;
    correct: r_t + g r_{t+1} + g^2 r_{t+2} + g^3 Q'(s_{t+3});
  - it treated time-limit truncation as termination; a truncated episode still bootstraps from its last state;
  - its double-Q action selection used the target network; the online network selects, the target evaluates.

Conventions, per window of T agent steps (batch-major [B, T]):
  rewards[t]      the reward of the transition s_t -a_t-> s_{t+1};
  terminated[t]   that transition ended the episode in the game (s_{t+1} has value 0);
  truncated[t]    the episode was cut after it (time limit): s_{t+1} is a real state we may bootstrap from;
  bootstrap[j]    for j = 0..T, the double-Q value of s_j: Q_target(s_j, argmax_a Q_online(s_j, a)).
"""

from __future__ import annotations

import tensorflow as tf


def double_q_values(q_online: tf.Tensor, q_target: tf.Tensor) -> tf.Tensor:
    """Q_target(s, argmax_a Q_online(s, a)): the online network selects, the target network evaluates.

    Args:
      q_online, q_target: [..., A] action values of the same states.
    Returns:
      [...] values.
    """
    action = tf.argmax(q_online, axis=-1, output_type=tf.int32)
    return tf.gather(q_target, action, axis=-1, batch_dims=len(q_online.shape) - 1)


def n_step_targets(
    rewards: tf.Tensor,
    terminated: tf.Tensor,
    truncated: tf.Tensor,
    bootstrap: tf.Tensor,
    n: int,
    gamma: float,
) -> tuple[tf.Tensor, tf.Tensor]:
    """n-step returns G_t = sum_{k<m} g^k r_{t+k} + g^m [not terminated] V(s_{t+m}), with m = n, or fewer when the
    episode ends (terminates or is truncated) at step t+m-1 inside the n steps.

    Args:
      rewards, terminated, truncated: [B, T] (module docstring).
      bootstrap: [B, T + 1] double-Q values of s_0..s_T.
      n: steps (3 in the paper); gamma: discount.
    Returns:
      (targets [B, T] float32, valid [B, T] bool). Step t is valid when all the steps its target needs lie inside
      the window (t + m <= T); invalid steps must be masked out of the loss.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    rewards = tf.cast(rewards, tf.float32)
    terminated = tf.cast(terminated, tf.bool)
    ends = tf.logical_or(terminated, tf.cast(truncated, tf.bool))
    bootstrap = tf.cast(bootstrap, tf.float32)
    length = rewards.shape[1]
    targets, valid = [], []
    for t in range(length):
        total = tf.zeros_like(rewards[:, 0])
        alive = tf.ones_like(total, tf.bool)  # the episode has not ended before step t + k
        for k in range(min(n, length - t)):
            j = t + k
            total += tf.where(alive, gamma**k * rewards[:, j], 0.0)
            cut = tf.logical_and(alive, tf.logical_and(ends[:, j], tf.logical_not(terminated[:, j])))
            total += tf.where(cut, gamma ** (k + 1) * bootstrap[:, j + 1], 0.0)  # truncated: bootstrap s_{j+1}
            alive = tf.logical_and(alive, tf.logical_not(ends[:, j]))
        if t + n <= length:
            total += tf.where(alive, gamma**n * bootstrap[:, t + n], 0.0)
            valid.append(tf.ones_like(alive))
        else:  # the window ends first: complete only if the episode ended inside it
            valid.append(tf.logical_not(alive))
        targets.append(total)
    return tf.stack(targets, axis=1), tf.stack(valid, axis=1)


def polyak_update(target: list[tf.Variable], online: list[tf.Variable], tau: float) -> None:
    """target <- tau * online + (1 - tau) * target (tau = 0.005 after every update in the paper)."""
    for t, o in zip(target, online, strict=True):
        t.assign(tau * o + (1.0 - tau) * t)


def hard_copy(target: list[tf.Variable], online: list[tf.Variable]) -> None:
    """target <- online: done once at the start (the authors' code never did, so its target began random)."""
    for t, o in zip(target, online, strict=True):
        t.assign(o)


def lambda_returns(
    rewards: tf.Tensor,
    terminated: tf.Tensor,
    truncated: tf.Tensor,
    bootstrap: tf.Tensor,
    lam: float,
    gamma: float,
) -> tf.Tensor:
    """Peng's Q(lambda) returns over a window, truncated at its end (the "n-step Q(lambda)" of the Transporter paper,
    section 3.2.2, with n the window length): G_t = r_t + g [(1 - lam) V(s_{t+1}) + lam G_{t+1}], G_T = V(s_T). A
    transition that terminates has G_t = r_t; one after which the episode is truncated has G_t = r_t + g V(s_{t+1}).
    lam = 0 is the one-step target; lam = 1 the n-step return to the window's end.

    Args:
      rewards: [B, T, ...] (any trailing dims, e.g. one per Q function); terminated, truncated: [B, T].
      bootstrap: [B, T + 1, ...] double-Q values of s_0..s_T.
    Returns:
      [B, T, ...] float32 targets; every step is complete (the window's last state bootstraps).
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must lie in [0, 1], got {lam}.")
    rewards = tf.cast(rewards, tf.float32)
    bootstrap = tf.cast(bootstrap, tf.float32)
    extra = len(rewards.shape) - 2

    def per_step(flags: tf.Tensor) -> tf.Tensor:  # [B, T] -> [B, T, 1, ...] to broadcast over the trailing dims
        return tf.reshape(tf.cast(flags, tf.float32), tf.concat([tf.shape(flags), [1] * extra], 0))

    stop = 1.0 - per_step(terminated)  # no value after a terminating transition
    cut = per_step(truncated)  # after truncation: bootstrap fully, no later return
    length = rewards.shape[1]
    following = bootstrap[:, length]  # G_T = V(s_T)
    targets = []
    for t in reversed(range(length)):
        value = bootstrap[:, t + 1]
        mixed = (1.0 - lam) * value + lam * following
        mixed = cut[:, t] * value + (1.0 - cut[:, t]) * mixed
        following = rewards[:, t] + gamma * stop[:, t] * mixed
        targets.append(following)
    return tf.stack(targets[::-1], axis=1)
