"""Generated per-step code against plain reference versions, on random RAM, for every shipped profile.

The RAM reader is checked against each field's codec (:meth:`RamField.read`), the vector builder
against a loop over its features and the milestone check against one predicate at a time. A
synthetic profile adds the encodings no shipped profile uses (``u16le``, multi-byte ``bitfield``).
"""

from __future__ import annotations

import pickle
import random
import traceback
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from conftest import TQ_PROFILE
from pokerl import codegen
from pokerl.codegen import VECTOR_LIMIT
from pokerl.profile import GameProfile, VectorFeature, load_profile, profile_from_mapping
from pokerl.ram import CODECS, RamField
from pokerl.rewards import load_reward
from pokerl.spec import load_spec


def every_encoding_profile() -> GameProfile:
    """tinyquest plus one field of each encoding and size, each fed into the vector."""
    data = yaml.safe_load(TQ_PROFILE.read_text())
    extra = {"a_u16le": ("u16le", None), "a_bcd1": ("bcd", 1), "a_bcd3": ("bcd", 3),
             "a_bits1": ("bitfield", 1), "a_bits2": ("bitfield", 2), "a_bits3": ("bitfield", 3),
             "a_flags9": ("flags", 9)}
    addr = 0xD000
    for name, (kind, size) in extra.items():
        data["ram"][name] = {"addr": addr, "type": kind, **({"size": size} if size else {})}
        addr += 16
    data["vector"] += [{"field": "a_u16le", "scale": 0.001}, {"field": "a_bcd3", "over": "a_bcd1"},
                       {"field": "a_bits2", "bits": 12}, {"field": "a_flags9", "bits": 70},
                       {"field": "a_bits1", "onehot": 5}]
    return profile_from_mapping(data, "every_encoding")


PROFILES = {"tinyquest": lambda: load_profile("tinyquest"), "pokemon_red": lambda: load_profile("pokemon_red"),
            "pokemon_blue": lambda: load_profile("pokemon_blue"), "every_encoding": every_encoding_profile}


def random_memory(rng: random.Random) -> bytearray:
    return bytearray(rng.getrandbits(8) for _ in range(0x10000))


def plain_vector(features: tuple[VectorFeature, ...], ram: Mapping[str, Any]) -> list[float]:
    out: list[float] = []
    for f in features:
        v = ram[f.field]
        if f.kind == "scale":
            out.append(min(float(v) * f.scale, VECTOR_LIMIT))
        elif f.kind == "fraction":
            d = ram[f.over]
            out.append(min(float(v) / d, VECTOR_LIMIT) if d > 0 else 0.0)
        elif f.kind == "bits":
            out += [float((int(v) >> b) & 1) for b in range(f.size)]
        else:
            out += [float(v == k) for k in range(f.size)]
    return out


@pytest.mark.parametrize("name", list(PROFILES))
def test_generated_reader_and_vector_equal_the_plain_versions(name: str) -> None:
    profile = PROFILES[name]()
    encodings = {f.type for f in profile.ram.values()}
    if name == "every_encoding":
        assert encodings == set(CODECS)
    rng = random.Random(name)
    for _ in range(20):
        mem = random_memory(rng)
        ram = profile.read_ram(mem)
        assert list(ram) == list(profile.ram)
        for field_name, field in profile.ram.items():
            assert ram[field_name] == field.read(mem), field_name
            assert type(ram[field_name]) is type(field.read(mem)), field_name
        assert profile.vector_values(ram) == plain_vector(profile.vector, ram)


@pytest.mark.parametrize(("game", "reward"), [("tinyquest", "tinyquest"), ("pokemon_red", "pokemon")])
def test_generated_milestone_check_equals_the_predicates(game: str, reward: str) -> None:
    profile = load_profile(game)
    cfg = load_reward(reward, profile.ram)
    check = codegen.milestone_check(cfg.milestones)
    rng = random.Random(game)
    hits = 0
    for _ in range(200):
        # mostly zero RAM with a few random bytes at the fields: milestones both hold and do not
        mem = bytearray(0x10000)
        for f in profile.ram.values():
            if rng.random() < 0.3:
                for i in range(f.size):
                    mem[f.addr + i] = rng.choice((0, 1, 2, 3, rng.getrandbits(8)))
        ram = profile.read_ram(mem)
        reached = {m.name for m in cfg.milestones if rng.random() < 0.2}
        want = [i for i, m in enumerate(cfg.milestones) if m.name not in reached and m.predicate(ram)]
        assert check(ram, reached) == want
        hits += len(want)
    assert hits > 0


def test_generated_code_has_a_file_name_in_tracebacks() -> None:
    reader = codegen.ram_reader({"x": RamField("x", 0xC000, "u8", 1)})
    with pytest.raises(TypeError) as err:
        reader(None)  # not subscriptable
    text = "".join(traceback.format_exception(err.value))
    assert "<pokerl generated read_ram" in text and "return {'x': m[49152]}" in text


def test_profile_and_spec_pickle_with_their_generated_code() -> None:
    spec = load_spec("tinyquest")
    spec.profile.read_ram(bytearray(0x10000))  # generated code made before pickling
    for obj in (spec, spec.profile, load_profile("pokemon_red")):
        again = pickle.loads(pickle.dumps(obj))
        assert again == obj
    mem = random_memory(random.Random(1))
    again = pickle.loads(pickle.dumps(spec))
    assert again.profile.read_ram(mem) == spec.profile.read_ram(mem)
    assert again.milestone_names == spec.milestone_names and again.observation_space == spec.observation_space
