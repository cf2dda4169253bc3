"""Reward terms defined in ``configs/reward/<name>.yaml``.

Every term is computed from the RAM fields the game profile names (and the env's exploration
bookkeeping) and reported separately in ``info["reward_terms"]``:

- ``exploration``: ``weight`` for each map tile first stood on this episode, times ``decay`` to
  the power of the tiles already found (``decay: 1`` = no decay);
- ``milestones``: named predicates over RAM fields (``badges & 1``, ``events[0]``,
  ``map_id == 5``), each paid ``reward`` once per episode when it first holds;
- ``level``: ``weight`` per level gained (the sum of the ``fields`` listed);
- ``gain``: for each field listed (``field: weight``), ``weight`` × each new high of the field this
  episode: XP, money, Pokédex entries; for flag arrays (event flags) the count of set flags. Only
  new highs pay, so a value that falls and rises again is not paid twice;
- ``heal``: ``weight`` × the rise of the HP fraction outside battle, not caused by a level-up;
- ``blackout``: ``weight`` (negative) each time the blackout counter rises;
- ``stuck``: ``weight`` (negative) each step after ``after`` steps in the same tile outside
  battle and text.

Adding a milestone or changing a weight is a YAML edit. Predicates are parsed with :mod:`ast`
and only a small whitelist of node types is evaluated: never arbitrary code.
"""

from __future__ import annotations

import ast
import copy
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pokerl.errors import ConfigError
from pokerl.profile import Flags, RamField

_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.BinOp, ast.BitAnd,
    ast.BitOr, ast.RShift, ast.LShift, ast.Add, ast.Sub, ast.Mult, ast.Mod, ast.Compare, ast.Eq, ast.NotEq,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Name, ast.Load, ast.Constant, ast.Subscript,
)


class Predicate:
    """A boolean expression over RAM field names, e.g. ``badges & 1`` or ``events[2] and map_id == 6``."""

    def __init__(self, text: str, names: Iterable[str] | Mapping[str, RamField], where: str) -> None:
        """``names``: the RAM field names, or the profile's fields (then a flag index such as
        ``events[40]`` is also checked against the flag array's size)."""
        self.text = text
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError:
            raise ConfigError(f"{where}: cannot parse predicate {text!r}") from None
        known = set(names)
        flag_count = {n: f.size * 8 for n, f in names.items() if isinstance(f, RamField) and f.type == "flags"} \
            if isinstance(names, Mapping) else {}
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED):
                raise ConfigError(f"{where}: {type(node).__name__} is not allowed in predicate {text!r}")
            if isinstance(node, ast.Name) and node.id not in known:
                raise ConfigError(f"{where}: unknown RAM field {node.id!r} in predicate {text!r}")
            if isinstance(node, ast.Constant) and not isinstance(node.value, int):
                raise ConfigError(f"{where}: only integer constants are allowed in predicate {text!r}")
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in flag_count:
                n, i = flag_count[node.value.id], getattr(node.slice, "value", None)
                if not (isinstance(node.slice, ast.Constant) and type(i) is int and 0 <= i < n):
                    raise ConfigError(f"{where}: {node.value.id}[...] needs a flag number 0..{n - 1}, "
                                      f"got {ast.unparse(node.slice)!r} in predicate {text!r}")
        self._tree = tree
        self._code = compile(tree, "<predicate>", "eval")
        self._globals: dict[str, Any] = {"__builtins__": {}}  # made once: predicates run every step

    def __call__(self, ram: Mapping[str, Any]) -> bool:
        return bool(eval(self._code, self._globals, ram))  # noqa: S307 — whitelisted AST only

    def source_over(self, var: str) -> str:
        """The expression's source with each field name ``n`` read as ``var['n']`` (for generated code)."""

        class Rename(ast.NodeTransformer):
            def visit_Name(self, node: ast.Name) -> ast.AST:
                return ast.Subscript(ast.Name(var, ast.Load()), ast.Constant(node.id), ast.Load())

        return ast.unparse(Rename().visit(copy.deepcopy(self._tree)).body)


def compile_milestone_check(milestones: tuple[Milestone, ...]) -> Callable[[Mapping[str, Any], set[str]], list[int]]:
    """One generated function ``(ram, reached) -> indices of milestones newly reached``.

    It runs every env step; one function testing every predicate inline costs a fraction of one
    ``eval`` per milestone. The predicates' sources are the whitelisted ASTs of :class:`Predicate`.
    """
    lines = ["def check(r, reached):", "    new = []"]
    for i, m in enumerate(milestones):
        lines += [f"    if {m.name!r} not in reached and ({m.predicate.source_over('r')}):", f"        new.append({i})"]
    namespace: dict[str, Any] = {"__builtins__": {}}
    exec("\n".join([*lines, "    return new", ""]), namespace)  # noqa: S102 — whitelisted ASTs only
    return namespace["check"]


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
    gain: tuple[tuple[str, float], ...] = ()  # (field, weight)
    heal_weight: float = 0.0
    heal_hp: str | None = None
    heal_max_hp: str | None = None
    heal_in_battle: str | None = None
    blackout_weight: float = 0.0
    blackout_field: str | None = None
    stuck_weight: float = 0.0
    stuck_after: int = 100

    term_names: ClassVar[tuple[str, ...]] = ("exploration", "milestones", "level", "gain", "heal", "blackout", "stuck")

    @property
    def milestone_names(self) -> list[str]:
        return [m.name for m in self.milestones]


def _section(data: Mapping[str, Any], key: str, allowed: Mapping[str, tuple[type, ...]], where: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {key}: expected a mapping")
    for k, v in value.items():
        if k not in allowed:
            raise ConfigError(f"{where}: {key}.{k}: unknown key (known: {', '.join(allowed)})")
        if isinstance(v, bool) or not isinstance(v, allowed[k]):
            raise ConfigError(f"{where}: {key}.{k}: expected {'/'.join(t.__name__ for t in allowed[k])}, got {v!r}")
    return dict(value)


NUM = (int, float)


def reward_from_mapping(data: Mapping[str, Any], ram_fields: Iterable[str], where: str) -> RewardConfig:
    """Check and parse a reward mapping against the profile's RAM field names (or its fields, a
    mapping name -> :class:`RamField`: then flag numbers in milestones are checked too)."""
    names = set(ram_fields)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    known = ("name", "exploration", "milestones", "level", "gain", "heal", "blackout", "stuck")
    for key in data:
        if key not in known:
            raise ConfigError(f"{where}: {key}: unknown key (known: {', '.join(known)})")

    def field(value: str | None, key: str) -> str | None:
        if value is not None and value not in names:
            raise ConfigError(f"{where}: {key}: no such RAM field {value!r} in the game profile")
        return value

    exploration = _section(data, "exploration", {"weight": NUM, "decay": NUM}, where)
    level = _section(data, "level", {"weight": NUM, "fields": (list,)}, where)
    heal = _section(data, "heal", {"weight": NUM, "hp": (str,), "max_hp": (str,), "in_battle": (str,)}, where)
    blackout = _section(data, "blackout", {"weight": NUM, "field": (str,)}, where)
    stuck = _section(data, "stuck", {"weight": NUM, "after": (int,)}, where)
    milestones = []
    raw = data.get("milestones") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: milestones: expected a mapping name -> {{when, reward}}")
    for name, spec in raw.items():
        spec = _section({"m": spec}, "m", {"when": (str,), "reward": NUM}, f"{where}: milestones.{name}")
        if "when" not in spec:
            raise ConfigError(f"{where}: milestones.{name}.when: required key is missing")
        pred = Predicate(spec["when"], ram_fields if isinstance(ram_fields, Mapping) else names,
                         f"{where}: milestones.{name}.when")
        milestones.append(Milestone(str(name), pred, float(spec.get("reward", 1.0))))
    level_fields = tuple(str(f) for f in level.get("fields", []))
    for f in level_fields:
        field(f, "level.fields")
    gain = _section(data, "gain", dict.fromkeys(names, NUM), where)
    return RewardConfig(
        exploration_weight=float(exploration.get("weight", 0.0)),
        exploration_decay=float(exploration.get("decay", 1.0)),
        milestones=tuple(milestones),
        level_weight=float(level.get("weight", 0.0)),
        level_fields=level_fields,
        gain=tuple((str(f), float(w)) for f, w in gain.items()),
        heal_weight=float(heal.get("weight", 0.0)),
        heal_hp=field(heal.get("hp"), "heal.hp"),
        heal_max_hp=field(heal.get("max_hp"), "heal.max_hp"),
        heal_in_battle=field(heal.get("in_battle"), "heal.in_battle"),
        blackout_weight=float(blackout.get("weight", 0.0)),
        blackout_field=field(blackout.get("field"), "blackout.field"),
        stuck_weight=float(stuck.get("weight", 0.0)),
        stuck_after=int(stuck.get("after", 100)),
    )


def load_reward(reward: str | os.PathLike[str] | Mapping[str, Any], ram_fields: Iterable[str]) -> RewardConfig:
    """A reward config from a name in ``configs/reward/``, a YAML path or a mapping."""
    from pokerl.profile import load_yaml

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
        self._check = compile_milestone_check(cfg.milestones)
        self.reset({})

    def reset(self, ram: Mapping[str, Any]) -> None:
        """Start an episode from the RAM at its first step."""
        self.reached: list[str] = []
        self._reached: set[str] = set()
        self.tiles_found = 0
        self.stuck_steps = 0
        self.prev = dict(ram)
        self.highs = {f: _amount(ram[f]) for f, _ in self.cfg.gain} if ram else {}
        self.totals = dict.fromkeys(self.cfg.term_names, 0.0)
        if ram:  # milestones already true at the start are not paid
            for m in self.cfg.milestones:
                if m.predicate(ram):
                    self._reached.add(m.name)

    def _level_sum(self, ram: Mapping[str, Any]) -> int:
        return sum(int(ram[f]) for f in self.cfg.level_fields)

    def step(self, ram: Mapping[str, Any], new_tile: bool, moved: bool, busy: bool) -> dict[str, float]:
        """Reward terms for one env step. ``busy``: in battle or in a text box (no stuck penalty)."""
        cfg, prev = self.cfg, self.prev
        terms = dict.fromkeys(cfg.term_names, 0.0)
        if new_tile and cfg.exploration_weight:
            terms["exploration"] = cfg.exploration_weight * cfg.exploration_decay ** self.tiles_found
        if new_tile:
            self.tiles_found += 1
        for i in self._check(ram, self._reached):
            m = cfg.milestones[i]
            self._reached.add(m.name)
            self.reached.append(m.name)
            terms["milestones"] += m.reward
        levelled = False
        if cfg.level_fields:
            gained = self._level_sum(ram) - self._level_sum(prev)
            levelled = gained > 0
            if levelled:
                terms["level"] = cfg.level_weight * gained
        for f, weight in cfg.gain:
            amount = _amount(ram[f])
            high = self.highs.get(f, amount)
            if amount > high:
                terms["gain"] += weight * (amount - high)
            self.highs[f] = max(high, amount)
        if cfg.heal_hp and cfg.heal_max_hp and not levelled:
            in_battle = bool(ram[cfg.heal_in_battle]) if cfg.heal_in_battle else False
            hp, max_hp, prev_hp = int(ram[cfg.heal_hp]), int(ram[cfg.heal_max_hp]), int(prev[cfg.heal_hp])
            if hp > prev_hp and max_hp > 0 and not in_battle:
                terms["heal"] = cfg.heal_weight * (hp - prev_hp) / max_hp
        if cfg.blackout_field:
            rise = int(ram[cfg.blackout_field]) - int(prev[cfg.blackout_field])
            if rise > 0:
                terms["blackout"] = cfg.blackout_weight * rise
        self.stuck_steps = 0 if (moved or busy) else self.stuck_steps + 1
        if cfg.stuck_weight and self.stuck_steps > cfg.stuck_after:
            terms["stuck"] = cfg.stuck_weight
        totals = self.totals
        for k, v in terms.items():
            if v:
                totals[k] += v
        self.prev = ram  # not copied: the caller hands over a fresh snapshot each step and keeps it unchanged
        return terms
