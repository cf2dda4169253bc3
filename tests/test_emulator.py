"""EmulatorSession on the real ROM: actions, savestates, corrupt states and no save files on disk."""

from __future__ import annotations

import hashlib
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import TQ_ROM, make_tq
from pokerl.emulator import EmulatorSession, read_rom
from pokerl.errors import CheckpointError, RomError

TQ_SHA1 = "bff380b5847bb87cf303b0501173d2c0d01bd49f"


@pytest.fixture
def session() -> Iterator[EmulatorSession]:
    """A session booted to control (120 frames) with ballast 0."""
    s = EmulatorSession(read_rom(TQ_ROM, (TQ_SHA1,)))
    s.tick(120, True)
    s.memory[0xC016] = 0
    yield s
    s.close()


def pos(s: EmulatorSession) -> tuple[int, int, int]:
    return s.memory[0xC000], s.memory[0xC001], s.memory[0xC002]


def test_read_rom_checks_sha1() -> None:
    assert hashlib.sha1(read_rom(TQ_ROM, (TQ_SHA1,))).hexdigest() == TQ_SHA1
    with pytest.raises(RomError):
        read_rom(TQ_ROM, ("0" * 40,))
    with pytest.raises(RomError):
        read_rom(None)


def test_act_moves_one_tile_and_counts_frames(session: EmulatorSession) -> None:
    assert pos(session) == (0, 9, 9)
    start = session.frames
    session.act("right")
    assert pos(session) == (0, 10, 9)
    assert session.frames - start == 24
    session.act(None)  # noop
    assert pos(session) == (0, 10, 9)
    frame = session.gray_half()
    assert frame.shape == (72, 80) and frame.dtype == np.uint8 and frame.std() > 0
    assert session.rgb().shape == (144, 160, 3)


def test_save_load_round_trip_restores_position(session: EmulatorSession) -> None:
    state = session.save_state()
    assert len(zlib.decompress(state)) > len(state)  # zlib-compressed bytes
    for _ in range(3):
        session.act("right")
    assert pos(session) == (0, 12, 9)
    session.load_state(state)
    assert pos(session) == (0, 9, 9)
    # the restored game plays on: a move from the restored tile
    session.act("down")
    assert pos(session) == (0, 9, 10)


def test_raw_uncompressed_state_is_accepted(session: EmulatorSession) -> None:
    raw = zlib.decompress(session.save_state())
    session.act("left")
    session.load_state(raw)
    assert pos(session) == (0, 9, 9)


@pytest.mark.parametrize("state", [b"", b"garbage" * 100, zlib.compress(b"\x00" * 5000)])
def test_corrupt_savestate_is_a_checkpoint_error(session: EmulatorSession, state: bytes) -> None:
    with pytest.raises(CheckpointError) as err:
        session.load_state(state, source="savestate x.state")
    assert "x.state" in str(err.value) and "\n" not in str(err.value)


def test_truncated_savestate_is_a_checkpoint_error(session: EmulatorSession) -> None:
    good = zlib.decompress(session.save_state())
    with pytest.raises(CheckpointError):
        session.load_state(zlib.compress(good[: len(good) // 2]))


def test_bad_hold_step_frames() -> None:
    with pytest.raises(ValueError):
        EmulatorSession(TQ_ROM.read_bytes(), hold_frames=24, step_frames=24)


def test_no_ram_file_next_to_the_rom(tmp_path: Path) -> None:
    rom = tmp_path / "tinyquest.gb"
    shutil.copyfile(TQ_ROM, rom)
    env = make_tq(rom=rom)
    env.reset(seed=1)
    for a in [2, 2, 3, 4, 5]:
        env.step(a)
    env.close()
    del env
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tinyquest.gb"]


def test_close_is_idempotent() -> None:
    s = EmulatorSession(TQ_ROM.read_bytes())
    s.close()
    s.close()
    assert s.pyboy is None
