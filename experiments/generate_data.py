# `python -m experiments.generate_data with game=pong`: the dataset-generation experiment of experiments/generation.py,
# from the command line; its --help (and this module's docstring) is that module's.

from __future__ import annotations

from experiments.generation import ex

__doc__ = ex.doc

if __name__ == "__main__":
    ex.run_commandline()
