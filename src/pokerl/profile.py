"""Game profiles: what a game is, where its state lives in RAM and how to reach control, as data.

A profile is a YAML file in ``configs/game/<name>.yaml`` (or any path, or a mapping from Hydra).
It is loaded into typed dataclasses; an unknown key, a wrong type or an address out of range is a
one-line :class:`~pokerl.errors.ConfigError` naming the file and the key.

RAM fields have an encoding: ``u8``, ``u16be``, ``u16le``, ``bcd`` (``size`` bytes, big-endian
packed decimal, e.g. Pokémon money), ``bitfield`` (``size`` bytes read as one little-endian
integer, so ``badges & 1`` works) or ``flags`` (``size`` bytes of bit flags, flag i = byte i>>3,
bit i&7, read as a :class:`Flags`, so ``events[3]`` works).
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pokerl.errors import ConfigError

BUTTONS = ("a", "b", "start", "select", "up", "down", "left", "right")
ENCODINGS = {"u8": 1, "u16be": 2, "u16le": 2, "bcd": None, "bitfield": None, "flags": None}
VECTOR_KINDS = ("scale", "fraction", "bits", "onehot")


def _where(source: str, key: str) -> str:
    return f"{source}: {key}" if source else key


def _take(data: Mapping[str, Any], allowed: Mapping[str, type | tuple[type, ...]], source: str, prefix: str,
          required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check ``data`` has only ``allowed`` keys of the allowed types; return it as a dict."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_where(source, prefix)}: expected a mapping, got {type(data).__name__}")
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in allowed:
            raise ConfigError(f"{_where(source, path)}: unknown key (known: {', '.join(sorted(allowed))})")
        types = allowed[key]
        ok = value is None and (types is type(None) or (isinstance(types, tuple) and type(None) in types))
        if not ok and (isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,))):
            ok = False
        elif not ok:
            ok = isinstance(value, types)
        if not ok:
            names = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
            raise ConfigError(f"{_where(source, path)}: expected {names}, got {value!r}")
    for key in required:
        if key not in data:
            path = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"{_where(source, path)}: required key is missing")
    return dict(data)


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


@dataclass(frozen=True)
class RamField:
    """One named value in the game's memory."""

    name: str
    addr: int
    type: str = "u8"
    size: int = 1

    def read(self, memory: Any) -> Any:
        """Decode this field from a PyBoy ``memory`` object (or anything indexable by address)."""
        t, a = self.type, self.addr
        if t == "u8":
            return memory[a]
        if t == "u16be":
            return (memory[a] << 8) | memory[a + 1]
        if t == "u16le":
            return memory[a] | (memory[a + 1] << 8)
        raw = [memory[a + i] for i in range(self.size)]
        if t == "bitfield":
            return int.from_bytes(bytes(raw), "little")
        if t == "bcd":
            value = 0
            for b in raw:
                value = value * 100 + (b >> 4) * 10 + (b & 0xF)
            return value
        return Flags(int.from_bytes(bytes(raw), "little"))  # flags: flag i = bit i of the little-endian bytes


def compile_reader(fields: Mapping[str, RamField]) -> Any:
    """A function ``memory -> {name: value}`` reading every field, generated for this RAM map.

    The RAM is read every env step; one generated dict expression (``m[0xC000]``,
    ``(m[0xC005] << 8) | m[0xC006]``, ...) costs a fraction of a loop over the fields. Only ints
    from the validated profile enter the generated source; other encodings call ``RamField.read``.
    """
    items = list(fields.items())
    exprs = []
    for i, (name, f) in enumerate(items):
        a = f.addr
        if f.type == "u8":
            expr = f"m[{a}]"
        elif f.type == "u16be":
            expr = f"(m[{a}] << 8) | m[{a + 1}]"
        elif f.type == "u16le":
            expr = f"m[{a}] | (m[{a + 1}] << 8)"
        elif f.type == "bitfield" and f.size == 1:
            expr = f"m[{a}]"
        elif f.type == "flags":
            expr = f"_Flags(int.from_bytes(bytes(m[{a}:{a + f.size}]), 'little'))"
        else:
            expr = f"_fields[{i}].read(m)"
        exprs.append(f"{name!r}: {expr}")
    namespace: dict[str, Any] = {"_fields": [f for _, f in items], "_Flags": Flags}
    exec(f"def read_ram(m):\n    return {{{', '.join(exprs)}}}\n", namespace)  # noqa: S102 — ints and reprs only
    return namespace["read_ram"]


VECTOR_LIMIT = 10.0  # the vector observation's bound: scaled and fraction features are clipped to it


def compile_vector(features: tuple[VectorFeature, ...]) -> Any:
    """A function ``ram dict -> list[float]`` building the ``vector`` observation, generated like
    :func:`compile_reader` (it runs every env step). Fields are unsigned, so every feature is >= 0;
    the unbounded kinds (scale, fraction) are clipped to :data:`VECTOR_LIMIT` in the expression."""
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
    namespace: dict[str, Any] = {}
    exec(f"def vector(r):\n    return [{', '.join(exprs)}]\n", namespace)  # noqa: S102 — ints, floats and reprs only
    return namespace["vector"]


@dataclass(frozen=True)
class BootStep:
    """Press ``button`` (or nothing) for ``hold`` frames, then run until ``frames`` have passed."""

    button: str | None
    hold: int
    frames: int


@dataclass(frozen=True)
class BootSpec:
    """How to get from power-on to player control."""

    ticks: int = 0  # frames to run right after power-on
    sequence: tuple[BootStep, ...] = ()  # scripted button presses after that
    state: str | None = None  # or a savestate the user made (path), loaded instead of the script
    check: Mapping[str, int] = field(default_factory=dict)  # RAM fields that must hold these values at control
    seed_field: str | None = None  # RAM field the env writes the episode seed into (a game RNG)
    writes: Mapping[str, int] = field(default_factory=dict)  # RAM writes after boot (e.g. ballast)


@dataclass(frozen=True)
class VectorFeature:
    """One entry of the ``vector`` observation, made from a RAM field.

    ``scale``: value * scale; ``fraction``: value / other field (``over``); ``bits``: the low
    ``size`` bits (or flags) as 0/1; ``onehot``: one-hot of the value over ``size`` classes.
    """

    field: str
    kind: str
    size: int = 1
    scale: float = 1.0
    over: str | None = None


@dataclass(frozen=True)
class WorldMap:
    """Where each map's tiles sit on one global grid (for heat maps)."""

    offsets: Mapping[int, tuple[int, int]]
    width: int
    height: int
    map_width: int
    map_height: int


@dataclass(frozen=True)
class Helper:
    """A scripted helper a run may switch on (``env.helpers``): after each action, while ``when``
    holds, press ``press`` (at most ``max_presses`` times). E.g. auto-advancing text boxes."""

    when: str
    press: str
    max_presses: int = 16


@dataclass(frozen=True)
class GameProfile:
    """Everything game-specific the environment needs."""

    name: str
    source: str
    rom_file: str | None  # bundled ROM file name inside pokerl/games, or None (user supplies)
    sha1: tuple[str, ...]
    title: str | None
    env_var: str | None  # environment variable that may name the ROM path
    actions: tuple[str, ...]
    boot: BootSpec
    ram: Mapping[str, RamField]
    coords: tuple[str, str, str]  # map, x, y field names
    vector: tuple[VectorFeature, ...]
    visited_cell: int  # pixels of the 72x80 observation per map tile, for the visited crop
    world_map: WorldMap
    done_when: str | None  # a predicate over RAM fields that ends the episode (game complete)
    busy_when: str | None = None  # a predicate: the player is in a battle or text (no stuck penalty)
    helpers: Mapping[str, Helper] = field(default_factory=dict)  # optional scripted helpers (env.helpers)

    @property
    def vector_size(self) -> int:
        return sum(f.size for f in self.vector)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_read_ram", compile_reader(self.ram))
        object.__setattr__(self, "vector_values", compile_vector(self.vector))

    def read_ram(self, memory: Any) -> dict[str, Any]:
        """All RAM fields decoded into a dict (name → int, or :class:`Flags` for flag arrays), in the profile's order.

        ``memory``: PyBoy's memory view, or anything indexable by address and address slices.
        """
        return self._read_ram(memory)  # type: ignore[attr-defined]

    def rom_path(self, rom: str | os.PathLike[str] | None = None) -> Path | None:
        """The ROM to load: the argument, the profile's environment variable, or the bundled ROM."""
        if rom:
            return Path(rom).expanduser()
        for var in (self.env_var, "POKERL_ROM"):
            if var and os.environ.get(var):
                return Path(os.environ[var]).expanduser()
        if self.rom_file:
            return Path(str(importlib.resources.files("pokerl.games") / self.rom_file))
        return None


def _parse_int(value: Any, source: str, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{_where(source, path)}: expected an integer address, got {value!r}")
    try:
        return int(value, 0) if isinstance(value, str) else value
    except ValueError:
        raise ConfigError(f"{_where(source, path)}: expected an integer address, got {value!r}") from None


def _parse_ram(data: Mapping[str, Any], source: str) -> dict[str, RamField]:
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{_where(source, 'ram')}: expected a non-empty mapping of fields")
    fields: dict[str, RamField] = {}
    for name, spec in data.items():
        path = f"ram.{name}"
        spec = _take(spec, {"addr": (int, str), "type": str, "size": int}, source, path, required=("addr",))
        addr = _parse_int(spec["addr"], source, f"{path}.addr")
        kind = spec.get("type", "u8")
        if kind not in ENCODINGS:
            raise ConfigError(f"{_where(source, path + '.type')}: unknown encoding {kind!r} "
                              f"(known: {', '.join(ENCODINGS)})")
        size = ENCODINGS[kind] or int(spec.get("size", 1))
        if "size" in spec and ENCODINGS[kind] and spec["size"] != ENCODINGS[kind]:
            raise ConfigError(f"{_where(source, path + '.size')}: {kind} is {ENCODINGS[kind]} byte(s), got {spec['size']}")
        if size < 1:
            raise ConfigError(f"{_where(source, path + '.size')}: must be >= 1, got {size}")
        # Game state lives in work RAM (0xC000-0xDFFF), cartridge RAM (0xA000-0xBFFF) or HRAM.
        in_range = (addr >= 0xA000 and addr + size - 1 <= 0xDFFF) or (addr >= 0xFF80 and addr + size - 1 <= 0xFFFE)
        if not in_range:
            raise ConfigError(f"{_where(source, path + '.addr')}: address {addr:#06x}+{size} is out of range "
                              "(RAM fields must lie in 0xA000-0xDFFF or 0xFF80-0xFFFE)")
        fields[name] = RamField(name=str(name), addr=addr, type=kind, size=size)
    return fields


def _parse_boot(data: Mapping[str, Any], source: str, ram: Mapping[str, RamField]) -> BootSpec:
    data = _take(data, {"ticks": int, "sequence": list, "state": (str, type(None)), "check": dict,
                        "seed_field": (str, type(None)), "writes": dict}, source, "boot")
    steps = []
    for i, item in enumerate(data.get("sequence", [])):
        path = f"boot.sequence[{i}]"
        item = _take(item, {"press": (str, type(None)), "hold": int, "frames": int, "repeat": int},
                     source, path, required=("frames",))
        button = item.get("press")
        if button is not None and button not in BUTTONS:
            raise ConfigError(f"{_where(source, path + '.press')}: unknown button {button!r} (known: {', '.join(BUTTONS)})")
        hold = int(item.get("hold", 8 if button else 0))
        if item["frames"] < max(hold, 1):
            raise ConfigError(f"{_where(source, path + '.frames')}: must be >= hold and >= 1")
        steps.extend([BootStep(button, hold, int(item["frames"]))] * int(item.get("repeat", 1)))
    for key in ("check", "writes"):
        for name, value in data.get(key, {}).items():
            if name not in ram:
                raise ConfigError(f"{_where(source, f'boot.{key}.{name}')}: no such RAM field")
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{_where(source, f'boot.{key}.{name}')}: expected int, got {value!r}")
    seed_field = data.get("seed_field")
    if seed_field is not None and seed_field not in ram:
        raise ConfigError(f"{_where(source, 'boot.seed_field')}: no such RAM field {seed_field!r}")
    return BootSpec(ticks=int(data.get("ticks", 0)), sequence=tuple(steps), state=data.get("state"),
                    check=dict(data.get("check", {})), seed_field=seed_field, writes=dict(data.get("writes", {})))


def _parse_vector(items: Any, source: str, ram: Mapping[str, RamField]) -> tuple[VectorFeature, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{_where(source, 'vector')}: expected a list of features")
    out = []
    for i, item in enumerate(items):
        path = f"vector[{i}]"
        item = _take(item, {"field": str, "scale": (int, float), "over": str, "bits": int, "onehot": int},
                     source, path, required=("field",))
        name = item["field"]
        if name not in ram:
            raise ConfigError(f"{_where(source, path + '.field')}: no such RAM field {name!r}")
        kinds = [k for k in ("over", "bits", "onehot") if k in item]
        if len(kinds) > 1:
            raise ConfigError(f"{_where(source, path)}: use one of over/bits/onehot, not {kinds}")
        if "over" in item:
            if item["over"] not in ram:
                raise ConfigError(f"{_where(source, path + '.over')}: no such RAM field {item['over']!r}")
            out.append(VectorFeature(name, "fraction", 1, over=item["over"]))
        elif "bits" in item:
            out.append(VectorFeature(name, "bits", int(item["bits"])))
        elif "onehot" in item:
            out.append(VectorFeature(name, "onehot", int(item["onehot"])))
        else:
            scale = float(item.get("scale", 1.0))
            if not scale > 0:
                raise ConfigError(f"{_where(source, path + '.scale')}: must be > 0, got {scale!r}")
            out.append(VectorFeature(name, "scale", 1, scale=scale))
    return tuple(out)


def _parse_world(data: Mapping[str, Any], source: str) -> WorldMap:
    data = _take(data, {"offsets": dict, "size": list, "map_size": list}, source, "world_map",
                 required=("offsets", "size", "map_size"))
    offsets = {}
    for key, value in data["offsets"].items():
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
            raise ConfigError(f"{_where(source, f'world_map.offsets.{key}')}: expected [x, y], got {value!r}")
        offsets[_parse_int(key, source, f"world_map.offsets.{key}")] = (value[0], value[1])
    for key in ("size", "map_size"):
        v = data[key]
        if not (len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v)):
            raise ConfigError(f"{_where(source, 'world_map.' + key)}: expected [width, height], got {v!r}")
    return WorldMap(offsets, data["size"][0], data["size"][1], data["map_size"][0], data["map_size"][1])


PROFILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str, "rom": dict, "actions": list, "boot": dict, "ram": dict, "coords": dict,
    "vector": list, "visited_cell": int, "world_map": dict, "done_when": (str, type(None)),
    "busy_when": (str, type(None)), "helpers": dict,
}


def profile_from_mapping(data: Mapping[str, Any], source: str = "") -> GameProfile:
    """Build and check a :class:`GameProfile` from a mapping (YAML or Hydra)."""
    data = _take(data, PROFILE_KEYS, source, "", required=("name", "rom", "actions", "ram", "coords"))
    source = source or f"game profile {data['name']}"
    rom = _take(data["rom"], {"bundled": (str, type(None)), "sha1": list, "title": (str, type(None)),
                              "env": (str, type(None))}, source, "rom")
    sha1 = tuple(str(s).lower() for s in rom.get("sha1", []))
    if any(len(s) != 40 for s in sha1):
        raise ConfigError(f"{_where(source, 'rom.sha1')}: each SHA-1 must be 40 hex digits")
    actions = tuple(data["actions"])
    for a in actions:
        if a not in (*BUTTONS, "noop"):
            raise ConfigError(f"{_where(source, 'actions')}: unknown action {a!r} (known: noop, {', '.join(BUTTONS)})")
    if not actions:
        raise ConfigError(f"{_where(source, 'actions')}: needs at least one action")
    ram = _parse_ram(data["ram"], source)
    coords = _take(data["coords"], {"map": str, "x": str, "y": str}, source, "coords", required=("map", "x", "y"))
    for key, name in coords.items():
        if name not in ram:
            raise ConfigError(f"{_where(source, 'coords.' + key)}: no such RAM field {name!r}")
    world = data.get("world_map", {"offsets": {}, "size": [256, 256], "map_size": [256, 256]})
    from pokerl.rewards import Predicate

    done_when, busy_when = data.get("done_when"), data.get("busy_when")
    for key, text in (("done_when", done_when), ("busy_when", busy_when)):
        if text is not None:
            Predicate(text, ram, _where(source, key))
    helpers = {}
    for hname, spec in (data.get("helpers") or {}).items():
        spec = _take(spec, {"when": str, "press": str, "max_presses": int}, source, f"helpers.{hname}",
                     required=("when", "press"))
        if spec["press"] not in BUTTONS:
            raise ConfigError(f"{_where(source, f'helpers.{hname}.press')}: unknown button {spec['press']!r}")
        Predicate(spec["when"], ram, _where(source, f"helpers.{hname}.when"))
        helpers[str(hname)] = Helper(spec["when"], spec["press"], int(spec.get("max_presses", 16)))
    return GameProfile(
        name=data["name"], source=source, rom_file=rom.get("bundled"), sha1=sha1, title=rom.get("title"),
        env_var=rom.get("env"), actions=actions, boot=_parse_boot(data.get("boot", {}), source, ram), ram=ram,
        coords=(coords["map"], coords["x"], coords["y"]), vector=_parse_vector(data.get("vector", []), source, ram),
        visited_cell=int(data.get("visited_cell", 8)), world_map=_parse_world(world, source), done_when=done_when,
        busy_when=busy_when, helpers=helpers,
    )


def config_path(group: str, name: str) -> Path:
    """The shipped config file ``configs/<group>/<name>.yaml``."""
    return Path(str(importlib.resources.files("pokerl.configs") / group / f"{name}.yaml"))


def load_yaml(group: str, name_or_path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """Load a config by name (``configs/<group>/<name>.yaml``) or path; returns (data, source)."""
    text = str(name_or_path)
    path = Path(text).expanduser() if text.endswith((".yaml", ".yml")) or os.sep in text else config_path(group, text)
    if not path.is_file():
        raise ConfigError(f"no {group} config {text!r} (looked for {path})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data, str(path)


def load_profile(profile: str | os.PathLike[str] | Mapping[str, Any]) -> GameProfile:
    """A game profile from a name in ``configs/game/``, a YAML path or a mapping."""
    if isinstance(profile, Mapping):
        return profile_from_mapping(profile, f"game profile {profile.get('name', '?')}")
    data, source = load_yaml("game", profile)
    return profile_from_mapping(data, source)
