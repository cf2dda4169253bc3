"""From power-on to player control: the profile's boot script (or the user's savestate), and its cache.

Making a start state can take seconds (Pokémon's intro is ~4,260 frames), so it is made once and kept
in a file: in the run dir for a training run (``boot_cache``), else in the user's cache folder
(:func:`user_cache_dir`: ``gym.make`` and scripts outside a run). The file name hashes the ROM and the
boot procedure, so another ROM or profile never reuses it; a corrupt file is made again. Envs starting
together (a run's workers) take turns through a lock beside the file: the first makes the state, the
others load it. A state made from a user's ROM stays on that user's machine: pokerl never ships one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

try:
    import fcntl
except ImportError:  # Windows: no lock; envs starting together may each make the state once
    fcntl = None  # type: ignore[assignment]

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
        say = frames >= SAY_FRAMES
        live = say and sys.stderr.isatty()  # a bar in a terminal; in a pipe or a log, one line when done
        with tqdm(total=frames, unit="frame", unit_scale=True, leave=False, disable=not live,
                  desc=f"{profile.name}: making the start state (power-on to control, scripted)") as bar:
            session.tick(spec.ticks)
            bar.update(spec.ticks)
            for step in spec.sequence:
                session.press(step.button, step.hold, step.frames, render=False)
                bar.update(step.frames)
        if say and not live:
            print(f"{profile.name}: made the start state (power-on to control, scripted, {frames:,} frames)",
                  file=sys.stderr, flush=True)
    session.tick(1, True)
    check_control(session, profile, rom_path)
    return session.save_state()


def user_cache_dir() -> Path:
    """Where start states made outside a run are kept: ``$POKERL_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/pokerl``, else ``~/.cache/pokerl`` (each with a ``start-states`` folder)."""
    root = os.environ.get("POKERL_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / \
        "pokerl"
    return Path(root).expanduser() / "start-states"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (made if missing) while the block runs; no lock where there is none."""
    if fcntl is None:
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _load_cached(session: EmulatorSession, profile: GameProfile, rom_path: Path | None, path: Path) -> bytes | None:
    """The start state cached in ``path``, loaded into ``session``; None when there is none or it is corrupt."""
    if not path.is_file():
        return None
    try:
        cached = path.read_bytes()
        session.load_state(cached, source=f"cached start state {path}")
        check_control(session, profile, rom_path)
        return cached
    except (OSError, PokerlError):
        return None  # boot again and rewrite it


def start_state(session: EmulatorSession, profile: GameProfile, rom_path: Path | None, rom: bytes,
                cache_dir: str | os.PathLike[str] | None) -> bytes:
    """:func:`boot`, or load the start state an earlier env left in ``cache_dir`` (None: :func:`user_cache_dir`).
    A cache folder that cannot be written only costs the boot."""
    if profile.boot.state:
        return boot(session, profile, rom_path)
    key = hashlib.sha1(rom + repr(profile.boot).encode()).hexdigest()[:16]
    path = Path(cache_dir if cache_dir is not None else user_cache_dir()) / f"{profile.name}-{key}.state"
    cached = _load_cached(session, profile, rom_path, path)
    if cached is not None:
        return cached
    with contextlib.ExitStack() as stack:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_locked(path.with_name(f".{path.name}.lock")))
        except OSError:  # a read-only home, a full disk: boot, keep nothing
            return boot(session, profile, rom_path)
        cached = _load_cached(session, profile, rom_path, path)  # made by the env that held the lock before
        if cached is not None:
            return cached
        state = boot(session, profile, rom_path)
        with contextlib.suppress(OSError):
            write_atomically(path, state)
        return state
