"""The milestone state archive on the real ROM: what is archived, where episodes start, what survives."""

from __future__ import annotations

import functools
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import (
    ACTION,
    TQ_PROFILE,
    battle_button,
    make_tq,
    position,
    press,
    tiny_run,
    torchrun,
    walk_route1_to_grass,
    walk_town_to_route1,
)
from pokerl.archive import Archive, Entry, ResetConfig, Trajectory
from pokerl.checkpoint import load_checkpoint
from pokerl.config import compose_train_config
from pokerl.env import GameBoyEnv, make_env
from pokerl.pool import VectorPool
from pokerl.spec import load_spec
from pokerl.trainer import Trainer

FRONTIER = ResetConfig(mode="frontier", fresh_share=0.0)


def offers(infos: list[dict[str, Any]]) -> list[Entry]:
    return [i["archive_entry"] for i in infos if "archive_entry" in i]


def route1_entry() -> Entry:
    """Walk from town to Route 1 with archiving on: the ``route1`` milestone's entry."""
    env = make_tq(archive=True)
    try:
        env.reset(seed=1)
        (entry,) = offers([info for _, info in walk_town_to_route1(env)])
    finally:
        env.close()
    return entry


def test_new_milestone_sets_are_archived_with_steps_from_power_on() -> None:
    entry = route1_entry()
    assert entry.milestones == ("route1",) and entry.steps == 12 and entry.milestone_steps == {"route1": 12}


def test_a_known_cell_is_offered_again_when_reached_in_fewer_steps_from_power_on() -> None:
    """The env offers a cell its archive holds when this episode reached it sooner, never when later."""
    env = make_tq(archive=True)
    try:
        env.reset(seed=1)
        for _ in range(4):  # a detour: east and back, twice (8 steps)
            press(env, "right")
            press(env, "left")
        (slow,) = offers([info for _, info in walk_town_to_route1(env)])
        assert slow.milestones == ("route1",) and slow.steps == 8 + 12
        env.set_archive([slow])
        env.reset(seed=1)
        (fast,) = offers([info for _, info in walk_town_to_route1(env)])
        assert fast.cell == slow.cell and fast.steps == 12
        env.set_archive([fast])
        env.reset(seed=1)
        press(env, "right")
        press(env, "left")
        assert not offers([info for _, info in walk_town_to_route1(env)])  # 14 steps: not better
    finally:
        env.close()


def test_an_entry_records_its_trajectory_from_power_on_and_replays_to_the_same_state() -> None:
    """Lineage: an entry found from another records that parent and its whole trajectory from power-on
    (each episode's reset seed and actions); replaying it on a fresh env gives the same emulator state,
    and it survives the archive's checkpoint form. One changed action ends elsewhere."""
    env = make_tq(archive=True, by_map=True)
    try:
        env.reset(seed=1)
        (first,) = offers([info for _, info in walk_town_to_route1(env)])
        walk = bytes([ACTION["right"]] * 9 + [ACTION["up"]] + [ACTION["right"]] * 2)
        assert first.parent is None and len(first.trajectory) == 1 and first.trajectory[0][1] == walk
        env.reset(seed=2, options={"entry": first})
        _, info = press(env, "left")  # back into the town: route1 held on another map, a new cell
        second = info["archive_entry"]
        assert second.parent == first.cell
        assert second.trajectory == (*first.trajectory, (second.trajectory[1][0], bytes([ACTION["left"]])))
        assert second.trajectory[0][0] != second.trajectory[1][0]  # each reset wrote its own seed
    finally:
        env.close()
    archive = Archive(8)
    archive.offer(second)
    restored = Archive()
    restored.load_state_dict(archive.state_dict())
    (kept,) = restored.entries.values()
    assert (kept.parent, kept.trajectory) == (second.parent, second.trajectory)

    def replayed(trajectory: Trajectory) -> tuple[bytes, dict[str, Any]]:
        env = make_tq(by_map=True)
        try:
            env.reset(seed=9)
            *_, (_, _, info) = env.replay(trajectory)
            return zlib.decompress(env.session.save_state()), info
        finally:
            env.close()

    state, info = replayed(kept.trajectory)
    assert state == zlib.decompress(second.state)
    assert (info["map_id"], info["x"], info["y"]) == (0, 19, 8)
    tampered = (kept.trajectory[0], (kept.trajectory[1][0], bytes([ACTION["down"]])))
    assert replayed(tampered)[0] != state


def test_an_offer_leaves_the_episode_its_screens() -> None:
    """Archiving the ``route1`` state mid-episode must not take the screens the heat map is painted with."""
    env = make_tq(archive=True, capture_screens=True)
    try:
        env.reset(seed=1)
        assert offers([info for _, info in walk_town_to_route1(env)])
        assert 0 in {m for m, *_ in env.episode_summary()["screens"]}  # the town, seen before the offer
    finally:
        env.close()


def test_an_entry_continues_identically_in_another_worker() -> None:
    """The same entry, seed and actions give the same frames and RAM in a worker process and here."""
    entry = route1_entry()
    spec = load_spec("tinyquest")
    fn = functools.partial(make_env, spec=spec, writes={"ballast": 0}, reset=FRONTIER)
    actions = np.random.default_rng(3).integers(0, 6, size=30)
    here = fn()
    here.set_archive([entry])
    obs_here, _ = here.reset(seed=8)
    with VectorPool([fn], spec, 1, inline=False) as pool:
        pool.call("set_archive", [entry])
        obs_there, _ = pool.reset(seed=8)
        assert here.profile.read_ram(here.session.memory)["map_id"] == 1  # on Route 1, not in town
        for a in actions:
            for k in obs_here:
                np.testing.assert_array_equal(obs_there[k][0], obs_here[k])
            obs_here, *_ = here.step(int(a))
            obs_there, *_ = pool.step(np.array([a]))
        for k in obs_here:
            np.testing.assert_array_equal(obs_there[k][0], obs_here[k])
    here.close()


def test_held_milestones_are_not_paid_again() -> None:
    """Starting on Route 1 with ``route1`` held: ``map_id == 1`` holds from the first step, unpaid; the
    summary counts it as held, with its step from power-on, and the episode's own steps after it."""
    entry = route1_entry()
    env = make_tq(start=entry, max_steps=20)
    try:
        env.reset(seed=2)
        infos = [press(env, "left")[1] for _ in range(3)]  # back into town: route1 would fire on return
        infos += [press(env, "right")[1] for _ in range(17)]
        assert all(i["reward_terms"]["milestones"] == 0.0 for i in infos)
        summary = infos[-1]["episode"]
        assert summary["start"] == "archive" and summary["start_milestones"] == ["route1"]
        assert summary["milestones"].count("route1") == 1
        assert summary["milestone_steps"]["route1"] == 12 and summary["start_steps"] == 12
    finally:
        env.close()


def test_no_state_is_archived_mid_battle_or_where_the_episode_ends() -> None:
    game = yaml.safe_load(TQ_PROFILE.read_text())
    reward = yaml.safe_load((TQ_PROFILE.parent.parent / "reward" / "tinyquest.yaml").read_text())
    reward["milestones"]["fight"] = {"when": "in_battle == 1", "reward": 0.0}
    env = make_tq(game=game, reward=reward, archive=True)
    try:
        env.reset(seed=3)
        walk_town_to_route1(env)
        walk_route1_to_grass(env)
        infos, toggle = [], 0
        for _ in range(1500):  # up and down in the grass until a wild battle, then HIT until it is over
            button = battle_button(env) or ("up" if (toggle := toggle ^ 1) else "down")
            infos.append(press(env, button)[1])
            if any("fight" in i["milestones"] for i in infos) and not (infos[-1]["in_battle"] or infos[-1]["text"]):
                break
        fight = next(n for n, i in enumerate(infos) if "fight" in i["milestones"])
        offered = [(n, i) for n, i in enumerate(infos)
                   if "fight" in i.get("archive_entry", Entry((), b"", 0, {})).milestones]
        assert offered and offered[0][0] > fight  # not while the battle or its text went on
        n, info = offered[0]
        assert not info["in_battle"] and not info["text"]
    finally:
        env.close()
    game["done_when"] = "map_id == 1"  # reaching Route 1 ends the episode: archived as the end, never a start
    env = make_tq(game=game, archive=True, reset=FRONTIER)
    try:
        env.reset(seed=1)
        results = walk_town_to_route1(env)
        (end,) = offers([i for _, i in results])
        assert results[-1][1]["milestones"] == ["route1"] and end.terminal and end.milestones == ("route1",)
        archive = Archive(4)
        archive.offer(end)
        assert archive.best() is end and archive.best(startable=True) is None
        assert archive.for_milestone("route1") is end and archive.for_milestone("route1", startable=True) is None
        env.set_archive([end])
        env.reset(seed=2)  # frontier, no power-on share: yet no start where the game ended
        assert env.episode_summary()["start"] == "power-on"
    finally:
        env.close()


def test_a_level_up_is_a_new_cell_archived_after_its_battle() -> None:
    """With ``level_step`` 1, Route 1 at level 1 and Route 1 at level 2 are two cells: the level-up's
    state is offered once the battle and its text are over; without it, no second entry."""
    for level_step, cells in ((1, [(("route1",), 1, -1), (("route1",), 2, -1)]), (0, [(("route1",), 0, -1)])):
        env = make_tq(archive=True, level_step=level_step, writes={"ballast": 0, "xp": 9})  # one win levels up
        try:
            env.reset(seed=3)
            infos = [info for _, info in walk_town_to_route1(env)]
            walk_route1_to_grass(env)
            toggle = 0
            for _ in range(1500):  # up and down in the grass until a wild battle, then HIT until it is over
                button = battle_button(env) or ("up" if (toggle := toggle ^ 1) else "down")
                infos.append(press(env, button)[1])
                if infos[-1]["level"] == 2 and not (infos[-1]["in_battle"] or infos[-1]["text"]):
                    break
            for _ in range(2):
                infos.append(press(env, "left")[1])
            assert infos[-1]["level"] == 2
            assert [e.cell for e in offers(infos)] == cells
            leveled = [i for i in infos if "archive_entry" in i][1:]
            assert all(not i["in_battle"] and not i["text"] and i["level"] == 2 for i in leveled)
        finally:
            env.close()


def test_with_by_map_a_new_map_is_a_new_cell_holding_the_same_milestones() -> None:
    """Back from Route 1 to the town: the same milestones on another map. With ``by_map`` that state is
    offered as a cell of its own (a stepping stone), and a snapshot carries the map it was in; without,
    nothing is offered after the ``route1`` entry."""
    for by_map, cells in ((True, [(("route1",), 0, 1), (("route1",), 0, 0)]), (False, [(("route1",), 0, -1)])):
        env = make_tq(archive=True, by_map=by_map)
        try:
            env.reset(seed=1)
            infos = [info for _, info in walk_town_to_route1(env)]
            infos.append(press(env, "left")[1])  # off Route 1's west edge: the town again
            assert position(env)[0] == 0
            infos += [press(env, "left")[1] for _ in range(2)]  # on the town's map: no new cell
            assert [e.cell for e in offers(infos)] == cells
            copy = make_tq(archive=True, by_map=by_map)
            try:
                copy.set_state(env.get_state())
                # still the town's cell (a snapshot without the map would see a new one here)
                assert offers([press(copy, "left")[1]]) == []
            finally:
                copy.close()
        finally:
            env.close()


def test_frontier_weights_by_milestones_reward_and_depth() -> None:
    """Three archived sets: ``badge1`` alone (one milestone, reward 5) and two pairs (two milestones, reward
    1 or 2 each). Counted by milestones each pair starts more episodes than the badge; weighed by reward, the
    badge starts most; by depth, one milestone and two weigh alike: the badge weighs what both pairs do."""
    state = route1_entry()
    badge = Entry(("badge1",), state.state, 50, {"badge1": 50})
    pair = Entry(("forest", "route1"), state.state, 40, {"route1": 12, "forest": 40})
    other = Entry(("gym1", "route1"), state.state, 30, {"route1": 12, "gym1": 30})
    for frontier_weight in ("milestones", "reward", "depth"):
        env = make_tq(archive=True, reset=ResetConfig(mode="frontier", fresh_share=0.0,
                                                       frontier_weight=frontier_weight))
        try:
            env.set_archive([badge, pair, other])
            starts = []
            for seed in range(60):
                env.reset(seed=seed)
                starts.append(env.episode_summary()["start_milestones"])
            badges = starts.count(["badge1"])
            pairs = starts.count(["forest", "route1"]) + starts.count(["gym1", "route1"])
            assert badges + pairs == 60
            if frontier_weight == "milestones":
                assert pairs > 2 * badges, (badges, pairs)  # 2:1 each
            elif frontier_weight == "reward":
                assert badges >= 1.5 * pairs, (badges, pairs)
            else:
                assert badges >= 20, (badges, pairs)  # ~25 of 60 with these draws; counted, ~15
        finally:
            env.close()
    with pytest.raises(ValueError, match="frontier_weight"):
        ResetConfig(frontier_weight="score")


def test_cells_of_one_milestone_set_are_kept_apart_and_the_best_is_the_highest_level() -> None:
    archive = Archive()
    assert archive.offer(Entry(("a",), b"x", 5, {}, level=1)) and archive.offer(Entry(("a",), b"y", 9, {}, level=2))
    assert sorted(archive.entries) == [(("a",), 1, -1), (("a",), 2, -1)]
    assert archive.best().state == b"y"  # type: ignore[union-attr]
    assert not archive.offer(Entry(("a",), b"z", 10, {}, level=2))  # more steps in the same cell


TINY = tiny_run("env.max_steps=16", "+reward.milestones.moved={when: 'x != 9 or y != 9', reward: 0.0}")


@pytest.mark.parametrize("by_map", [False, True])
def test_archive_survives_checkpoint_and_resume_and_frontier_resets_use_it(tmp_path: Path, by_map: bool) -> None:
    run_dir = tmp_path / "run"
    trainer = Trainer(compose_train_config([*TINY, "reset.mode=frontier", "reset.fresh_share=0.0",
                                            f"archive.by_map={by_map}", "total_steps=10_000", f"run_dir={run_dir}"]))
    episodes: list[dict] = []
    add = trainer.logger.add_episode  # type: ignore[union-attr]
    trainer.logger.add_episode = lambda e: (episodes.append(e), add(e))  # type: ignore[union-attr, method-assign]
    trainer.run(stop_at_update=3)
    saved = load_checkpoint(run_dir)["archive"]
    assert saved["entries"] and ("moved",) in {tuple(e["milestones"]) for e in saved["entries"]}
    assert {e["map"] for e in saved["entries"]} == ({0} if by_map else {-1})  # 16-step episodes stay in town
    assert any(e["start"] == "archive" for e in episodes)  # later episodes started from the archive
    resumed = Trainer(compose_train_config([f"resume={run_dir}"]))
    assert resumed.archive.state_dict() == saved
    resumed.close()


def test_corrupt_entry_is_skipped_with_a_warning() -> None:
    good = route1_entry()
    bad = Entry(("moved",), b"not a state", 3, {"moved": 3})
    archive = Archive()
    with pytest.warns(UserWarning, match="archive entry moved has a corrupt state: skipped"):
        archive.load_state_dict({"entries": [good.as_dict(), bad.as_dict()]})
    assert list(archive.entries) == [(("route1",), 0, -1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Archive().load_state_dict({"entries": [good.as_dict()]})


def test_eviction_keeps_the_best_and_each_stage() -> None:
    archive = Archive(max_states=3)
    for key, steps in [(("a",), 5), (("b",), 6), (("a", "b"), 9), (("c",), 7)]:
        archive.offer(Entry(key, b"x", steps, {}))
    assert len(archive.entries) == 3 and (("a", "b"), 0, -1) in archive.entries  # the best stays
    assert not archive.offer(Entry(("a", "b"), b"y", 12, {}))  # more steps: not better
    assert archive.offer(Entry(("a", "b"), b"z", 4, {})) and archive.entries[(("a", "b"), 0, -1)].state == b"z"


def test_eval_from_milestone(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    Trainer(compose_train_config([*TINY, "total_steps=64", f"run_dir={run_dir}"])).run()
    out = subprocess.run([sys.executable, "-m", "pokerl.cli.eval", str(run_dir), "--episodes", "2", "--json",
                          "--from-milestone", "moved"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["milestone_rates"]["moved"] == 1.0  # held from the start
    out = subprocess.run([sys.executable, "-m", "pokerl.cli.eval", str(run_dir), "--from-milestone", "badge2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "no archived state holds milestone 'badge2'" in out.stderr
    assert out.stderr.count("\n") == 1


def test_gym_env_defaults_start_at_power_on() -> None:
    env: GameBoyEnv = make_tq()
    try:
        env.reset(seed=0)
        assert env.episode_summary()["start"] == "power-on"
    finally:
        env.close()


RANKS_SCRIPT = """
import sys, torch.distributed as dist
from pokerl.archive import Entry
from pokerl.config import compose_train_config
from pokerl.trainer import Trainer

trainer = Trainer(compose_train_config(sys.argv[1:]))
rank = dist.get_rank()
trainer.run_archive.offer(Entry((f"rank{rank}",), b"state", 5 + rank, {f"rank{rank}": 5 + rank}))
trainer.run_archive.share()  # what every update boundary does
print(sorted(trainer.archive.entries), flush=True)
assert set(trainer.archive.entries) == {(("rank0",), 0, -1), (("rank1",), 0, -1)}
trainer.close()
"""


def test_two_ranks_share_one_archive(tmp_path: Path) -> None:
    """torch.distributed (Gloo on CPU): an entry found on either rank reaches the other's archive."""
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_SCRIPT)
    out = torchrun(str(script), *TINY, "total_steps=64", f"run_dir={tmp_path / 'run'}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("[(('rank0',), 0, -1), (('rank1',), 0, -1)]") == 2


def test_swarm_jumps_a_share_of_envs_to_the_best_entry(tmp_path: Path) -> None:
    trainer = Trainer(compose_train_config([*TINY, "reset.mode=swarm", "reset.swarm_every=1", "reset.swarm_share=0.5",
                                            "env.max_steps=1000", "total_steps=10_000", f"run_dir={tmp_path}"]))
    episodes: list[dict] = []
    add = trainer.logger.add_episode  # type: ignore[union-attr]
    trainer.logger.add_episode = lambda e: (episodes.append(e), add(e))  # type: ignore[union-attr, method-assign]
    starts: list[list[float]] = []
    trainer.run(stop_at_update=3, after_update=lambda t: starts.append(t.buffer.episode_starts[0].tolist()))
    jumps = [e for e in episodes if e.get("ended_by") == "jump"]
    assert trainer.archive.best() is not None and jumps  # no episode ends by itself (1,000 steps)
    assert len(jumps) == len(episodes)
    # a jump is a truncation: the jumped env's next rollout starts a new episode (LSTM state zeroed)
    assert any(s == [1.0, 0.0] or s == [0.0, 1.0] for s in starts[1:])
