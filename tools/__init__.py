"""Diagnostic commands that measure the models' intermediate signals (each `python -m tools.<name> --help`)."""
