"""Predicates: boolean expressions over RAM field names (``badges & 1``, ``events[2] and map_id == 6``).

They come from YAML (milestones, ``done_when``, ``busy_when``, helpers), so they are parsed with
:mod:`ast` and only a small whitelist of node types is allowed: never arbitrary code. Flag numbers
(``events[40]``) are checked against the flag array's size when the fields are known.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterable, Mapping
from typing import Any

from pokerl.errors import ConfigError
from pokerl.ram import RamField

_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.BinOp, ast.BitAnd,
    ast.BitOr, ast.RShift, ast.LShift, ast.Add, ast.Sub, ast.Mult, ast.Mod, ast.Compare, ast.Eq, ast.NotEq,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Name, ast.Load, ast.Constant, ast.Subscript,
)


class Predicate:
    """A checked boolean expression over RAM fields; call it with a RAM dict (name → value)."""

    def __init__(self, text: str, names: Iterable[str] | Mapping[str, RamField], where: str) -> None:
        """``names``: the RAM field names, or the profile's fields (then a flag index such as
        ``events[40]`` is also checked against the flag array's size)."""
        self.text, self.where = text, where
        self._names: Any = dict(names) if isinstance(names, Mapping) else tuple(names)
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError:
            raise ConfigError(f"{where}: cannot parse predicate {text!r}") from None
        known = set(self._names)
        flag_count = {n: f.size * 8 for n, f in self._names.items() if isinstance(f, RamField) and f.type == "flags"} \
            if isinstance(self._names, dict) else {}
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED):
                raise ConfigError(f"{where}: {type(node).__name__} is not allowed in predicate {text!r}")
            if isinstance(node, ast.Name) and node.id not in known:
                raise ConfigError(f"{where}: unknown RAM field {node.id!r} in predicate {text!r}")
            if isinstance(node, ast.Constant) and not isinstance(node.value, int):
                raise ConfigError(f"{where}: only integer constants are allowed in predicate {text!r}")
            if isinstance(node, ast.Subscript) and isinstance(self._names, dict):  # the profile's fields: typed
                name = node.value.id if isinstance(node.value, ast.Name) else None
                if name not in flag_count:
                    raise ConfigError(f"{where}: only flags fields take [n], not {ast.unparse(node.value)!r} "
                                      f"in predicate {text!r}")
                n, i = flag_count[name], getattr(node.slice, "value", None)
                if not (isinstance(node.slice, ast.Constant) and type(i) is int and 0 <= i < n):
                    raise ConfigError(f"{where}: {name}[...] needs a flag number 0..{n - 1}, "
                                      f"got {ast.unparse(node.slice)!r} in predicate {text!r}")
        self._tree = tree
        self._code = compile(tree, f"<predicate {text}>", "eval")
        self._globals: dict[str, Any] = {"__builtins__": {}}  # made once: predicates run every step

    def __call__(self, ram: Mapping[str, Any]) -> bool:
        return bool(eval(self._code, self._globals, ram))  # noqa: S307 — whitelisted AST only

    def __reduce__(self) -> tuple[Any, ...]:
        return Predicate, (self.text, self._names, self.where)  # code objects do not pickle: parse again

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Predicate) and (self.text, self.where) == (other.text, other.where)

    def __hash__(self) -> int:
        return hash((self.text, self.where))

    def __repr__(self) -> str:
        return f"Predicate({self.text!r})"

    def source_over(self, var: str) -> str:
        """The expression's source with each field name ``n`` read as ``var['n']`` (for generated code)."""

        class Rename(ast.NodeTransformer):
            def visit_Name(self, node: ast.Name) -> ast.AST:
                return ast.Subscript(ast.Name(var, ast.Load()), ast.Constant(node.id), ast.Load())

        return ast.unparse(Rename().visit(copy.deepcopy(self._tree)).body)
