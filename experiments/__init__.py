"""The Sacred experiments: `python -m experiments.<name> [with k=v ...]`.

The console, by configuration only:
- TF_CPP_MIN_LOG_LEVEL defaults to 2 here (and in the Makefile): TensorFlow's C++ info and warning lines are hidden,
  errors shown. Set it to 0 to see them all.
- What TensorFlow's C++ side prints while it loads, before its logging is set up, ignores that setting, and no
  configuration reaches it: absl's "All log messages before absl::InitializeLog() is called are written to STDERR",
  info lines such as "Could not find cuda drivers on your machine, GPU will not be used", and, on a machine without an
  NVIDIA driver, an error line "failed call to cuInit". They come once per process that imports TensorFlow and are
  harmless where there is no GPU to find.
- Sacred's pkg_resources deprecation warning is silenced.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
