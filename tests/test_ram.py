"""RAM codecs both ways for every encoding, and writes through the env on the real ROM."""

from __future__ import annotations

import random

import pytest
import yaml

from conftest import TQ_PROFILE, make_tq
from pokerl.errors import ConfigError
from pokerl.ram import CODECS, Flags, RamField

SIZES = {"u8": [1], "u16be": [2], "u16le": [2], "bcd": [1, 2, 3], "bitfield": [1, 2, 4], "flags": [1, 4, 40]}


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
