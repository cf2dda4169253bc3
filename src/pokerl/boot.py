"""From power-on to player control: the profile's boot script (or the user's savestate), and its cache.

Making a start state can take seconds (Pokémon's intro is ~4,260 frames), so the envs of one run
share it through a file in the run dir (``boot_cache``). The file name hashes the ROM and the boot
procedure, so another ROM or profile never reuses it; a corrupt file is made again. A state made
from a user's ROM stays in that user's run dir: pokerl never ships one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tqdm import tqdm

from pokerl.atomic import write_atomically
from pokerl.emulator import EmulatorSession
from pokerl.errors import ConfigError, PokerlError
from pokerl.profile import GameProfile

# Boots this long get a progress bar on stderr: Pokémon's intro (~4,260 frames) takes seconds per env,
# tinyquest's 120 frames a few milliseconds.
SAY_FRAMES = 1000


def check_control(session: EmulatorSession, profile: GameProfile, rom_path: Path | None) -> None:
    """The profile's ``boot.check`` fields hold their values, or a one-line error."""
    for name, value in profile.boot.check.items():
        got = profile.ram[name].read(session.memory)
        if got != value:
            raise ConfigError(f"{profile.source}: boot did not reach control: {name} is {got}, expected {value}"
                              f" (ROM {rom_path})")


def boot(session: EmulatorSession, profile: GameProfile, rom_path: Path | None) -> bytes:
    """Power-on to player control (script or savestate); returns the state to reset to."""
    spec = profile.boot
    if spec.state:
        path = Path(spec.state).expanduser()
        if not path.is_file():
            raise ConfigError(f"{profile.source}: boot.state: savestate not found: {path}")
        session.load_state(path.read_bytes(), source=f"savestate {path}")
    else:
        frames = spec.ticks + sum(step.frames for step in spec.sequence)
        with tqdm(total=frames, unit="frame", unit_scale=True, leave=False, disable=frames < SAY_FRAMES,
                  desc=f"{profile.name}: making the start state (power-on to control, scripted)") as bar:
            session.tick(spec.ticks)
            bar.update(spec.ticks)
            for step in spec.sequence:
                session.press(step.button, step.hold, step.frames, render=False)
                bar.update(step.frames)
    session.tick(1, True)
    check_control(session, profile, rom_path)
    return session.save_state()


def start_state(session: EmulatorSession, profile: GameProfile, rom_path: Path | None, rom: bytes,
                cache_dir: str | os.PathLike[str] | None) -> bytes:
    """:func:`boot`, or load the start state an earlier env of this run left in ``cache_dir``."""
    if cache_dir is None or profile.boot.state:
        return boot(session, profile, rom_path)
    key = hashlib.sha1(rom + repr(profile.boot).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{profile.name}-{key}.state"
    if path.is_file():
        try:
            cached = path.read_bytes()
            session.load_state(cached, source=f"cached start state {path}")
            check_control(session, profile, rom_path)
            return cached
        except PokerlError:
            pass  # fall through: boot again and rewrite it
    state = boot(session, profile, rom_path)
    write_atomically(path, state)
    return state
