"""RAM fields and their encodings: one codec per encoding decodes bytes to a value and encodes it back.

Encodings: ``u8``; ``u16be`` / ``u16le``; ``bcd`` (``size`` bytes of big-endian packed decimal, e.g.
Pokémon money); ``bitfield`` (``size`` bytes as one little-endian integer, so ``badges & 1``
works); ``flags`` (``size`` bytes of bit flags, flag i = byte i>>3, bit i&7, read as a
:class:`Flags`, so ``events[3]`` works). Reading every field each env step goes through the
generated reader (:mod:`pokerl.codegen`), which is tested against these plain codecs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Flags(int):
    """A ``flags`` field's value: the flag array as one int, flag i = bit i (byte i>>3, bit i&7).

    ``flags[i]`` is 0 or 1, as for a list of bits, and :meth:`count` is the number of set flags.
    An int rather than a numpy array because RAM is read every env step and an int is built in a
    fraction of the time (and pickles, compares and prints as the number it is).
    """

    __slots__ = ()

    def __getitem__(self, i: int) -> int:
        if i < 0:
            raise IndexError(f"flag index {i} is negative")
        return (self >> i) & 1

    def count(self) -> int:
        """How many flags are set."""
        return int(self).bit_count()


def _bcd_decode(raw: bytes) -> int:
    value = 0
    for b in raw:
        value = value * 100 + (b >> 4) * 10 + (b & 0xF)
    return value


def _bcd_encode(value: int, size: int) -> bytes:
    digits = f"{value:0{2 * size}d}"
    return bytes(int(digits[i]) << 4 | int(digits[i + 1]) for i in range(0, 2 * size, 2))


@dataclass(frozen=True)
class Codec:
    """How one encoding turns ``size`` bytes into a value and back; ``fixed``: its byte count, if fixed."""

    fixed: int | None
    decode: Callable[[bytes], Any]
    encode: Callable[[int, int], bytes]  # (value, size) -> bytes
    limit: Callable[[int], int]  # size -> the largest value it holds


CODECS: dict[str, Codec] = {
    "u8": Codec(1, lambda raw: raw[0], lambda v, n: bytes([v]), lambda n: 0xFF),
    "u16be": Codec(2, lambda raw: int.from_bytes(raw, "big"), lambda v, n: v.to_bytes(2, "big"), lambda n: 0xFFFF),
    "u16le": Codec(2, lambda raw: int.from_bytes(raw, "little"), lambda v, n: v.to_bytes(2, "little"),
                   lambda n: 0xFFFF),
    "bcd": Codec(None, _bcd_decode, _bcd_encode, lambda n: 10 ** (2 * n) - 1),
    "bitfield": Codec(None, lambda raw: int.from_bytes(raw, "little"), lambda v, n: v.to_bytes(n, "little"),
                      lambda n: (1 << (8 * n)) - 1),
    "flags": Codec(None, lambda raw: Flags(int.from_bytes(raw, "little")), lambda v, n: int(v).to_bytes(n, "little"),
                   lambda n: (1 << (8 * n)) - 1),
}


@dataclass(frozen=True)
class RamField:
    """One named value in the game's memory: ``size`` bytes at ``addr`` in encoding ``type``."""

    name: str
    addr: int
    type: str = "u8"
    size: int = 1

    def read(self, memory: Any) -> Any:
        """Decode this field from a PyBoy ``memory`` object (or anything indexable by address)."""
        return CODECS[self.type].decode(bytes(memory[self.addr + i] for i in range(self.size)))

    def encode(self, value: int) -> bytes:
        """The bytes that hold ``value`` in this field's encoding; ValueError when it does not fit."""
        if not 0 <= int(value) <= CODECS[self.type].limit(self.size):
            raise ValueError(f"{value} does not fit RAM field {self.name} ({self.type}, {self.size} byte(s))")
        return CODECS[self.type].encode(int(value), self.size)

    def write(self, memory: Any, value: int) -> None:
        """Store ``value`` into ``memory`` in this field's encoding."""
        for i, byte in enumerate(self.encode(value)):
            memory[self.addr + i] = byte
