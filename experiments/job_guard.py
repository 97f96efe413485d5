"""Runs one grid job so that stopping the grid interrupts it: `python -m experiments.job_guard COMMAND...`.

experiments.run_grid's Ray tasks start this guard, and the guard starts the job. Two things of Ray's would otherwise
kill a job outright when a stopped grid's workers exit, so its Sacred run could never record INTERRUPTED (measured with
Ray 2.60 on a local grid):

- a Ray worker SIGKILLs its own child processes as it exits (`RAY_kill_child_processes_on_worker_exit`); the guard is
  that child, and the job is a grandchild that this does not reach;
- Ray's workers block SIGINT, and a blocked signal mask is inherited through fork and exec, so a job started from a
  worker never saw a SIGINT sent to it.

So the job starts in a session of its own (out of reach of Ray's process-group kills), with SIGINT unblocked and at
its default, and with Linux asked to send it SIGINT when the guard dies (PR_SET_PDEATHSIG): a stopped grid kills the
guard, and the job sees a KeyboardInterrupt, which Sacred records as INTERRUPTED. The guard exits with the job's
exit code (128 + N for a job killed by signal N).
"""

from __future__ import annotations

import signal
import subprocess
import sys


def _interrupt_when_guard_dies() -> None:
    """In the job's process, before exec: SIGINT unblocked and at its default, and sent when the guard dies."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # not ignored, even if the grid was started in the background
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # 1 = PR_SET_PDEATHSIG


def guard(command: list[str]) -> int:
    """Runs `command` as described in the module docstring; returns its exit code (128 + N if killed by signal N)."""
    if not command:
        raise SystemExit("usage: python -m experiments.job_guard COMMAND [ARGS...]")
    code = subprocess.call(command, start_new_session=True, preexec_fn=_interrupt_when_guard_dies)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(guard(sys.argv[1:]))
