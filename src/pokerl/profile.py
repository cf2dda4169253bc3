"""Game profiles: what a game is, where its state lives in RAM and how to reach control, as data.

A profile is a YAML file in ``configs/game/<name>.yaml`` (or any path, or a mapping from Hydra);
``base: other`` starts from another profile. It is read through the one typed loader
(:mod:`pokerl.schema`) into the ``*Yaml`` dataclasses below, then checked against itself (field
names, addresses, predicates) and turned into a :class:`GameProfile`. Every mistake is a one-line
:class:`~pokerl.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pokerl import codegen
from pokerl.emulator import read_rom
from pokerl.errors import ConfigError
from pokerl.predicate import Predicate
from pokerl.ram import CODECS, RamField
from pokerl.schema import from_mapping, load_yaml, resolve_base

BUTTONS = ("a", "b", "start", "select", "up", "down", "left", "right")


# ---------------------------------------------------------------------- the YAML's shape
@dataclass
class RomYaml:
    bundled: str | None = None  # a ROM file inside the pokerl.games package
    sha1: list[str] = field(default_factory=list)  # accepted SHA-1s (empty: any ROM)
    env: str | None = None  # an environment variable that may name the ROM path


@dataclass
class RamFieldYaml:
    addr: int | str  # an int, or a string such as "0xD35E"
    type: str = "u8"
    size: int | None = None


@dataclass
class BootStepYaml:
    frames: int
    press: str | None = None
    hold: int | None = None
    repeat: int = 1


@dataclass
class BootYaml:
    ticks: int = 0
    sequence: list[BootStepYaml] = field(default_factory=list)
    state: str | None = None
    check: dict[str, int] = field(default_factory=dict)
    seed_field: str | None = None
    writes: dict[str, int] = field(default_factory=dict)


@dataclass
class CoordsYaml:
    map: str
    x: str
    y: str


@dataclass
class VectorYaml:
    field: str
    scale: float | None = None
    over: str | None = None
    bits: int | None = None
    onehot: int | None = None


@dataclass
class WorldMapYaml:
    offsets: dict[int | str, list[int]]
    size: list[int]
    map_size: list[int]
    sizes: dict[int | str, list[int]] = field(default_factory=dict)  # maps smaller than map_size
    names: dict[int | str, str] = field(default_factory=dict)  # what reports call a map (else its id)


@dataclass
class HelperYaml:
    when: str
    press: str
    max_presses: int = 16


@dataclass
class ScreenYaml:
    scrolls: bool = True  # false: the screen shows a whole map from its origin (tinyquest)
    step_pixels: int = 8  # screen pixels per coordinate step (Pokémon: 16, a 2x2-tile block)
    player: list[int] | None = None  # the player's step cell on screen [x, y] (scrolling screens; unset: no
    #                                   heat-map background can be painted)


@dataclass
class ProfileYaml:
    name: str
    rom: RomYaml
    actions: list[str]
    ram: dict[str, RamFieldYaml]
    coords: CoordsYaml
    boot: BootYaml = field(default_factory=BootYaml)
    vector: list[VectorYaml] = field(default_factory=list)
    visited_cell: int = 8
    world_map: WorldMapYaml | None = None
    done_when: str | None = None
    busy_when: str | None = None
    helpers: dict[str, HelperYaml] = field(default_factory=dict)
    screen: ScreenYaml = field(default_factory=ScreenYaml)


# ---------------------------------------------------------------------- the checked profile
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
    sizes: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # (width, height) where not map_size
    names: Mapping[int, str] = field(default_factory=dict)  # map id -> name, where the profile gives one

    def map_name(self, map_id: int) -> str:
        """What a report calls a map: its name, else ``map <id>``."""
        return self.names.get(map_id, f"map {map_id}")

    def map_rect(self, map_id: int) -> tuple[int, int, int, int]:
        """``(x0, y0, width, height)`` of a placed map on the world grid."""
        ox, oy = self.offsets[map_id]
        w, h = self.sizes.get(map_id, (self.map_width, self.map_height))
        return ox, oy, w, h


@dataclass(frozen=True)
class ScreenGeometry:
    """Where the screen sits on the map grid: a whole map from its origin (``scrolls`` false), or
    centred on the player, whose step cell is at ``player`` (in steps of ``step_pixels`` pixels)."""

    scrolls: bool = True
    step_pixels: int = 8
    player: tuple[int, int] | None = None  # None: unknown, so screens are not placed on the map

    @property
    def placeable(self) -> bool:
        """Screens can be pasted on the world grid: whole maps, or scrolling with the player's place known."""
        return not self.scrolls or self.player is not None


@dataclass(frozen=True)
class Helper:
    """A scripted helper a run may switch on (``env.helpers``): after each action, while ``when``
    holds, press ``press`` (at most ``max_presses`` times). E.g. auto-advancing text boxes."""

    when: str
    press: str
    max_presses: int = 16


_GENERATED = ("read_ram", "vector_values")  # made on first use, dropped when pickled


@dataclass(frozen=True)
class GameProfile:
    """Everything game-specific the environment needs."""

    name: str
    source: str
    rom_file: str | None  # bundled ROM file name inside pokerl/games, or None (user supplies)
    sha1: tuple[str, ...]
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
    screen: ScreenGeometry = field(default_factory=ScreenGeometry)

    @property
    def vector_size(self) -> int:
        return sum(f.size for f in self.vector)

    @cached_property
    def read_ram(self) -> Callable[[Any], dict[str, Any]]:
        """``read_ram(memory)``: every RAM field decoded into a dict (name → int, or
        :class:`~pokerl.ram.Flags` for flag arrays), in the profile's order (generated code)."""
        return codegen.ram_reader(self.ram)

    @cached_property
    def vector_values(self) -> Callable[[Mapping[str, Any]], list[float]]:
        """``vector_values(ram)``: the ``vector`` observation as a list (generated code)."""
        return codegen.vector_builder(self.vector)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in _GENERATED}

    def predicate(self, text: str, key: str) -> Predicate:
        """A predicate over this profile's RAM fields; ``key`` names where it came from."""
        return Predicate(text, self.ram, f"{self.source}: {key}")

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

    def check_rom(self, rom: str | os.PathLike[str] | None = None) -> Path | None:
        """The ROM :meth:`rom_path` picks, read and checked now (a one-line RomError: missing, not a ROM,
        another SHA-1), so a bad one is refused before a trainer or a policy is built."""
        path = self.rom_path(rom)
        read_rom(path, self.sha1, what=f"{self.name} ROM")
        return path


# ---------------------------------------------------------------------- checks
def _address(value: int | str, where: str) -> int:
    try:
        return int(value, 0) if isinstance(value, str) else value
    except ValueError:
        raise ConfigError(f"{where}: expected an integer address, got {value!r}") from None


def _ram(data: Mapping[str, RamFieldYaml], source: str) -> dict[str, RamField]:
    if not data:
        raise ConfigError(f"{source}: ram: expected a non-empty mapping of fields")
    fields = {}
    for name, spec in data.items():
        where = f"{source}: ram.{name}"
        addr = _address(spec.addr, f"{where}.addr")
        if spec.type not in CODECS:
            raise ConfigError(f"{where}.type: unknown encoding {spec.type!r} (known: {', '.join(CODECS)})")
        fixed = CODECS[spec.type].fixed
        if fixed and spec.size is not None and spec.size != fixed:
            raise ConfigError(f"{where}.size: {spec.type} is {fixed} byte(s), got {spec.size}")
        size = fixed or (spec.size if spec.size is not None else 1)
        if size < 1:
            raise ConfigError(f"{where}.size: must be >= 1, got {size}")
        # Game state lives in work RAM (0xC000-0xDFFF), cartridge RAM (0xA000-0xBFFF) or HRAM.
        in_range = (addr >= 0xA000 and addr + size - 1 <= 0xDFFF) or (addr >= 0xFF80 and addr + size - 1 <= 0xFFFE)
        if not in_range:
            raise ConfigError(f"{where}.addr: address {addr:#06x}+{size} is out of range "
                              "(RAM fields must lie in 0xA000-0xDFFF or 0xFF80-0xFFFE)")
        fields[name] = RamField(name=name, addr=addr, type=spec.type, size=size)
    return fields


def _field(name: str, ram: Mapping[str, RamField], where: str) -> str:
    if name not in ram:
        raise ConfigError(f"{where}: no such RAM field {name!r}")
    return name


def check_write(ram: Mapping[str, RamField], name: str, value: Any, where: str) -> None:
    """A one-line error unless ``value`` can be written into RAM field ``name`` (boot writes, ``writes=``)."""
    try:
        ram[_field(name, ram, where)].encode(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def _boot(data: BootYaml, source: str, ram: Mapping[str, RamField]) -> BootSpec:
    steps = []
    for i, item in enumerate(data.sequence):
        where = f"{source}: boot.sequence[{i}]"
        if item.press is not None and item.press not in BUTTONS:
            raise ConfigError(f"{where}.press: unknown button {item.press!r} (known: {', '.join(BUTTONS)})")
        hold = item.hold if item.hold is not None else (8 if item.press else 0)
        if item.frames < max(hold, 1):
            raise ConfigError(f"{where}.frames: must be >= hold and >= 1")
        steps.extend([BootStep(item.press, hold, item.frames)] * item.repeat)
    for key in ("check", "writes"):
        for name, value in getattr(data, key).items():
            check_write(ram, name, value, f"{source}: boot.{key}.{name}")
    if data.seed_field is not None:
        _field(data.seed_field, ram, f"{source}: boot.seed_field")
    return BootSpec(data.ticks, tuple(steps), data.state, dict(data.check), data.seed_field, dict(data.writes))


def _vector(items: list[VectorYaml], source: str, ram: Mapping[str, RamField]) -> tuple[VectorFeature, ...]:
    out = []
    for i, item in enumerate(items):
        where = f"{source}: vector[{i}]"
        _field(item.field, ram, f"{where}.field")
        kinds = [k for k in ("over", "bits", "onehot") if getattr(item, k) is not None]
        if len(kinds) > 1:
            raise ConfigError(f"{where}: use one of over/bits/onehot, not {kinds}")
        if item.over is not None:
            out.append(VectorFeature(item.field, "fraction", 1, over=_field(item.over, ram, f"{where}.over")))
        elif item.bits is not None:
            out.append(VectorFeature(item.field, "bits", item.bits))
        elif item.onehot is not None:
            out.append(VectorFeature(item.field, "onehot", item.onehot))
        else:
            scale = 1.0 if item.scale is None else item.scale
            if not scale > 0:
                raise ConfigError(f"{where}.scale: must be > 0, got {scale!r}")
            out.append(VectorFeature(item.field, "scale", 1, scale=scale))
    return tuple(out)


def _world(data: WorldMapYaml | None, source: str) -> WorldMap:
    if data is None:
        return WorldMap({}, 256, 256, 256, 256)
    for key in ("size", "map_size"):
        v = getattr(data, key)
        if not (len(v) == 2 and all(x > 0 for x in v)):
            raise ConfigError(f"{source}: world_map.{key}: expected [width, height], got {v!r}")
    offsets, sizes = {}, {}
    for key, value in data.offsets.items():
        where = f"{source}: world_map.offsets.{key}"
        if len(value) != 2:
            raise ConfigError(f"{where}: expected [x, y], got {value!r}")
        if not (0 <= value[0] < data.size[0] and 0 <= value[1] < data.size[1]):
            raise ConfigError(f"{where}: {value} is outside the world's size {data.size}")
        offsets[_address(key, where)] = (value[0], value[1])
    for key, value in data.sizes.items():
        where = f"{source}: world_map.sizes.{key}"
        if not (len(value) == 2 and all(v > 0 for v in value)):
            raise ConfigError(f"{where}: expected [width, height], got {value!r}")
        sizes[_address(key, where)] = (value[0], value[1])
    names = {_address(key, f"{source}: world_map.names.{key}"): str(value) for key, value in data.names.items()}
    return WorldMap(offsets, data.size[0], data.size[1], data.map_size[0], data.map_size[1], sizes, names)


def _screen(data: ScreenYaml, source: str) -> ScreenGeometry:
    cols, rows = 160 // max(data.step_pixels, 1), 144 // max(data.step_pixels, 1)
    if data.step_pixels < 1 or cols < 1 or rows < 1:
        raise ConfigError(f"{source}: screen.step_pixels: expected 1..144, got {data.step_pixels}")
    if data.player is None:
        return ScreenGeometry(data.scrolls, data.step_pixels)
    if not (len(data.player) == 2 and 0 <= data.player[0] < cols and 0 <= data.player[1] < rows):
        raise ConfigError(f"{source}: screen.player: expected [x, y] inside the {cols}x{rows}-step screen, "
                          f"got {data.player}")
    return ScreenGeometry(data.scrolls, data.step_pixels, (data.player[0], data.player[1]))


def profile_from_mapping(data: Mapping[str, Any], source: str = "") -> GameProfile:
    """Build and check a :class:`GameProfile` from a mapping (YAML or Hydra)."""
    source = source or f"game profile {data.get('name', '?')}"
    y = from_mapping(ProfileYaml, resolve_base("game", data, source), source)
    if any(len(s) != 40 for s in y.rom.sha1):
        raise ConfigError(f"{source}: rom.sha1: each SHA-1 must be 40 hex digits")
    if not y.actions:
        raise ConfigError(f"{source}: actions: needs at least one action")
    for a in y.actions:
        if a not in (*BUTTONS, "noop"):
            raise ConfigError(f"{source}: actions: unknown action {a!r} (known: noop, {', '.join(BUTTONS)})")
    if y.visited_cell < 1:
        raise ConfigError(f"{source}: visited_cell: must be >= 1 (pixels per map tile), got {y.visited_cell}")
    ram = _ram(y.ram, source)
    coords = tuple(_field(getattr(y.coords, k), ram, f"{source}: coords.{k}") for k in ("map", "x", "y"))
    for key in ("done_when", "busy_when"):
        text = getattr(y, key)
        if text is not None:
            Predicate(text, ram, f"{source}: {key}")
    helpers = {}
    for hname, h in y.helpers.items():
        if h.press not in BUTTONS:
            raise ConfigError(f"{source}: helpers.{hname}.press: unknown button {h.press!r}")
        Predicate(h.when, ram, f"{source}: helpers.{hname}.when")
        helpers[hname] = Helper(h.when, h.press, h.max_presses)
    return GameProfile(
        name=y.name, source=source, rom_file=y.rom.bundled, sha1=tuple(s.lower() for s in y.rom.sha1),
        env_var=y.rom.env, actions=tuple(y.actions), boot=_boot(y.boot, source, ram), ram=ram,
        coords=coords, vector=_vector(y.vector, source, ram), visited_cell=y.visited_cell,  # type: ignore[arg-type]
        world_map=_world(y.world_map, source), done_when=y.done_when, busy_when=y.busy_when, helpers=helpers,
        screen=_screen(y.screen, source),
    )


def load_profile(profile: str | os.PathLike[str] | Mapping[str, Any]) -> GameProfile:
    """A game profile from a name in ``configs/game/``, a YAML path or a mapping."""
    if isinstance(profile, Mapping):
        return profile_from_mapping(profile)
    data, source = load_yaml("game", profile)
    return profile_from_mapping(data, source)
