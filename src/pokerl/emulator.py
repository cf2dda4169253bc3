"""The emulator session: one headless PyBoy running one ROM, driven one action at a time.

It loads the ROM from bytes (so PyBoy never looks for or writes a ``.ram`` file next to a user's
ROM), checks its SHA-1 against the profile, runs without a window, sound or speed limit, and
renders only the last frame of each action. States are saved to zlib-compressed bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pokerl.errors import CheckpointError, RomError, one_line

MIN_ROM_SIZE = 0x8000  # the smallest cartridge (pandocs): two 16 KiB banks


def read_rom(path: str | os.PathLike[str] | None, sha1: Sequence[str] = (), what: str = "ROM") -> bytes:
    """Read a ROM file and check it: exists, looks like a Game Boy ROM, has an expected SHA-1."""
    if path is None:
        raise RomError(f"no {what} given: pass rom=PATH (or set POKERL_ROM)")
    path = Path(path)
    if not path.is_file():
        raise RomError(f"{what} not found: {path}")
    data = path.read_bytes()
    if len(data) < MIN_ROM_SIZE or len(data) % 0x4000:
        raise RomError(f"{path} is not a Game Boy ROM ({len(data)} bytes; expected a multiple of 16 KiB)")
    digest = hashlib.sha1(data).hexdigest()
    if sha1 and digest not in sha1:
        raise RomError(f"{path} has SHA-1 {digest}, expected {' or '.join(sha1)} for {what}")
    return data


class EmulatorSession:
    """A headless PyBoy for training: one :meth:`act` = hold a button, release, run to the step end."""

    def __init__(self, rom: bytes, hold_frames: int = 8, step_frames: int = 24, window: str = "null",
                 scale: int = 3) -> None:
        """``window="SDL2"`` shows the game (``pokerl-play``), ``scale`` times its size, every frame
        drawn; the session runs at unlimited speed (``pyboy.set_emulation_speed`` changes it)."""
        with warnings.catch_warnings():  # pysdl2 announces its bundled SDL2 on stderr at import: noise
            warnings.filterwarnings("ignore", message="Using SDL2 binaries", category=UserWarning)
            from pyboy import PyBoy

        if not 1 <= hold_frames < step_frames:
            raise ValueError(f"need 1 <= hold_frames < step_frames, got {hold_frames}, {step_frames}")
        self.hold_frames = hold_frames
        self.step_frames = step_frames
        self.windowed = window != "null"
        self.open = True  # False once the user closed the window (or pressed Esc)
        self.pyboy = PyBoy(io.BytesIO(rom), window=window, scale=scale, sound_emulated=False, log_level="ERROR")
        self.pyboy.set_emulation_speed(0)
        self.memory = self.pyboy.memory
        # PyBoy renders into one buffer for the session's life (``screen.ndarray`` is always the same
        # array), so the observation's view of it (green channel, every second pixel) is made once.
        self._half = self.pyboy.screen.ndarray[::2, ::2, 1]
        self._screen = self.pyboy.screen
        self.frames = 0

    def tick(self, frames: int, render: bool = False) -> None:
        """Run ``frames`` frames with no input change, rendering the last one if asked."""
        if frames > 0:
            self.pyboy.tick(frames, render)
            self.frames += frames

    def press(self, button: str | None, hold: int, frames: int, render: bool = True) -> None:
        """Hold ``button`` (or nothing) for ``hold`` frames, release, run to ``frames`` in total."""
        if button is not None:
            self.pyboy.button(button, hold)
        if self.windowed:  # draw every frame; PyBoy's tick is False once the window is closed
            for _ in range(frames):
                self.open = self.open and bool(self.pyboy.tick(1, True))
        else:
            if frames > 1:
                self.pyboy.tick(frames - 1, False)
            self.pyboy.tick(1, render)
        self.frames += frames

    def act(self, button: str | None) -> None:
        """One environment action with the configured hold/step frames; renders the last frame."""
        self.press(button, self.hold_frames, self.step_frames)

    def gray_half(self, out: np.ndarray | None = None) -> np.ndarray:
        """The last rendered frame as 72x80 grayscale (green channel, every second pixel)."""
        if out is None:
            return self._half.copy()
        out[...] = self._half
        return out

    def rgb(self) -> np.ndarray:
        """The last rendered frame, 144x160x3 uint8."""
        return self._screen.ndarray[:, :, :3].copy()

    def save_state(self) -> bytes:
        """The full emulator state, zlib-compressed (level 1: ~10 KB in under a millisecond)."""
        buf = io.BytesIO()
        self.pyboy.save_state(buf)
        return zlib.compress(buf.getvalue(), 1)

    def load_state(self, state: bytes, source: str = "savestate") -> None:
        """Restore :meth:`save_state` output (or a raw PyBoy state); one-line error if corrupt."""
        try:
            raw = zlib.decompress(state)
        except zlib.error:
            raw = bytes(state)  # a raw PyBoy state file made by the user
        try:
            self.pyboy.load_state(io.BytesIO(raw))
        except Exception as err:  # PyBoy raises various errors on garbage
            raise CheckpointError(f"corrupt or incompatible {source}: {one_line(err)}") from None

    def close(self) -> None:
        """Stop PyBoy without writing any save file."""
        if self.pyboy is not None:
            self.pyboy.stop(save=False)
            self.pyboy = None  # type: ignore[assignment]

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
