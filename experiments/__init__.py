"""The Sacred experiments: `python -m experiments.<name> [with k=v ...]`.

Importing the package, which `python -m experiments.<name>` does first (and so does every worker process it spawns),
keeps the console to what matters before TensorFlow or Sacred load:
- TensorFlow's C++ start-up lines come before absl's logging is set up, so TF_CPP_MIN_LOG_LEVEL does not reach them
  ("All log messages before absl::InitializeLog() ...", then oneDNN and CUDA-stub info lines, twice per process).
  They are held back while `tensorflow` is imported and passed on unless TF_CPP_MIN_LOG_LEVEL hides their severity
  (2 by default, as in the Makefile: info and warnings hidden, errors shown).
- The import also probes the devices, so that the "failed call to cuInit" error of a machine without an NVIDIA driver
  (there is no GPU to find) is held back with them; with a driver it is passed on.
- Sacred's pkg_resources deprecation warning is silenced.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

# absl's prefix: severity, MMDD, time (seconds since the epoch before logging is initialised), thread, file:line.
_LOG_LINE = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]]+\] (.*)")
_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def shown_start_up_lines(lines: list[str], min_level: int, gpu_driver: bool) -> list[str]:
    """The lines TensorFlow wrote to stderr while it was imported that are passed on: all but absl's preamble, log
    lines of a severity under `min_level` (0 info, 1 warning, 2 error, as TF_CPP_MIN_LOG_LEVEL), and the failed cuInit
    of a machine without an NVIDIA driver."""
    shown = []
    for line in lines:
        match = _LOG_LINE.match(line)
        if line.rstrip("\n") == _PREAMBLE:
            continue
        if match and "IWEF".index(match.group(1)) < min_level:
            continue
        if match and not gpu_driver and "failed call to cuInit" in match.group(2):
            continue
        shown.append(line)
    return shown


@contextlib.contextmanager
def _held_stderr() -> Iterator[None]:
    """Holds what the process writes to file descriptor 2 (C++ included) and passes on the shown lines at the end."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            try:
                level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
            except ValueError:
                level = 0
            sys.stderr.writelines(shown_start_up_lines(lines, level, os.path.exists("/proc/driver/nvidia/version")))
            sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run with its start-up lines held back, followed by the device probe."""

    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        with _held_stderr():
            self.loader.exec_module(module)
            module.config.list_physical_devices()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` where the path finder does, with the quiet loader."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


if "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _QuietTensorFlow())
