"""Stopping a run cleanly: Ctrl-C or SIGTERM asks the training loop to stop after the update in progress.

The loop then checkpoints (with every env's state) and ends with the shell's code for the signal:
130 for Ctrl-C (SIGINT), 143 for SIGTERM (what ``kill``, ``timeout``, Slurm and Kubernetes send).
A second signal aborts at once. Worker processes ignore both (a terminal or a scheduler may signal
the whole process group) and are closed by the trainer.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ignore_stop_signals() -> None:
    """For worker processes: the trainer decides what a stop signal means."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class StopOnSignal:
    """While active, the first SIGINT or SIGTERM only records itself in ``signal``; a second one
    raises KeyboardInterrupt. Does nothing outside the main thread (signal handlers live there)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.signal = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\npokerl: {name}: stopping after this update and saving a checkpoint (again to abort)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
