"""Game profiles: loading, and the checks that make bad YAML one line."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from conftest import TQ_PROFILE, make_tq, one_line, profile_with
from pokerl.errors import ConfigError
from pokerl.profile import load_profile, profile_from_mapping
from pokerl.ram import RamField


def _tq() -> dict:
    return yaml.safe_load(TQ_PROFILE.read_text())


def test_shipped_profile_loads_into_dataclasses() -> None:
    profile = load_profile("tinyquest")
    assert profile.name == "tinyquest" and profile.actions == ("down", "left", "right", "up", "a", "b")
    assert profile.ram["hp"] == RamField("hp", 0xC005, "u16be", 2)
    assert profile.ram["events"].size == 4 and profile.ram["events"].type == "flags"
    assert profile.boot.seed_field == "rng" and profile.boot.writes == {"ballast": 125}
    assert profile.coords == ("map_id", "x", "y")
    assert profile.vector_size == 1 + 1 + 2 + 3 + 8 + 8 + 1 + 1
    assert profile.world_map.offsets[3] == (40, 16)
    assert profile.rom_path().name == "tinyquest.gb"


def test_read_ram_with_all_fields() -> None:
    profile = load_profile("tinyquest")
    mem = bytearray(0x10000)
    mem[0xC005], mem[0xC006] = 0x01, 0x02
    mem[0xC00C] = 0b0010_0001
    ram = profile.read_ram(mem)
    assert ram["hp"] == 0x0102 and ram["map_id"] == 0
    assert ram["events"][0] == 1 and ram["events"][5] == 1 and ram["events"].count() == 2


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: d.__setitem__("actionz", []), ["actionz", "unknown key"]),
        (lambda d: d["ram"]["hp"].__setitem__("type", "u24"), ["ram.hp.type", "u24"]),
        (lambda d: d["ram"]["hp"].__setitem__("size", 3), ["ram.hp.size"]),
        (lambda d: d["ram"]["hp"].__setitem__("addr", "0xZZ"), ["ram.hp.addr"]),
        (lambda d: d["ram"]["hp"].__setitem__("addr", 0xFFFF), ["ram.hp.addr", "out of range"]),
        (lambda d: d["ram"]["events"].__setitem__("addr", 0xDFFE), ["ram.events.addr", "out of range"]),
        (lambda d: d.__setitem__("actions", ["down", "jump"]), ["actions", "jump"]),
        (lambda d: d["boot"].__setitem__("seed_field", "seed"), ["boot.seed_field", "seed"]),
        (lambda d: d["boot"]["writes"].__setitem__("ballast", "lots"), ["boot.writes.ballast"]),
        (lambda d: d["boot"].__setitem__("sequence", [{"press": "jump", "frames": 8}]), ["sequence[0].press"]),
        (lambda d: d["coords"].__setitem__("x", "pos_x"), ["coords.x", "pos_x"]),
        (lambda d: d["vector"].append({"field": "gold", "scale": 1}), ["vector[8].field", "gold"]),
        (lambda d: d["rom"].__setitem__("sha1", ["abc"]), ["rom.sha1"]),
        (lambda d: d.__setitem__("done_when", "import os"), ["done_when"]),
        (lambda d: d.__setitem__("busy_when", "in_battle or nosuch"), ["busy_when", "nosuch"]),
        (lambda d: d.__setitem__("visited_cell", True), ["visited_cell"]),
        (lambda d: d.pop("ram"), ["ram", "missing"]),
        (lambda d: d["world_map"].__setitem__("size", [80]), ["world_map.size", "[width, height]"]),
    ],
)
def test_bad_profile_is_a_one_line_config_error(edit, words: list[str]) -> None:
    data = copy.deepcopy(_tq())
    edit(data)
    with pytest.raises(ConfigError) as err:
        profile_from_mapping(data, "my_profile.yaml")
    text = str(err.value)
    assert "\n" not in text and text.startswith("my_profile.yaml")
    for word in words:
        assert word in text


def test_bad_profile_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nram: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_profile(str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_profile("no_such_game")
    assert "no_such_game" in str(err.value) and "\n" not in str(err.value)


def test_unknown_profile_key(tmp_path: Path) -> None:
    path = profile_with(tmp_path, lambda d: d.__setitem__("visted_cell", 4))
    with pytest.raises(ConfigError) as err:
        make_tq(game=str(path))
    text = one_line(err)
    assert str(path) in text and "visted_cell" in text and "unknown key" in text


def test_unknown_nested_profile_key(tmp_path: Path) -> None:
    path = profile_with(tmp_path, lambda d: d["ram"]["hp"].__setitem__("adr", 0xC005))
    with pytest.raises(ConfigError) as err:
        make_tq(game=str(path))
    assert "ram.hp.adr" in one_line(err)


def test_wrong_type_in_profile(tmp_path: Path) -> None:
    path = profile_with(tmp_path, lambda d: d.__setitem__("visited_cell", "four"))
    with pytest.raises(ConfigError) as err:
        make_tq(game=str(path))
    assert "visited_cell" in one_line(err)


def test_address_out_of_range(tmp_path: Path) -> None:
    path = profile_with(tmp_path, lambda d: d["ram"]["level"].__setitem__("addr", 0x0100))
    with pytest.raises(ConfigError) as err:
        make_tq(game=str(path))
    text = one_line(err)
    assert "ram.level.addr" in text and "out of range" in text
