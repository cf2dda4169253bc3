"""Reward terms defined in ``configs/reward/<name>.yaml``.

Every term is computed from the RAM fields the game profile names (and the env's exploration
bookkeeping) and reported separately in ``info["reward_terms"]``:

- ``exploration``: ``weight`` for each map tile first stood on this episode, times ``decay`` to
  the power of the tiles already found (``decay: 1`` = no decay);
- ``milestones``: named predicates over RAM fields (``badges & 1``, ``events[0]``,
  ``map_id == 5``), each paid ``reward`` once per episode when it first holds;
- ``level``: ``weight`` per level gained (the sum of the ``fields`` listed) past the episode's
  highest level sum, up to a sum of ``cap`` (unbounded terms get farmed: see
  configs/reward/tinyquest.yaml); only new highs pay, so a party member put away and taken back
  is not paid again;
- ``gain``: for each field listed (``field: weight``), ``weight`` × each new high of the field this
  episode: XP, money, Pokédex entries; for flag arrays (event flags) the count of set flags. Only
  new highs pay, so a value that falls and rises again is not paid twice;
- ``heal``: ``weight`` × the rise of the HP fraction outside battle (``hp``/``max_hp``: a field each,
  or lists over the party's slots, summed). Not paid when the max HP changed (a level-up, a new
  or departed party member), when the whole party had 0 HP or with a blackout (a fainted party
  restored), so reordering the party or losing pays nothing. Damage costs nothing, so each
  damage-then-heal round trip pays: keep the weight small;
- ``blackout``: ``weight`` (negative) each time the blackout counter rises;
- ``stuck``: ``weight`` (negative) each step after ``after`` steps in the same tile outside
  battle and text.

``party_size`` names the RAM field that says how many of the per-slot fields (``level.fields``,
``heal.hp``, ``heal.max_hp``) are in use: the slots past it are not counted (in Pokémon they keep a
stale copy of a party member after one leaves).

Adding a milestone or changing a weight is a YAML edit; predicates are :class:`~pokerl.predicate.Predicate`.
The config is read through the one typed loader (:mod:`pokerl.schema`); :class:`RewardTracker` keeps
one episode's reward state and saves it with :meth:`~RewardTracker.state_dict`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pokerl import codegen
from pokerl.errors import ConfigError
from pokerl.predicate import Predicate
from pokerl.ram import Flags, RamField
from pokerl.schema import from_mapping, load_yaml


# ---------------------------------------------------------------------- the YAML's shape
@dataclass
class ExplorationYaml:
    weight: float = 0.0
    decay: float = 1.0


@dataclass
class MilestoneYaml:
    when: str
    reward: float = 1.0


@dataclass
class LevelYaml:
    weight: float = 0.0
    fields: list[str] = field(default_factory=list)
    cap: int | None = None  # levels above this sum pay nothing (so grinding stops paying)


@dataclass
class HealYaml:
    weight: float = 0.0
    hp: str | list[str] | None = None
    max_hp: str | list[str] | None = None
    in_battle: str | None = None


@dataclass
class BlackoutYaml:
    weight: float = 0.0
    field: str | None = None


@dataclass
class StuckYaml:
    weight: float = 0.0
    after: int = 100


@dataclass
class RewardYaml:
    name: str | None = None
    exploration: ExplorationYaml = field(default_factory=ExplorationYaml)
    milestones: dict[str, MilestoneYaml] = field(default_factory=dict)
    level: LevelYaml = field(default_factory=LevelYaml)
    gain: dict[str, float] = field(default_factory=dict)  # field -> weight per new high
    heal: HealYaml = field(default_factory=HealYaml)
    blackout: BlackoutYaml = field(default_factory=BlackoutYaml)
    stuck: StuckYaml = field(default_factory=StuckYaml)
    party_size: str | None = None  # the RAM field counting the slots in use (the rest are stale)


# ---------------------------------------------------------------------- the checked config
@dataclass(frozen=True)
class Milestone:
    name: str
    predicate: Predicate
    reward: float


@dataclass(frozen=True)
class RewardConfig:
    """Parsed reward config; weights of 0 switch a term off."""

    exploration_weight: float = 0.0
    exploration_decay: float = 1.0
    milestones: tuple[Milestone, ...] = ()
    level_weight: float = 0.0
    level_fields: tuple[str, ...] = ()
    level_cap: int | None = None
    gain: tuple[tuple[str, float], ...] = ()  # (field, weight)
    heal_weight: float = 0.0
    heal_hp: tuple[str, ...] = ()  # summed over the party's slots
    heal_max_hp: tuple[str, ...] = ()
    heal_in_battle: str | None = None
    blackout_weight: float = 0.0
    blackout_field: str | None = None
    stuck_weight: float = 0.0
    stuck_after: int = 100
    party_size: str | None = None

    term_names: ClassVar[tuple[str, ...]] = ("exploration", "milestones", "level", "gain", "heal", "blackout", "stuck")

    @property
    def milestone_names(self) -> list[str]:
        return [m.name for m in self.milestones]

    def party_sum(self, fields: tuple[str, ...], ram: Mapping[str, Any]) -> int:
        """The sum of per-slot ``fields`` over the slots in use (all of them without ``party_size``)."""
        used = fields[: int(ram[self.party_size])] if self.party_size else fields
        return sum(int(ram[f]) for f in used)

    def capped_level(self, ram: Mapping[str, Any]) -> int:
        """The level sum as the level term pays it: capped at ``level_cap``."""
        level = self.party_sum(self.level_fields, ram)
        return level if self.level_cap is None else min(level, self.level_cap)


def reward_from_mapping(data: Mapping[str, Any], ram_fields: Iterable[str] | Mapping[str, RamField],
                        where: str) -> RewardConfig:
    """Check and parse a reward mapping against the profile's RAM field names (or its fields, a
    mapping name -> :class:`RamField`: then flag numbers in milestones are checked too)."""
    y = from_mapping(RewardYaml, data, where)
    names = ram_fields if isinstance(ram_fields, Mapping) else set(ram_fields)

    def known(value: str | None, key: str) -> str | None:
        if value is not None and value not in names:
            raise ConfigError(f"{where}: {key}: no such RAM field {value!r} in the game profile")
        return value

    milestones = tuple(Milestone(name, Predicate(m.when, names, f"{where}: milestones.{name}.when"), m.reward)
                       for name, m in y.milestones.items())
    for f in (*y.level.fields, *y.gain):
        known(f, "level.fields" if f in y.level.fields else f"gain.{f}")
    heal_hp, heal_max_hp = (tuple(known(f, f"heal.{key}") for f in ([v] if isinstance(v, str) else v or []))
                            for key, v in (("hp", y.heal.hp), ("max_hp", y.heal.max_hp)))
    if len(heal_hp) != len(heal_max_hp):
        raise ConfigError(f"{where}: heal.hp and heal.max_hp: one max HP field per HP field, got "
                          f"{len(heal_hp)} and {len(heal_max_hp)}")
    if y.level.cap is not None and y.level.cap < 1:
        raise ConfigError(f"{where}: level.cap: must be >= 1 (or null: no cap), got {y.level.cap}")
    return RewardConfig(
        exploration_weight=y.exploration.weight, exploration_decay=y.exploration.decay,
        milestones=milestones, level_weight=y.level.weight, level_fields=tuple(y.level.fields), level_cap=y.level.cap,
        gain=tuple(y.gain.items()),
        heal_weight=y.heal.weight, heal_hp=heal_hp, heal_max_hp=heal_max_hp,
        heal_in_battle=known(y.heal.in_battle, "heal.in_battle"),
        blackout_weight=y.blackout.weight, blackout_field=known(y.blackout.field, "blackout.field"),
        stuck_weight=y.stuck.weight, stuck_after=y.stuck.after, party_size=known(y.party_size, "party_size"),
    )


def load_reward(reward: str | os.PathLike[str] | Mapping[str, Any],
                ram_fields: Iterable[str] | Mapping[str, RamField]) -> RewardConfig:
    """A reward config from a name in ``configs/reward/``, a YAML path or a mapping."""
    if isinstance(reward, Mapping):
        return reward_from_mapping(reward, ram_fields, f"reward config {reward.get('name', '?')}")
    data, source = load_yaml("reward", reward)
    return reward_from_mapping(data, ram_fields, source)


def _amount(value: Any) -> int:
    """A field's value as a number: the count of set flags for a flag array."""
    return value.count() if isinstance(value, Flags) else int(value)


class RewardTracker:
    """Per-episode reward state: computes each term from consecutive RAM snapshots."""

    def __init__(self, cfg: RewardConfig) -> None:
        self.cfg = cfg
        self._check = codegen.milestone_check(cfg.milestones)
        self.reset({})

    def reset(self, ram: Mapping[str, Any], held: Iterable[str] = ()) -> None:
        """Start an episode from the RAM at its first step; ``held``: milestones reached before it
        (an archived start), never paid again."""
        self.reached: list[str] = []  # milestones reached in this episode, in order
        self.reached_at: dict[str, int] = {}  # milestone -> the episode step (1 = the first) it was reached at
        self._held: set[str] = set(held)  # held: at the start, or reached since (none is paid again)
        self.steps = 0
        self.tiles_found = 0
        self.stuck_steps = 0
        self.prev = dict(ram)
        self.highs = {f: _amount(ram[f]) for f, _ in self.cfg.gain} if ram else {}
        self.level_high = self.cfg.capped_level(ram) if ram else 0
        self.totals = dict.fromkeys(self.cfg.term_names, 0.0)
        if ram:  # milestones already true at the start are not paid
            for m in self.cfg.milestones:
                if m.predicate(ram):
                    self._held.add(m.name)

    def step(self, ram: Mapping[str, Any], new_tile: bool, moved: bool, busy: bool) -> dict[str, float]:
        """Reward terms for one env step. ``busy``: in battle or in a text box (no stuck penalty)."""
        cfg, prev = self.cfg, self.prev
        terms = dict.fromkeys(cfg.term_names, 0.0)
        self.steps += 1
        if new_tile and cfg.exploration_weight:
            terms["exploration"] = cfg.exploration_weight * cfg.exploration_decay ** self.tiles_found
        if new_tile:
            self.tiles_found += 1
        for i in self._check(ram, self._held):
            m = cfg.milestones[i]
            self._held.add(m.name)
            self.reached.append(m.name)
            self.reached_at[m.name] = self.steps
            terms["milestones"] += m.reward
        if cfg.level_fields:
            level = cfg.capped_level(ram)
            if level > self.level_high:
                terms["level"] = cfg.level_weight * (level - self.level_high)
                self.level_high = level
        for f, weight in cfg.gain:
            amount = _amount(ram[f])
            high = self.highs.get(f, amount)
            if amount > high:
                terms["gain"] += weight * (amount - high)
            self.highs[f] = max(high, amount)
        blackouts = int(ram[cfg.blackout_field]) - int(prev[cfg.blackout_field]) if cfg.blackout_field else 0
        if blackouts > 0:
            terms["blackout"] = cfg.blackout_weight * blackouts
        if cfg.heal_hp:
            in_battle = bool(ram[cfg.heal_in_battle]) if cfg.heal_in_battle else False
            hp, prev_hp = (cfg.party_sum(cfg.heal_hp, r) for r in (ram, prev))
            max_hp, prev_max_hp = (cfg.party_sum(cfg.heal_max_hp, r) for r in (ram, prev))
            if hp > prev_hp > 0 and max_hp == prev_max_hp > 0 and not in_battle and blackouts <= 0:
                terms["heal"] = cfg.heal_weight * (hp - prev_hp) / max_hp
        self.stuck_steps = 0 if (moved or busy) else self.stuck_steps + 1
        if cfg.stuck_weight and self.stuck_steps > cfg.stuck_after:
            terms["stuck"] = cfg.stuck_weight
        totals = self.totals
        for k, v in terms.items():
            if v:
                totals[k] += v
        self.prev = ram  # not copied: the caller hands over a fresh snapshot each step and keeps it unchanged
        return terms

    def state_dict(self) -> dict[str, Any]:
        """The episode's reward state in plain types (for snapshots and checkpoints)."""
        return {
            "reached": list(self.reached),
            "reached_at": dict(self.reached_at),
            "reached_all": sorted(self._held),
            "steps": self.steps,
            "tiles_found": self.tiles_found,
            "stuck_steps": self.stuck_steps,
            "highs": dict(self.highs),
            "level_high": self.level_high,
            "totals": dict(self.totals),
        }

    def load_state_dict(self, state: Mapping[str, Any], ram: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; ``ram``: the RAM at the restored step."""
        self.reached, self._held = list(state["reached"]), set(state["reached_all"])
        self.reached_at = {str(k): int(v) for k, v in state["reached_at"].items()}
        self.steps = int(state["steps"])
        self.tiles_found, self.stuck_steps = int(state["tiles_found"]), int(state["stuck_steps"])
        self.highs = {str(f): int(v) for f, v in state["highs"].items()}
        # snapshots from before the high-water mark: levels only rose in tinyquest, the sum now is its high
        self.level_high = int(state.get("level_high", self.cfg.capped_level(ram)))
        self.totals = {str(k): float(v) for k, v in state["totals"].items()}
        self.prev = dict(ram)
