"""Chains on the real ROM: an archived state's trajectory replayed from power-on, saved every K steps,
checked against the archive's record (``pokerl-chain``)."""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

from conftest import ACTION, make_tq, press, tiny_run, walk_town_to_route1
from pokerl.archive import Archive, Entry
from pokerl.chain import ChainError, load_chain
from pokerl.checkpoint import SCHEMA, load_checkpoint
from pokerl.config import compose_train_config
from pokerl.trainer import Trainer

RUN = tiny_run("total_steps=32", "archive.by_map=true")


def two_episode_entry() -> Entry:
    """Route 1 reached from power-on (12 steps), then, in an episode started there, the town again (1 step)."""
    env = make_tq(archive=True, by_map=True)
    try:
        env.reset(seed=1)
        (first,) = [info["archive_entry"] for _, info in walk_town_to_route1(env) if "archive_entry" in info]
        env.reset(seed=2, options={"entry": first})
        return press(env, "left")[1]["archive_entry"]
    finally:
        env.close()


def run_with(tmp: Path, entry: Entry) -> Path:
    """A real run's checkpoint whose archive also holds ``entry``."""
    run_dir = tmp / "run"
    Trainer(compose_train_config([*RUN, f"run_dir={run_dir}"])).run()
    path = run_dir / "checkpoints" / "latest.pt"
    ckpt = load_checkpoint(path)
    archive = Archive(8)
    archive.load_state_dict(ckpt["archive"])
    archive.offer(entry)
    torch.save({**ckpt, "archive": archive.state_dict()}, path)
    return run_dir


def chain_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pokerl.cli.chain", *args], capture_output=True, text=True,
                          timeout=300)


def test_a_chain_replays_from_power_on_with_the_same_states_and_a_tampered_action_names_its_step(
        tmp_path: Path) -> None:
    entry = two_episode_entry()
    run_dir = run_with(tmp_path, entry)
    out = chain_cli(str(run_dir), "--to", "route1", "--every", "4", "-o", str(tmp_path / "chain.pt"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "13 steps in 2 episodes" in out.stdout
    chain = load_chain(tmp_path / "chain.pt")
    assert chain.trajectory == entry.trajectory and chain.milestone_steps == {"route1": 12}
    assert [p.step for p in chain.points] == [0, 4, 8, 12, 13]
    assert [p.milestones for p in chain.points] == [(), (), (), ("route1",), ("route1",)]
    assert zlib.decompress(chain.end.state) == zlib.decompress(entry.state)
    out = chain_cli(str(run_dir), "--to", "route1", "--every", "4", "--shorten", "-o", str(tmp_path / "short.pt"))
    assert out.returncode == 0 and "loops erased: 13 -> 13 steps (0 cuts" in out.stdout, out.stderr[-3000:]  # none
    assert load_chain(tmp_path / "short.pt").trajectory == entry.trajectory
    out = chain_cli(str(tmp_path / "short.pt"), "--shorten", "-o", str(tmp_path / "again.pt"))  # a chain file
    assert out.returncode == 0 and "loops erased: 13 -> 13 steps" in out.stdout, out.stderr[-3000:]
    assert load_chain(tmp_path / "again.pt").trajectory == entry.trajectory

    # the same emulator state (RAM, frame, everything) at every saved point when replayed again
    env = make_tq(by_map=True)
    try:
        env.reset(seed=5)
        states = {0: zlib.decompress(chain.points[0].state)}
        for step, _ in enumerate(env.replay(chain.trajectory), start=1):
            states[step] = zlib.decompress(env.session.save_state())
    finally:
        env.close()
    for point in chain.points[1:]:
        assert states[point.step] == zlib.decompress(point.state), point.step

    # one action changed (the first step east becomes B): route1 is one tile short at step 12
    ckpt = load_checkpoint(run_dir)
    for raw in ckpt["archive"]["entries"]:
        if raw["milestones"] == ["route1"] and raw["map"] == 0:
            seed, actions = raw["trajectory"][0]
            raw["trajectory"][0] = [seed, bytes([ACTION["b"]]) + actions[1:]]
    torch.save(ckpt, run_dir / "checkpoints" / "latest.pt")
    out = chain_cli(str(run_dir), "--to", "route1", "-o", str(tmp_path / "tampered.pt"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "the replay diverged at step 12: route1 recorded there, not held" in out.stderr
    assert not (tmp_path / "tampered.pt").exists()


def test_a_chain_file_that_is_not_one_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "chain.pt"
    bad.write_bytes(b"\x00not a chain" * 50)
    with pytest.raises(ChainError, match="is not a readable chain file"):
        load_chain(bad)
    torch.save({"schema": 1, "game": "tinyquest"}, bad)
    with pytest.raises(ChainError, match="chain schema 1 is not this pokerl's"):
        load_chain(bad)
    torch.save({"schema": SCHEMA, "game": "tinyquest", "every": 32, "trajectory": [], "milestone_steps": {},
                "states": torch.zeros(10, dtype=torch.uint8), "points": [[0, 12, [], 0]]}, bad)
    with pytest.raises(ChainError, match="not a pokerl chain .*12 bytes of states, the file 10"):
        load_chain(bad)


COMMITTED = Path(__file__).resolve().parent.parent / "src" / "pokerl" / "games" / "tinyquest.chain.pt"


def test_the_committed_tinyquest_chain_replays_from_power_on_to_the_end_of_the_game() -> None:
    """The chain the backward curriculum walks (found by pokerl's own goexplore run, not a walkthrough; its
    loops erased by pokerl-chain --shorten):
    replayed from power-on, the same emulator state at every saved point, and the game complete at its end."""
    chain = load_chain(COMMITTED)
    assert chain.game == "tinyquest" and "complete" in chain.end.milestones
    assert COMMITTED.stat().st_size < 2_000_000  # its states stored as bytes, not pickled as text (2.6 MB so)
    wanted = {p.step: zlib.decompress(p.state) for p in chain.points[1:]}
    env = make_tq(by_map=True)
    try:
        env.reset(seed=5)
        for step, _ in enumerate(env.replay(chain.trajectory), start=1):
            if step in wanted:
                assert zlib.decompress(env.session.save_state()) == wanted.pop(step), step
        assert not wanted
        assert env.profile.read_ram(env.session.memory)["complete"] == 1
    finally:
        env.close()
