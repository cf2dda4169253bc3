#!/usr/bin/env python3
"""Build the bundled tinyquest ROM from roms/tinyquest/ with SDCC (-msm83).

The build runs in a temporary directory: font.txt and maps.txt are turned into data.c,
the C sources and crt0.s are compiled and linked, makebin writes the 32 KiB image and the
cartridge header is finished here (title, ROM-only type, no RAM, header + global checksums).
The result is copied to src/pokerl/games/tinyquest.{gb,sym}.

  python scripts/build_tinyquest.py           # rebuild and install
  python scripts/build_tinyquest.py --check   # rebuild in a temp dir, fail unless identical
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "roms" / "tinyquest"
OUT = ROOT / "src" / "pokerl" / "games"
TITLE = "TINYQUEST"
C_SOURCES = ["main.c", "wram.c", "screen.c", "text.c", "world.c", "battle.c", "data.c"]
MAP_W, MAP_H = 20, 16
SHADES = {".": 0, "o": 1, "x": 2, "X": 3}
EDGE_INDEX = {"N": 0, "S": 1, "W": 2, "E": 3}


class BuildError(Exception):
    """A build step failed; the message is one line for the user."""


def parse_font(path: Path) -> bytes:
    """Return 128 tiles x 16 bytes (2bpp) from the glyph drawings in font.txt."""
    tiles = bytearray(128 * 16)
    glyphs: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in path.read_text().splitlines():
        if raw.startswith("#") or not raw.strip():
            continue
        if raw.startswith("= "):
            name = raw[2:]
            ch = " " if name == "space" else name
            if len(ch) != 1 or ord(ch) >= 128:
                raise BuildError(f"{path.name}: bad glyph name {name!r}")
            current = glyphs.setdefault(ch, [])
            continue
        if current is None:
            raise BuildError(f"{path.name}: pixel row before any '= C' line: {raw!r}")
        current.append(raw)
    for ch, rows in glyphs.items():
        if len(rows) == 7 and all(len(r) == 5 for r in rows):
            rows = ["." + r + ".." for r in rows] + ["........"]
        if len(rows) != 8 or any(len(r) != 8 for r in rows):
            raise BuildError(f"{path.name}: glyph {ch!r} must be 7 rows of 5 or 8 rows of 8")
        base = ord(ch) * 16
        for y, row in enumerate(rows):
            lo = hi = 0
            for x, px in enumerate(row):
                if px not in SHADES:
                    raise BuildError(f"{path.name}: glyph {ch!r} has bad pixel {px!r}")
                v = SHADES[px]
                lo |= (v & 1) << (7 - x)
                hi |= ((v >> 1) & 1) << (7 - x)
            tiles[base + 2 * y] = lo
            tiles[base + 2 * y + 1] = hi
    return bytes(tiles)


def parse_maps(path: Path) -> list[dict]:
    """Read maps.txt: a list of maps (id, name, rows, edges, warps, signs, wild range)."""
    maps: list[dict] = []
    cur: dict | None = None
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        where = f"{path.name}:{lineno}"
        if raw.startswith(";"):
            continue
        if cur is not None and len(cur["rows"]) < MAP_H and cur["rows_started"]:
            if len(raw) != MAP_W:
                raise BuildError(f"{where}: map row must be {MAP_W} characters, got {len(raw)}")
            cur["rows"].append(raw)
            continue
        words = raw.split(" ")
        key = words[0]
        if key == "map":
            cur = {
                "id": int(words[1]),
                "name": " ".join(words[2:]),
                "rows": [],
                "rows_started": False,
                "edges": [0xFF] * 4,
                "warps": [],
                "signs": [],
                "wild": (1, 1),
            }
            if cur["id"] != len(maps):
                raise BuildError(f"{where}: maps must be numbered 0, 1, 2, ... in order")
            maps.append(cur)
        elif cur is None:
            raise BuildError(f"{where}: expected 'map ID NAME'")
        elif key == "edge":
            cur["edges"][EDGE_INDEX[words[1]]] = int(words[2])
        elif key == "warp":
            cur["warps"].append(tuple(int(w) for w in words[1:6]))
        elif key == "sign":
            text = " ".join(words[3:]).split("|")
            if len(text) != 2 or any(len(t) > 20 for t in text):
                raise BuildError(f"{where}: sign text must be two lines of <= 20 chars split by '|'")
            cur["signs"].append((int(words[1]), int(words[2]), text))
        elif key == "wild":
            cur["wild"] = (int(words[1]), int(words[2]))
        else:
            if len(raw) != MAP_W:
                raise BuildError(f"{where}: map row must be {MAP_W} characters, got {len(raw)}")
            cur["rows_started"] = True
            cur["rows"].append(raw)
    for m in maps:
        if len(m["rows"]) != MAP_H:
            raise BuildError(f"{path.name}: map {m['id']} has {len(m['rows'])} rows, needs {MAP_H}")
        for x, y, dest, dx, dy in m["warps"]:
            if m["rows"][y][x] not in "+=":
                raise BuildError(f"{path.name}: warp at ({x},{y}) of map {m['id']} is not on a door")
            if maps_row(maps, dest, dy)[dx] in "^#~|%&$=":
                raise BuildError(f"{path.name}: warp into a solid tile of map {dest}")
        for x, y, _ in m["signs"]:
            if m["rows"][y][x] != "|":
                raise BuildError(f"{path.name}: sign at ({x},{y}) of map {m['id']} is not on '|'")
    return maps


def maps_row(maps: list[dict], map_id: int, y: int) -> str:
    """Row y of map map_id (used for checks after every map is read)."""
    return maps[map_id]["rows"][y] if map_id < len(maps) and maps[map_id]["rows"] else " " * MAP_W


def c_bytes(data: bytes | list[int], per_line: int = 16) -> str:
    """Format bytes as the body of a C array initialiser."""
    items = [f"0x{b:02X}" for b in data]
    return ",\n".join("  " + ", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line))


def c_string(s: str) -> str:
    """A C string literal (the map alphabet never needs more than quote/backslash escapes)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def generate_data(font: bytes, maps: list[dict]) -> str:
    """C source with the tiles and map tables the game reads."""
    out = [
        "/* Generated by scripts/build_tinyquest.py from font.txt and maps.txt. Do not edit. */",
        '#include "tq.h"',
        "",
        "const uint8_t font_tiles[2048] = {",
        c_bytes(font),
        "};",
        "",
    ]
    out.append(f"const uint8_t map_tiles[{len(maps)}][MAP_W * MAP_H] = {{")
    for m in maps:
        out.append("  {" + c_bytes("".join(m["rows"]).encode("ascii"), 20).strip() + "},")
    out.append("};")
    out.append(f"const uint8_t map_edges[{len(maps)}][4] = {{")
    out += ["  {" + ", ".join(str(e) for e in m["edges"]) + "}," for m in maps]
    out.append("};")
    out.append(f"const uint8_t map_wild[{len(maps)}][2] = {{")
    out += [f"  {{{m['wild'][0]}, {m['wild'][1]}}}," for m in maps]
    out.append("};")
    out.append(f"const char map_names[{len(maps)}][12] = {{")
    out += [f"  {c_string(m['name'][:11])}," for m in maps]
    out.append("};")
    warps = [(m["id"], *w) for m in maps for w in m["warps"]]
    out.append(f"const uint8_t n_warps = {len(warps)};")
    out.append(f"const uint8_t warp_table[{len(warps)}][6] = {{")
    out += ["  {" + ", ".join(str(v) for v in w) + "}," for w in warps]
    out.append("};")
    signs = [(m["id"], x, y, text) for m in maps for x, y, text in m["signs"]]
    out.append(f"const uint8_t n_signs = {len(signs)};")
    out.append(f"const uint8_t sign_table[{len(signs)}][3] = {{")
    out += [f"  {{{mid}, {x}, {y}}}," for mid, x, y, _ in signs]
    out.append("};")
    out.append(f"const char sign_text[{len(signs)}][40] = {{")
    out += ["  " + c_string(t[0].ljust(20) + t[1].ljust(20)) + "," for *_, t in signs]
    out.append("};")
    return "\n".join(out) + "\n"


def run(cmd: list[str], cwd: Path) -> None:
    """Run one tool; raise BuildError with its first error line on failure."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise BuildError(f"{cmd[0]} failed: {msg[0] if msg else 'exit ' + str(proc.returncode)}")


def finish_header(rom: bytearray) -> None:
    """Title, ROM-only cartridge without RAM, and the header and global checksums."""
    rom[0x134:0x144] = TITLE.encode("ascii").ljust(16, b"\0")
    rom[0x146] = 0x00  # no SGB functions
    rom[0x147] = 0x00  # ROM only: no MBC, no RAM, no battery (so no .ram saves)
    rom[0x148] = 0x00  # 32 KiB
    rom[0x149] = 0x00  # no cartridge RAM
    rom[0x14A] = 0x01  # non-Japanese
    rom[0x14B] = 0x33
    rom[0x14C] = 0x00  # version
    chk = 0
    for b in rom[0x134:0x14D]:
        chk = (chk - b - 1) & 0xFF
    rom[0x14D] = chk
    total = (sum(rom) - rom[0x14E] - rom[0x14F]) & 0xFFFF
    rom[0x14E] = total >> 8
    rom[0x14F] = total & 0xFF


def build(dest: Path) -> tuple[Path, Path]:
    """Build tinyquest.gb and tinyquest.sym into dest; return their paths."""
    for tool in ("sdcc", "sdasgb", "makebin"):
        if shutil.which(tool) is None:
            raise BuildError(f"'{tool}' not found: install SDCC (apt-get install sdcc) to build tinyquest")
    with tempfile.TemporaryDirectory(prefix="tinyquest-") as tmp_name:
        tmp = Path(tmp_name)
        for name in ["tq.h", "crt0.s", *[c for c in C_SOURCES if c != "data.c"]]:
            shutil.copyfile(SRC / name, tmp / name)
        (tmp / "data.c").write_text(generate_data(parse_font(SRC / "font.txt"), parse_maps(SRC / "maps.txt")))
        run(["sdasgb", "-plosgff", "crt0.rel", "crt0.s"], tmp)
        for c in C_SOURCES:
            run(["sdcc", "-msm83", "--std-c11", "-c", c], tmp)
        rels = ["crt0.rel"] + [c[:-2] + ".rel" for c in C_SOURCES]
        run(
            [
                "sdcc",
                "-msm83",
                "--no-std-crt0",
                "--code-loc",
                "0x0200",
                "--data-loc",
                "0xC100",
                "-o",
                "tinyquest.ihx",
                *rels,
            ],
            tmp,
        )
        run(["makebin", "-Z", "-yN", "-yS", "-yn", TITLE, "tinyquest.ihx", "tinyquest.gb"], tmp)
        rom = bytearray((tmp / "tinyquest.gb").read_bytes())
        if len(rom) != 32768:
            raise BuildError(f"ROM is {len(rom)} bytes, expected 32768 (code too large?)")
        finish_header(rom)
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "tinyquest.gb").write_bytes(bytes(rom))
        shutil.copyfile(tmp / "tinyquest.sym", dest / "tinyquest.sym")
    return dest / "tinyquest.gb", dest / "tinyquest.sym"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: build and install, or --check against the shipped ROM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="rebuild in a temp dir; fail unless identical")
    args = parser.parse_args(argv)
    try:
        if args.check:
            with tempfile.TemporaryDirectory(prefix="tinyquest-check-") as tmp:
                gb, sym = build(Path(tmp))
                for new, name in ((gb, "tinyquest.gb"), (sym, "tinyquest.sym")):
                    shipped = OUT / name
                    if not shipped.exists():
                        raise BuildError(f"{shipped} is missing: run scripts/build_tinyquest.py")
                    if not filecmp.cmp(new, shipped, shallow=False):
                        raise BuildError(f"rebuilt {name} differs from {shipped}: rebuild and commit it")
            print("tinyquest: rebuilt ROM and .sym are byte-identical to the shipped ones")
        else:
            gb, _ = build(OUT)
            print(f"tinyquest: wrote {gb} ({gb.stat().st_size} bytes)")
    except BuildError as exc:
        print(f"build_tinyquest: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
