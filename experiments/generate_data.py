"""Generate an Atari dataset with ground truth: `python -m experiments.generate_data with game=pong`.

The experiment (its config and what a run does) is experiments/generation.py, which the experiments that need a
dataset run too.
"""

from __future__ import annotations

from experiments.generation import ex

__all__ = ["ex"]

if __name__ == "__main__":
    ex.run_commandline()
