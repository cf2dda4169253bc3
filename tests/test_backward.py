"""The backward curriculum on the real ROM: starts along a chain, t moved back only by success, down to
power-on, and kept across checkpoint and resume.

The chain here is the scripted walkthrough's (scripts/walkthrough_tinyquest.py) to its deepest
archived state (the game's end), made at test time: a test fixture, not a chain an agent found.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from conftest import ACTION, load_walkthrough, make_tq, one_line, tiny_run
from pokerl.archive import Archive, Entry, ResetConfig
from pokerl.chain import Chain, load_chain, make_chain, save_chain
from pokerl.checkpoint import load_checkpoint
from pokerl.config import compose_train_config
from pokerl.curriculum import Curriculum
from pokerl.distributed import Dist
from pokerl.errors import ConfigError
from pokerl.logger import read_scalar_tags
from pokerl.spec import run_spec
from pokerl.trainer import Trainer

ROM = Path(__file__).resolve().parent.parent / "src" / "pokerl" / "games" / "tinyquest.gb"


@pytest.fixture(scope="module")
def walkthrough_entries() -> list[Entry]:
    """The walkthrough played in an archiving env: the entries it archived, in order."""
    wt = load_walkthrough()
    env = make_tq(archive=True, max_steps=5000)
    try:
        env.reset(seed=1)
        game = wt.Game(env.session.pyboy, wt.read_symbols(ROM.with_suffix(".sym")))
        world = wt.World(game)
        entries, terminated = [], False
        while not terminated:
            _, _, terminated, _, info = env.step(ACTION[wt.next_button(game, world)])
            if "archive_entry" in info:
                entries.append(info["archive_entry"])
    finally:
        env.close()
    return entries


@pytest.fixture(scope="module")
def chain_file(walkthrough_entries: list[Entry], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chain to the deepest state the walkthrough archived."""
    deepest = max(walkthrough_entries, key=lambda e: len(e.milestones))
    assert deepest.terminal and "complete" in deepest.milestones  # where the game ended: the chain's end
    env = make_tq(max_steps=5000)
    try:
        chain = make_chain(env, deepest, every=32)
    finally:
        env.close()
    path = tmp_path_factory.mktemp("chain") / "walkthrough.pt"
    save_chain(path, chain)
    return path


def starts(chain: Chain, t: int, n: int, max_steps: int = 4096, **cfg: float) -> list[dict]:
    """``n`` resets of a backward env at frontier index ``t``: each episode's summary at its start."""
    reset = ResetConfig(mode="backward", chain="unused: set_chain below", **cfg)  # type: ignore[arg-type]
    env = make_tq(reset=reset, max_steps=max_steps)
    try:
        env.set_chain(chain)
        env.set_backward(t)
        out = []
        for seed in range(n):
            env.reset(seed=seed)
            out.append(env.episode_summary())
        return out
    finally:
        env.close()


def test_starts_come_from_the_window_past_t_or_power_on(chain_file: Path) -> None:
    chain = load_chain(chain_file)
    steps = [p.step for p in chain.points]
    t = steps[len(steps) // 2]
    got = starts(chain, t, 200, window=64, fresh_share=0.25, later_share=0.25)
    window = [s for s in got if s["chain_window"]]
    later = [s for s in got if s["start"] == "chain" and not s["chain_window"]]
    fresh = [s for s in got if s["start"] == "power-on"]
    assert len(window) + len(later) + len(fresh) == 200
    assert all(t <= s["start_steps"] <= t + 64 and s["start_steps"] in steps for s in window)
    assert all(s["start_steps"] > t for s in later) and len({s["start_steps"] for s in later}) > 3
    assert all(s["start_steps"] < chain.steps for s in window + later)  # not the end: a success for nothing
    near_end = starts(chain, steps[-3], 40, window=chain.steps, fresh_share=0.0, later_share=0.0)
    assert {s["start_steps"] for s in near_end} == set(steps[-3:-1])  # a window over the end draws it not
    assert 70 <= len(window) <= 130 and 25 <= len(later) <= 75 and 25 <= len(fresh) <= 75  # 1/2, 1/4, 1/4
    # a start holds what the chain held there, as if it had played the way from power-on
    point = next(p for p in chain.points if p.step == window[0]["start_steps"])
    assert window[0]["milestones"] == list(point.milestones)
    assert all(s["milestone_steps"][m] == chain.milestone_steps[m] for s in window for m in s["milestones"])
    # the end holds every milestone of the end: a start there succeeds at once; at t = 0 every start is power-on
    assert all(s["chain_success"] for s in starts(chain, chain.steps, 5, fresh_share=0.0, later_share=0.0))
    at_zero = starts(chain, 0, 10)
    assert all(s["start"] == "power-on" and s["chain_window"] and not s["chain_success"] for s in at_zero)


def test_an_episode_has_twice_the_chains_remaining_steps_between_min_steps_and_max_steps(chain_file: Path) -> None:
    """The limit near the end is the time factor's; from early on (and from power-on at t = 0) it is
    env.max_steps, the length of an episode the policy is judged by from power-on."""
    chain = load_chain(chain_file)
    assert 2 * chain.steps > 600
    assert all(s["chain_limit"] == 600 for s in starts(chain, 0, 3, max_steps=600))  # power-on at t = 0
    got = starts(chain, 1, 60, max_steps=600, window=chain.steps, fresh_share=0.0, later_share=0.0)
    for s in got:
        assert s["chain_limit"] == max(1, min(600, 2 * (chain.steps - s["start_steps"]))), s["start_steps"]
    assert {s["chain_limit"] == 600 for s in got} == {True, False}  # both sides of the cap drawn
    # reset.min_steps: a floor under the time factor's limit near the end, the cap still on top
    floored = starts(chain, 1, 60, max_steps=600, window=chain.steps, fresh_share=0.0, later_share=0.0, min_steps=200)
    for s in floored:
        assert s["chain_limit"] == max(200, min(600, 2 * (chain.steps - s["start_steps"]))), s["start_steps"]
    assert any(2 * (chain.steps - s["start_steps"]) < 200 for s in floored)  # the floor was what held there


def test_following_the_chain_pays_each_step_once_in_order_and_survives_a_snapshot(chain_file: Path) -> None:
    """reset.follow: the chain's own way from power-on (at t = 0) stands on the chain's tile at every step
    holding its milestones (radius 0), so following pays for each step once and never runs ahead of the milestones
    held; an env restored from a snapshot mid-way goes on from the same step with the same pay."""
    chain = load_chain(chain_file)
    assert len(chain.trajectory) == 1  # one episode from power-on: replayed as a reset at t = 0 plays it
    reset = ResetConfig(mode="backward", chain="unused: set_chain below", follow=0.01, follow_radius=0)
    env, other = make_tq(reset=reset, max_steps=5000), make_tq(reset=reset, max_steps=5000)
    try:
        for e in (env, other):
            e.set_chain(chain)
            e.set_backward(0)
        env.reset(seed=0)
        paid, snapshot = 0.0, None
        for step, (_, _, info) in enumerate(env.replay(chain.trajectory), start=1):
            paid += info["reward_terms"]["follow"]
            summary = env.episode_summary()
            ahead = {m for m, at in chain.milestone_steps.items() if at <= summary["chain_progress"]}
            assert ahead <= set(summary["milestones"]), step  # not ahead of what is held ...
            assert summary["chain_progress"] >= step, step  # ... nor behind: on the chain's own tile at every step
            if step == chain.steps // 2:
                snapshot, half = env.get_state(), (summary["chain_progress"], summary["reward_terms"]["follow"])
        assert summary["chain_progress"] == chain.steps and paid == pytest.approx(0.01 * chain.steps)
        assert summary["reward_terms"]["follow"] == pytest.approx(paid)
        assert 0 < half[1] < paid
        other.set_state(snapshot)
        restored = other.episode_summary()
        assert (restored["chain_progress"], restored["reward_terms"]["follow"]) == half
    finally:
        env.close()
        other.close()


RUN = tiny_run("ppo.num_steps=32", "seed=3", "reset.mode=backward", "reset.window=32", "reset.step_back=32",
               "reset.history=4", "reset.later_share=0", "reset.fresh_share=0", "reset.time_factor=0.05")


def frontier_curve(run_dir: Path) -> list[float]:
    return [v for _, v in read_scalar_tags(run_dir / "tb")["backward/frontier"]]


def test_an_exact_start_is_the_chain_as_it_stood_and_another_has_a_new_seed(chain_file: Path) -> None:
    """Playing the chain's actions from a start drawn at one of its points comes to the next point's exact
    emulator state with ``reset.exact_starts``; without, the start's new seed leaves it (the RNG ticks every
    frame)."""
    chain = load_chain(chain_file)
    actions = [a for _, segment in chain.trajectory for a in segment]
    point, following = chain.points[3], chain.points[4]
    for exact in (True, False):
        reset = ResetConfig(mode="backward", chain="unused: set_chain below", window=1, fresh_share=0.0,
                            later_share=0.0, exact_starts=exact)
        env = make_tq(reset=reset, max_steps=4096)
        try:
            env.set_chain(chain)
            env.set_backward(point.step)
            env.reset(seed=5)
            for action in actions[point.step:following.step]:
                env.step(action)
            same = zlib.decompress(env.session.save_state()) == zlib.decompress(following.state)
        finally:
            env.close()
        assert same == exact


def test_a_chain_replayed_with_other_boot_writes_is_a_one_line_config_error(chain_file: Path, tmp_path: Path) -> None:
    """The chain was replayed without ballast (the tests' envs); a run that writes tinyquest's ballast plays
    other frames' timing, so neither its starts nor its demonstration would be the chain's way."""
    with pytest.raises(ConfigError) as err:
        Trainer(compose_train_config(tiny_run("reset.mode=backward", f"reset.chain={chain_file}",
                                              "game.boot.writes.ballast=125", f"run_dir={tmp_path}")))
    assert "set game.boot.writes.ballast=0" in one_line(err)


def test_t_moves_back_only_on_success(chain_file: Path, tmp_path: Path) -> None:
    """Every window episode must succeed (threshold 1): from the end it does at once, so t moves back;
    a few points earlier an untrained policy does not, and t stays there. The first update's episodes all
    start at the end (every one a success): they move t once, not once per `history` of them, as the rest
    were drawn for the t that is gone."""
    trainer = Trainer(compose_train_config([*RUN, f"reset.chain={chain_file}", "reset.threshold=1.0",
                                            "total_steps=2048", f"run_dir={tmp_path}"]))
    trainer.run()
    assert trainer.curriculum.frontier is not None
    curve = frontier_curve(tmp_path)
    steps = load_chain(chain_file).steps
    assert round(curve[0] * steps) == steps - 32  # one step back (32) after the first update
    assert curve[0] <= 1.0 and all(b <= a for a, b in zip(curve, curve[1:], strict=False))
    assert 0.0 < curve[-1] < 1.0  # moved back from the end, stopped before power-on
    held = trainer.curriculum.frontier.outcomes
    assert len(held) == 4 and not all(held)  # what holds it there: a full count with failures in it


def test_t_reaches_power_on_and_survives_checkpoint_and_resume(chain_file: Path, tmp_path: Path) -> None:
    """With threshold 0 every `history` window episodes move t back: it reaches power-on, where every
    episode starts; a checkpoint keeps t and its count, and a resumed run goes on from them."""
    base = [*RUN, f"reset.chain={chain_file}", "reset.threshold=0.0", f"run_dir={tmp_path}"]
    trainer = Trainer(compose_train_config([*base, "total_steps=8192"]))
    trainer.run(stop_at_update=3)
    assert trainer.curriculum.frontier is not None
    saved = load_checkpoint(tmp_path)["backward"]
    assert saved == trainer.curriculum.state_dict() and 0 < saved["t"] < load_chain(chain_file).steps
    resumed = Trainer(compose_train_config([f"resume={tmp_path}"]))
    assert resumed.curriculum.state_dict() == saved
    episodes: list[dict] = []
    assert resumed.logger is not None
    add = resumed.logger.add_episode
    resumed.logger.add_episode = lambda e: (episodes.append(e), add(e))  # type: ignore[method-assign]
    resumed.run()
    assert resumed.curriculum.frontier.t == 0 and frontier_curve(tmp_path)[-1] == 0.0
    last = episodes[-4:]
    assert all(e["start"] == "power-on" and e["chain_window"] for e in last)


def test_goexplore_explores_until_the_archive_holds_the_target_then_walks_its_own_chain_back(tmp_path: Path) -> None:
    """Frontier resets until the archive holds ``reset.target`` (here: leaving the start tile), then a
    chain replayed from the run's own archive (``run_dir/chain.pt``) and backward resets along it; a
    resumed run goes on in the second phase."""
    moved = "+reward.milestones.moved={when: 'x != 9 or y != 9', reward: 0.0}"
    run = [o for o in RUN if not o.startswith("reset.")]
    trainer = Trainer(compose_train_config([*run, moved, "reset.mode=goexplore", "reset.target=moved",
                                            "reset.threshold=0.0", "total_steps=256", f"run_dir={tmp_path}"]))
    trainer.run(stop_at_update=2)
    assert trainer.curriculum.frontier is not None and trainer.curriculum.found_at == 64  # the first update
    chain = load_chain(tmp_path / "chain.pt")
    assert "moved" in chain.end.milestones and chain.trajectory
    assert [s for s, _ in read_scalar_tags(tmp_path / "tb")["backward/frontier"]] == [64, 128]
    assert load_checkpoint(tmp_path)["backward"]["found_at"] == 64
    resumed = Trainer(compose_train_config([f"resume={tmp_path}"]))
    assert resumed.curriculum.state_dict() == trainer.curriculum.state_dict()
    resumed.run()
    assert resumed.curriculum.found_at == 64


class Calls:
    """The pool as the curriculum sees it: the calls it makes (the chain and t handed to the envs)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def call(self, name: str, *args: object, replay: bool = False) -> None:
        self.names.append(name)


def test_goexplore_switches_once_the_shortest_way_to_the_target_has_stood_settle_steps(
        walkthrough_entries: list[Entry], tmp_path: Path) -> None:
    """With reset.settle the run explores on after the archive first holds the target: a shorter way starts
    the wait again, the chain is the shortest way's, and a checkpoint taken while waiting resumes the wait."""
    cfg = compose_train_config([*tiny_run(), "reset.mode=goexplore", "reset.target=route1", "reset.settle=100",
                                f"run_dir={tmp_path}"])
    holding = [e for e in walkthrough_entries if "route1" in e.milestones and not e.terminal]
    short, long = holding[0], holding[-1]
    assert short.steps < long.steps
    spec, dist, pool, archive = run_spec(cfg), Dist(), Calls(), Archive()
    curriculum = Curriculum(cfg.reset, spec, tmp_path, cfg.rom, None)
    archive.offer(long)
    assert curriculum.at_boundary(archive, pool, 0, dist) == {"goexplore/target_steps": long.steps}
    archive.offer(short)  # found at step 60: the wait starts again
    assert curriculum.at_boundary(archive, pool, 60, dist) == {"goexplore/target_steps": short.steps}
    curriculum.at_boundary(archive, pool, 120, dist)  # 120 steps since the first way, 60 since the shortest
    assert curriculum.frontier is None and not pool.names
    saved = curriculum.state_dict()
    assert saved == {"shortest": [short.steps, 60]}
    resumed = Curriculum(cfg.reset, spec, tmp_path, cfg.rom, saved)
    resumed.at_boundary(archive, pool, 159, dist)
    assert resumed.frontier is None
    scalars = resumed.at_boundary(archive, pool, 160, dist)
    assert resumed.found_at == 160 and resumed.chain is not None and pool.names == ["set_chain", "set_backward"]
    assert resumed.chain.steps == short.steps and load_chain(tmp_path / "chain.pt").steps == short.steps
    assert scalars["backward/frontier"] == 1.0 and "goexplore/target_steps" not in scalars
