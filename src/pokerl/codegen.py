"""The one place that generates code: the per-step RAM reader, vector builder and milestone check.

These three run every env step. One generated expression per profile (``m[0xC000]``,
``(m[0xC005] << 8) | m[0xC006]``, ...) costs a fraction of a loop over fields or one ``eval`` per
predicate (measured: read_ram 7.3 → 5.1 µs, vector 7 → 4.8 µs, milestones 8.3 → 5.8 µs per step).
Only ints, floats, reprs of names and whitelisted predicate ASTs enter the sources. Each function
gets a file name of its own, registered with :mod:`linecache`, so a traceback shows the generated
line. ``tests/test_codegen.py`` checks each against the plain version (the codecs in
:mod:`pokerl.ram`, a loop over vector features, one predicate at a time) on random RAM.
"""

from __future__ import annotations

import itertools
import linecache
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pokerl.ram import Flags, RamField

if TYPE_CHECKING:
    from pokerl.profile import VectorFeature
    from pokerl.rewards import Milestone

VECTOR_LIMIT = 10.0  # the vector observation's bound: scaled and fraction features are clipped to it

_serial = itertools.count()


def generate(name: str, source: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    """Compile ``source`` (which defines function ``name``) under a file name of its own; return it."""
    filename = f"<pokerl generated {name} #{next(_serial)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 — see the module docstring
    return namespace[name]


def ram_reader(fields: Mapping[str, RamField]) -> Callable[[Any], dict[str, Any]]:
    """``memory -> {name: value}`` reading every field in one dict expression."""
    items = list(fields.values())
    exprs = []
    for i, f in enumerate(items):
        a = f.addr
        if f.type == "u8" or (f.type == "bitfield" and f.size == 1):
            expr = f"m[{a}]"
        elif f.type == "u16be":
            expr = f"(m[{a}] << 8) | m[{a + 1}]"
        elif f.type == "u16le":
            expr = f"m[{a}] | (m[{a + 1}] << 8)"
        elif f.type == "flags":
            expr = f"_Flags(int.from_bytes(bytes(m[{a}:{a + f.size}]), 'little'))"
        else:  # bcd, wider bitfields: the codec
            expr = f"_fields[{i}].read(m)"
        exprs.append(f"{f.name!r}: {expr}")
    source = f"def read_ram(m):\n    return {{{', '.join(exprs)}}}\n"
    return generate("read_ram", source, {"_fields": items, "_Flags": Flags})


def vector_builder(features: Sequence[VectorFeature]) -> Callable[[Mapping[str, Any]], list[float]]:
    """``ram dict -> list[float]``: the ``vector`` observation. Fields are unsigned, so every feature
    is >= 0; the unbounded kinds (scale, fraction) are clipped to :data:`VECTOR_LIMIT`."""
    exprs = []
    for f in features:
        v = f"r[{f.field!r}]"
        if f.kind == "scale":
            exprs.append(f"min(float({v}) * {float(f.scale)!r}, {VECTOR_LIMIT!r})")
        elif f.kind == "fraction":
            d = f"r[{f.over!r}]"
            exprs.append(f"(min(float({v}) / {d}, {VECTOR_LIMIT!r}) if {d} > 0 else 0.0)")
        elif f.kind == "bits":  # the low `size` bits (of an int, a bitfield or a Flags)
            exprs.extend(f"(({v} >> {b}) & 1)" for b in range(f.size))
        else:  # onehot
            exprs.extend(f"float({v} == {k})" for k in range(f.size))
    return generate("vector", f"def vector(r):\n    return [{', '.join(exprs)}]\n", {})


def milestone_check(milestones: Sequence[Milestone]) -> Callable[[Mapping[str, Any], set[str]], list[int]]:
    """``(ram, reached) -> indices of milestones newly reached``, every predicate inline."""
    lines = ["def check(r, reached):", "    new = []"]
    for i, m in enumerate(milestones):
        lines += [f"    if {m.name!r} not in reached and ({m.predicate.source_over('r')}):", f"        new.append({i})"]
    return generate("check", "\n".join([*lines, "    return new", ""]), {"__builtins__": {}})
