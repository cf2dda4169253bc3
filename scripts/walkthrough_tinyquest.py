#!/usr/bin/env python3
"""Play tinyquest from power-on to "game complete" through PyBoy with a reactive script.

The driver reads the game's state from the fixed WRAM block (addresses taken from the ROM's
.sym file) and the map tables from the ROM itself, then: grinds in Route 1's grass to level 3,
beats gym 1, fetches the key in the forest, opens the north gate, grinds in Route 2 to level 7,
heals, beats gym 2 and walks into the final room. Battles always use HIT; text boxes are
closed with A; a blackout simply re-plans from the town.

  python scripts/walkthrough_tinyquest.py --seed 1 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROM = ROOT / "src" / "pokerl" / "games" / "tinyquest.gb"

HOLD_FRAMES = 8
STEP_FRAMES = 24
BOOT_FRAMES = 120
MAP_W, MAP_H = 20, 16
SOLID = set(b"^#~|%&$=")
DIRS = {"down": (0, 1), "up": (0, -1), "left": (-1, 0), "right": (1, 0)}
EDGE_DIRS = ("up", "down", "left", "right")  # order of map_edges: N, S, W, E

# Where the walkthrough goes: (map, x, y) to stand on, then the button that triggers the goal.
HEAL = (0, 10, 8)
BOSS1 = ((3, 9, 3), "up")
KEY = ((2, 2, 1), "left")
GATE = ((0, 9, 1), "up")
BOSS2 = ((5, 9, 3), "up")
FINAL = (6, 9, 14)
GRIND1 = ((1, 6, 7), (1, 6, 8))  # two grass tiles of Route 1
GRIND2 = ((4, 9, 10), (4, 9, 11))  # two grass tiles of Route 2


@dataclass(frozen=True)
class Plan:
    """Levels the walkthrough grinds to before each boss (tests lower them to check losses)."""

    level_for_boss1: int = 3
    level_for_boss2: int = 7


def read_symbols(sym_path: Path) -> dict[str, int]:
    """Map symbol name (without the leading underscore) to address, from a no$gmb .sym file."""
    out: dict[str, int] = {}
    for line in sym_path.read_text().splitlines():
        if line.startswith(";") or ":" not in line:
            continue
        addr, _, name = line.partition(" ")
        out[name.lstrip("_")] = int(addr.split(":")[1], 16)
    return out


@dataclass
class Game:
    """A PyBoy session on tinyquest with named access to the WRAM block."""

    pyboy: object
    sym: dict[str, int]
    frames: int = 0
    maps_visited: list[int] = field(default_factory=list)

    def u8(self, name: str, offset: int = 0) -> int:
        """One byte of a WRAM/ROM symbol."""
        return self.pyboy.memory[self.sym[name] + offset]

    def u16(self, name: str) -> int:
        """A big-endian u16 WRAM field."""
        return (self.u8(name) << 8) | self.u8(name, 1)

    def event(self, i: int) -> bool:
        """Event flag i of tq_events."""
        return bool(self.u8("tq_events", i >> 3) & (1 << (i & 7)))

    def tick(self, n: int) -> None:
        """Run n frames, rendering only the last one."""
        if n > 1:
            self.pyboy.tick(n - 1, False)
        self.pyboy.tick(1, True)
        self.frames += n

    def press(self, button: str) -> None:
        """One env-style step: hold the button HOLD_FRAMES frames, release, run to STEP_FRAMES."""
        self.pyboy.button_press(button)
        self.tick(HOLD_FRAMES)
        self.pyboy.button_release(button)
        self.tick(STEP_FRAMES - HOLD_FRAMES)
        m = self.u8("tq_map")
        if m not in self.maps_visited:
            self.maps_visited.append(m)

    def summary(self) -> dict:
        """The walkthrough result read from the WRAM block."""
        badges = self.u8("tq_badges")
        return {
            "maps_visited": sorted(self.maps_visited),
            "badges": (badges & 1) + ((badges >> 1) & 1),
            "level": self.u8("tq_level"),
            "blackouts": self.u8("tq_blackouts"),
            "complete": self.u8("tq_complete") == 1,
            "frames": self.frames,
            "xp": self.u16("tq_xp"),
            "events": [i for i in range(8) if self.event(i)],
        }


def open_game(seed: int, ballast: int | None = None, rom: Path = ROM) -> Game:
    """Boot the ROM headless, run BOOT_FRAMES frames, write the seed (and ballast) into WRAM."""
    from pyboy import PyBoy

    pyboy = PyBoy(str(rom), window="null", sound_emulated=False)
    pyboy.set_emulation_speed(0)
    game = Game(pyboy, read_symbols(rom.with_suffix(".sym")))
    game.tick(BOOT_FRAMES)
    rng = game.sym["tq_rng"]
    pyboy.memory[rng] = (seed >> 8) & 0xFF
    pyboy.memory[rng + 1] = seed & 0xFF
    if ballast is not None:
        pyboy.memory[game.sym["tq_ballast"]] = ballast
    game.maps_visited.append(game.u8("tq_map"))
    return game


class World:
    """The maps as read from the ROM: tiles, edges and warps, for path finding."""

    def __init__(self, game: Game) -> None:
        s = game.sym
        self.n_maps = (s["map_edges"] - s["map_tiles"]) // (MAP_W * MAP_H)
        mem = game.pyboy.memory
        self.tiles = [
            bytes(mem[s["map_tiles"] + m * MAP_W * MAP_H + i] for i in range(MAP_W * MAP_H))
            for m in range(self.n_maps)
        ]
        self.edges = [[mem[s["map_edges"] + m * 4 + d] for d in range(4)] for m in range(self.n_maps)]
        n_warps = mem[s["n_warps"]]
        self.warps = {}
        for i in range(n_warps):
            w = [mem[s["warp_table"] + i * 6 + k] for k in range(6)]
            self.warps[(w[0], w[1], w[2])] = (w[3], w[4], w[5])

    def tile(self, m: int, x: int, y: int, game: Game) -> int:
        """Tile at a position, after the key and gate events."""
        t = self.tiles[m][y * MAP_W + x]
        if t == ord("$") and game.event(0):
            return ord(" ")
        if t == ord("=") and game.event(1):
            return ord("+")
        return t

    def neighbours(self, node: tuple[int, int, int], game: Game):
        """(button, next position) pairs reachable with one step from node."""
        m, x, y = node
        for button, (dx, dy) in DIRS.items():
            nx, ny = x + dx, y + dy
            if not (0 <= nx < MAP_W and 0 <= ny < MAP_H):
                nb = self.edges[m][EDGE_DIRS.index(button)]
                if nb != 0xFF:
                    yield button, (nb, nx % MAP_W, ny % MAP_H)
                continue
            if self.tile(m, nx, ny, game) in SOLID:
                continue
            yield button, self.warps.get((m, nx, ny), (m, nx, ny))

    def first_step(self, start: tuple[int, int, int], goal: tuple[int, int, int], game: Game) -> str | None:
        """First button of a shortest path from start to goal (None if there or unreachable)."""
        if start == goal:
            return None
        prev: dict = {start: None}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for button, nxt in self.neighbours(node, game):
                if nxt in prev:
                    continue
                prev[nxt] = (node, button)
                if nxt == goal:
                    while prev[nxt][0] != start:
                        nxt = prev[nxt][0]
                    return prev[nxt][1]
                queue.append(nxt)
        return None


def battle_or_text_button(game: Game) -> str | None:
    """A while a text box is open, HIT in a battle menu; None in the overworld."""
    if game.u8("tq_text"):
        return "a"
    if game.u8("tq_in_battle"):
        return "up" if game.u8("tq_menu") != 0 else "a"
    return None


def drive_to(game: Game, world: World, target: tuple[int, int, int], max_steps: int = 3000) -> bool:
    """Walk to target (map, x, y), fighting battles and closing text boxes on the way."""
    for _ in range(max_steps):
        button = battle_or_text_button(game)
        if button is None:
            here = (game.u8("tq_map"), game.u8("tq_x"), game.u8("tq_y"))
            if here == target:
                return True
            button = world.first_step(here, target, game)
            if button is None:
                return False
        game.press(button)
    return False


def next_button(game: Game, world: World, plan: Plan = Plan()) -> str:
    """Decide the next button from the current state (the walkthrough's policy)."""
    button = battle_or_text_button(game)
    if button is not None:
        return button
    here = (game.u8("tq_map"), game.u8("tq_x"), game.u8("tq_y"))
    level, badges = game.u8("tq_level"), game.u8("tq_badges")
    hp, max_hp = game.u16("tq_hp"), game.u16("tq_max_hp")

    def go(target: tuple[int, int, int], then: str | None = None) -> str:
        step = world.first_step(here, target, game)
        if step is not None:
            return step
        return then or "b"

    def grind(spots: tuple[tuple[int, int, int], ...]) -> str:
        return go(spots[1] if here == spots[0] else spots[0])

    if not badges & 1:
        if level < plan.level_for_boss1:
            return go(HEAL) if hp * 3 < max_hp and here[0] == 0 else grind(GRIND1)
        if hp < max_hp and here[0] in (0, 1) and not game.event(4):
            return go(HEAL)
        if hp < max_hp and here[0] in (0, 1) and hp * 2 < max_hp:
            return go(HEAL)
        return go(*BOSS1)
    if not game.event(0):
        return go(*KEY)
    if not game.event(1):
        return go(*GATE)
    if not badges & 2:
        if level < plan.level_for_boss2:
            return go(HEAL) if hp * 5 < max_hp * 2 else grind(GRIND2)
        if hp < max_hp and here[0] not in (5,):
            return go(HEAL)
        return go(*BOSS2)
    return go(FINAL)


def play(
    seed: int = 1,
    ballast: int | None = 0,
    max_steps: int = 20000,
    rom: Path = ROM,
    plan: Plan = Plan(),
) -> dict:
    """Run the walkthrough; return the summary dict (see Game.summary)."""
    game = open_game(seed, ballast, rom)
    try:
        world = World(game)
        steps = 0
        while not game.u8("tq_complete") and steps < max_steps:
            game.press(next_button(game, world, plan))
            steps += 1
        # close the final text box
        while game.u8("tq_text") and steps < max_steps:
            game.press("a")
            steps += 1
        result = game.summary()
        result["steps"] = steps
        return result
    finally:
        game.pyboy.stop(save=False)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="RNG seed written to tq_rng after boot")
    parser.add_argument("--ballast", type=int, default=None, help="override tq_ballast (default: ROM's)")
    parser.add_argument("--max-steps", type=int, default=20000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = play(args.seed, args.ballast, args.max_steps)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
