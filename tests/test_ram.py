"""RAM codecs: decoding on a fake memory, both ways for every encoding, and writes through the env on the real ROM."""

from __future__ import annotations

import random

import pytest
import yaml

from conftest import TQ_PROFILE, make_tq
from pokerl.errors import ConfigError
from pokerl.ram import CODECS, Flags, RamField

SIZES = {"u8": [1], "u16be": [2], "u16le": [2], "bcd": [1, 2, 3], "bitfield": [1, 2, 4], "flags": [1, 4, 40]}
MEMORY = {0xC000: 0x12, 0xC001: 0x34, 0xC002: 0x56, 0xC003: 0b1000_0101, 0xC004: 0x01}


def test_u8() -> None:
    assert RamField("a", 0xC000, "u8").read(MEMORY) == 0x12


def test_u16_big_and_little_endian() -> None:
    assert RamField("a", 0xC000, "u16be", 2).read(MEMORY) == 0x1234
    assert RamField("a", 0xC000, "u16le", 2).read(MEMORY) == 0x3412


def test_bcd() -> None:
    assert RamField("money", 0xC000, "bcd", 3).read(MEMORY) == 123456
    assert RamField("money", 0xC001, "bcd", 1).read(MEMORY) == 34


def test_bitfield_is_little_endian_int() -> None:
    assert RamField("badges", 0xC003, "bitfield", 1).read(MEMORY) == 0b1000_0101
    assert RamField("b", 0xC003, "bitfield", 2).read(MEMORY) == 0x0185


def test_flags_index_like_a_bit_array() -> None:
    flags = RamField("events", 0xC003, "flags", 2).read(MEMORY)
    assert isinstance(flags, Flags)
    # flag i = byte i >> 3, bit i & 7
    assert [i for i in range(16) if flags[i]] == [0, 2, 7, 8]
    assert flags.count() == 4 and flags[40] == 0
    with pytest.raises(IndexError):
        flags[-1]


def test_works_on_a_bytearray_window() -> None:
    class Window:
        """Addresses 0xC000.. backed by a bytearray, like PyBoy's memory view."""

        def __init__(self, data: bytes) -> None:
            self.data = bytearray(data)

        def __getitem__(self, addr: int) -> int:
            return self.data[addr - 0xC000]

    mem = Window(bytes([0x00, 0x99, 0x99, 0xFF]))
    assert RamField("m", 0xC001, "bcd", 2).read(mem) == 9999
    assert RamField("m", 0xC001, "u16le", 2).read(mem) == 0x9999
    flags = RamField("f", 0xC003, "flags", 1).read(mem)
    assert [flags[i] for i in range(8)] == [1] * 8


def test_every_encoding_has_sizes_here() -> None:
    assert set(SIZES) == set(CODECS)


@pytest.mark.parametrize("kind", list(SIZES))
def test_encode_then_decode_gives_the_value_back(kind: str) -> None:
    rng = random.Random(kind)
    for size in SIZES[kind]:
        field = RamField("f", 0xC000, kind, size)
        top = CODECS[kind].limit(size)
        for value in [0, 1, top, *(rng.randint(0, top) for _ in range(50))]:
            mem = bytearray(0x10000)
            field.write(mem, value)
            assert field.read(mem) == value
            assert mem[0xC000 + size] == 0  # nothing written past the field
        with pytest.raises(ValueError, match="does not fit"):
            field.encode(top + 1)


def test_byte_layouts() -> None:
    assert RamField("m", 0, "bcd", 3).encode(123456) == bytes([0x12, 0x34, 0x56])
    assert RamField("m", 0, "u16be", 2).encode(0x1234) == bytes([0x12, 0x34])
    assert RamField("m", 0, "u16le", 2).encode(0x1234) == bytes([0x34, 0x12])
    assert RamField("m", 0, "bitfield", 2).encode(0x0185) == bytes([0x85, 0x01])
    flags = Flags(0)
    assert RamField("f", 0, "flags", 2).encode(flags | (1 << 8) | 1) == bytes([0x01, 0x01])


def test_env_writes_bcd_as_packed_decimal() -> None:
    """A ``bcd`` field written at reset (``writes``) holds the decimal digits, not plain binary."""
    data = yaml.safe_load(TQ_PROFILE.read_text())
    data["ram"]["coins"] = {"addr": 0xD800, "type": "bcd", "size": 2}
    env = make_tq(game=data, writes={"ballast": 0, "coins": 1234})
    try:
        _, info = env.reset(seed=1)
        assert info["coins"] == 1234
        assert env.session.memory[0xD800] == 0x12 and env.session.memory[0xD801] == 0x34
    finally:
        env.close()


def test_env_writes_that_do_not_fit_are_one_line_errors_at_construction() -> None:
    """``writes=`` given to the env are checked as a profile's ``boot.writes`` are: at construction."""
    for writes, words in (({"ballast": 999}, "does not fit RAM field ballast"), ({"ballast": "lots"}, "ballast"),
                          ({"nosuch": 1}, "no such RAM field 'nosuch'")):
        with pytest.raises(ConfigError, match=words) as err:
            make_tq(writes=writes)
        assert "\n" not in str(err.value)
