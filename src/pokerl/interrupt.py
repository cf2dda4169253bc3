"""Stopping a run cleanly: the first Ctrl-C asks the training loop to stop after the update in progress.

The loop then checkpoints (with every env's state) and ends; a second Ctrl-C aborts at once.
Worker processes ignore SIGINT (a terminal sends it to the whole process group) and are closed by
the trainer.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any


class StopOnInterrupt:
    """While active, the first Ctrl-C (SIGINT) only sets ``requested``; a second one raises
    KeyboardInterrupt. Does nothing outside the main thread (signal handlers live there)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopOnInterrupt:
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\npokerl: stopping after this update and saving a checkpoint (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
