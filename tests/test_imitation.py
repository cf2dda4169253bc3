"""Self-imitation on the chain (reset.imitate) on the real ROM: the demonstration is the chain's own way,
exactly, from each window point as an episode started there; its loss teaches the chain's actions only where
the chain did better than the policy expects; the run replays it again when t moves and trains with it.

The chain is the committed tinyquest chain (src/pokerl/games/tinyquest.chain.pt): its last 128 steps cross
segment boundaries, where a seed was written (where its run began a new episode, or where a loop was cut).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import Categorical

from conftest import ACTION, make_tq, tiny_run
from pokerl.archive import ResetConfig
from pokerl.backward import start_entry
from pokerl.chain import Chain, Point, load_chain
from pokerl.checkpoint import load_checkpoint
from pokerl.config import PPOConfig, compose_train_config, load_model_config
from pokerl.env import GameBoyEnv
from pokerl.imitation import SelfImitation, demonstrate, demonstrate_way, discounted_returns
from pokerl.logger import read_scalar_tags
from pokerl.policy import Policy
from pokerl.ppo import RolloutBuffer, ppo_update
from pokerl.trainer import Trainer

COMMITTED = Path(__file__).resolve().parent.parent / "src" / "pokerl" / "games" / "tinyquest.chain.pt"
GAMMA = 0.998


def sil_run(run_dir: Path, *extra: str) -> Trainer:
    """A tiny backward run along the committed chain with self-imitation (``extra``: its other settings)."""
    return Trainer(compose_train_config(tiny_run(
        "reset.mode=backward", f"reset.chain={COMMITTED}", "reset.imitate=0.1", "archive.max_states=0",
        "total_steps=64", f"run_dir={run_dir}", *extra)))


@pytest.fixture(scope="module")
def chain() -> Chain:
    return load_chain(COMMITTED)


@pytest.fixture
def chain_env(chain: Chain) -> Iterator[GameBoyEnv]:
    env = make_tq()
    env.set_chain(chain)
    yield env
    env.close()


def test_a_demonstration_is_the_chains_own_way_across_its_segments(chain: Chain, chain_env: GameBoyEnv) -> None:
    """From a saved point before the last segment boundaries, the demonstration's emulator is each later
    saved point's state at its step (a boundary replayed without the seed the chain's run wrote there, the
    point's own among them, or a frame too many at the point, would leave the way: the game's RNG ticks every
    frame). It is one episode
    from the point, as a backward episode from there is: its length is every step since the point, not since
    the last boundary, and the chain's end pays the game's last milestones."""
    start = chain.points[-5]
    bounds = np.cumsum([len(a) for _, a in chain.trajectory])
    assert start.step in bounds  # the chain's run began a segment at the point itself: its seed comes first
    assert any(start.step < b < chain.steps for b in bounds)
    for point in (p for p in chain.points if p.step > start.step):
        obs, actions, rewards = chain_env.demonstrate(start, point.step - start.step)
        assert len(obs) == len(actions) == len(rewards) == point.step - start.step
        assert zlib.decompress(chain_env.session.save_state()) == zlib.decompress(point.state), point.step
    summary = chain_env.episode_summary()
    assert summary["length"] == chain.steps - start.step and summary["start_steps"] == start.step
    assert set(summary["milestones"]) >= {"badge2", "final_room", "complete"}


def test_each_window_point_is_demonstrated_as_an_episode_started_there(chain: Chain, chain_env: GameBoyEnv) -> None:
    """One episode from each point: its first observation is what an exact start at the point sees (a fresh
    visited map and frame stack), not the way from the earlier point carried on, and the LSTM starts from
    zeros there (an episode start)."""
    points = chain.points[-4:-1]
    demo = demonstrate(chain_env, chain, points, 64, GAMMA)
    assert demo is not None and demo.steps == [p.step for p in points]
    lengths = [min(64, chain.steps - p.step) for p in points]
    firsts = np.flatnonzero(demo.starts).tolist()
    assert firsts == [0, *np.cumsum(lengths)[:-1]] and len(demo.actions) == sum(lengths)
    for point, at in zip(points, firsts, strict=True):
        started, _ = chain_env._begin(start_entry(chain, point), point.state, point.milestones, 0, boot=False)
        for key, value in started.items():
            assert np.array_equal(demo.obs[key][at], value), (point.step, key)
    carried, _, _ = chain_env.demonstrate(points[0], points[1].step - points[0].step + 1)
    assert not np.array_equal(carried[-1]["visited"], demo.obs["visited"][firsts[1]])  # it would differ


def loglik(policy: Policy, sil: SelfImitation) -> float:
    """The policy's mean log-probability of the demonstration's actions."""
    sil.prepare(policy, lambda: torch.autocast("cpu", enabled=False))
    with torch.no_grad():
        logits, _, _ = policy(sil.obs, (sil.h0, sil.c0), sil.starts)
    log_prob = Categorical(logits=logits).log_prob(sil.actions)
    return float((log_prob * sil.valid).sum() / sil.valid.sum())


def test_self_imitation_teaches_the_chains_actions_only_where_the_chain_did_better(
        chain: Chain, chain_env: GameBoyEnv) -> None:
    """A PPO update whose own loss is nothing (zero advantages, no value or entropy term) moves the policy only
    through the self-imitation term: toward the chain's actions where its return beats the policy's value
    (the chain's last 116 steps reach the final room and the end), and not at all where the policy
    already expects more than the chain got."""
    demo = demonstrate(chain_env, chain, [chain.points[-5]], 128, GAMMA)  # to the end
    assert demo is not None and demo.returns[0] > 5.0  # the end's milestones: complete alone pays 5
    space, n_actions = chain_env.observation_space, int(chain_env.action_space.n)
    model = load_model_config("small")
    model.hidden, model.vector_hidden = 32, 16

    def update(returns_offset: float) -> tuple[float, float, bool]:
        torch.manual_seed(0)
        policy = Policy(space, n_actions, model)
        sil = SelfImitation(demo, 1.0, 8, "cpu")
        sil.returns -= returns_offset
        cfg = PPOConfig(num_steps=16, bptt=8, num_minibatches=2, update_epochs=8, vf_coef=0.0, ent_coef=0.0)
        buffer = RolloutBuffer(16, 2, space, 8, model.hidden, "cpu")
        for k, v in demo.obs.items():  # the chain's own frames; actions as a fresh policy would pick them
            buffer.obs[k][:] = torch.from_numpy(v[:32]).reshape(2, 16, *v.shape[1:]).transpose(0, 1)
        buffer.actions[:] = torch.randint(n_actions, (16, 2))
        before = [p.detach().clone() for p in policy.parameters()]
        first = loglik(policy, sil)
        ppo_update(policy, torch.optim.Adam(policy.parameters(), lr=3e-3), buffer, cfg, imitation=sil)
        moved = any(not torch.equal(a, p) for a, p in zip(before, policy.parameters(), strict=True))
        return first, loglik(policy, sil), moved

    first, after, moved = update(0.0)
    assert moved and after > first + 0.1, (first, after)  # measured: -1.79 to -1.68
    _, _, moved = update(1e4)  # every return far below any value: nothing to imitate, no gradient at all
    assert not moved


def test_the_run_replays_the_chains_way_again_when_t_moves_and_trains_with_it(chain: Chain, tmp_path: Path) -> None:
    """The demonstration starts at every saved point of the window (imitate_steps from each), is replayed again
    once t has moved, and each update's loss holds the self-imitation term (logged as loss/imitation)."""
    trainer = sil_run(tmp_path, "reset.imitate_steps=64", "reset.threshold=1.0")
    cfg = trainer.cfg
    frontier = trainer.curriculum.frontier
    assert frontier is not None

    def window(t: int) -> list[int]:
        return [p.step for p in chain.points[:-1] if t <= p.step <= t + cfg.reset.window]

    frontier.t = chain.steps - 100
    first = trainer.curriculum.imitation(GAMMA, 8, trainer.device)
    assert first is not None and first.demo.steps == window(frontier.t) and len(first.demo.steps) > 1
    assert len(first.demo.actions) == sum(min(64, chain.steps - s) for s in first.demo.steps)  # the last ones end
    assert trainer.curriculum.imitation(GAMMA, 8, trainer.device) is first  # t has not moved: not replayed
    frontier.t = chain.steps - 1000
    moved = trainer.curriculum.imitation(GAMMA, 8, trainer.device)
    assert moved is not None and moved.demo.steps == window(frontier.t)
    trainer.run()
    imitation = read_scalar_tags(tmp_path / "tb")["loss/imitation"]
    assert len(imitation) == 2 and imitation[0][1] > 0  # (later: zero where the policy's values pass the chain's)


def test_points_past_the_window_are_imitated_too_drawn_afresh_at_each_update(
        chain: Chain, chain_env: GameBoyEnv, tmp_path: Path) -> None:
    """reset.imitate_later: beside the window's points, that many points past the window, a new draw at each
    update (over a few updates, more of them than one draw holds) and never the chain's end; each point's way
    is replayed once, on its first draw, and is the same as a replay of it alone on a fresh env."""
    trainer = sil_run(tmp_path, "reset.imitate_steps=24", "reset.imitate_later=2")
    cfg = trainer.cfg
    curriculum, frontier = trainer.curriculum, trainer.curriculum.frontier
    assert frontier is not None
    frontier.t = chain.steps - 600
    window = [p.step for p in chain.points[:-1] if frontier.t <= p.step <= frontier.t + cfg.reset.window]
    later = {p.step for p in chain.points[:-1] if p.step > frontier.t + cfg.reset.window}
    assert len(later) > 4 and window
    replayed: list[int] = []
    sil = curriculum.imitation(GAMMA, 8, trainer.device)  # makes the env the way is replayed on
    demo_env = curriculum._demo_env
    assert demo_env is not None and sil is not None
    first_replay = demo_env.demonstrate

    def counted(point: Point, steps: int) -> tuple[list[dict[str, np.ndarray]], list[int], list[float]]:
        replayed.append(point.step)
        return first_replay(point, steps)

    demo_env.demonstrate = counted  # type: ignore[method-assign]
    drawn: set[int] = set()
    for _ in range(6):
        sil = curriculum.imitation(GAMMA, 8, trainer.device)
        assert sil is not None
        steps = sil.demo.steps
        assert steps[:len(window)] == window and len(steps) == len(window) + 2
        assert set(steps[len(window):]) <= later and len(set(steps)) == len(steps)
        drawn |= set(steps[len(window):])
    assert len(drawn) > 2
    assert len(replayed) == len(set(replayed)) and not set(replayed) & set(window)  # each once, on its first draw
    points = [p for p in chain.points if p.step in sil.demo.steps]
    alone = demonstrate(chain_env, chain, points, 24, GAMMA)
    assert alone is not None
    for key in alone.obs:
        assert np.array_equal(alone.obs[key], sil.demo.obs[key]), key
    for field in ("actions", "returns", "starts"):
        assert np.array_equal(getattr(alone, field), getattr(sil.demo, field)), field
    trainer.close()


def play_to_the_end(chain: Chain, exact: bool, actions: list[int], seed: int, t: int | None = None
                    ) -> tuple[dict, list[dict[str, np.ndarray]], list[float], bytes]:
    """One backward episode from the chain's last saved point (Route 2, on the row up to the final room's
    door; ``t``: from that frontier index instead): its summary, the observations before each action, the
    rewards, and the emulator's state at its end."""
    reset = ResetConfig(mode="backward", chain="unused: set_chain below", window=1, fresh_share=0.0,
                        later_share=0.0, exact_starts=exact, imitate_own=2)
    env = make_tq(reset=reset, max_steps=4096)
    try:
        env.set_chain(chain)
        env.set_backward(chain.points[-2].step if t is None else t)
        obs, _ = env.reset(seed=seed)
        seen, rewards, info = [], [], {}
        for action in actions:
            seen.append(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            rewards.append(reward)
            if terminated or truncated:
                break
        return info["episode"], seen, rewards, zlib.decompress(env.session.save_state())
    finally:
        env.close()


def test_the_runs_own_successes_are_imitated_as_they_played_the_last_few_kept_in_checkpoints(
        chain: Chain, chain_env: GameBoyEnv, tmp_path: Path) -> None:
    """reset.imitate_own: an episode that held the chain's end carries its way (start, seed, actions) in its
    summary, a failed one does not; played again, the way is the episode itself (the same observations and
    emulator state at its end, its returns), from an exact start or one with a new seed. The run imitates the
    last imitate_own of its successes in place of the chain's way, replays each once, keeps them in checkpoints,
    and its updates hold the self-imitation term."""
    walk = [ACTION["right"]] * 10 + [ACTION["up"]]  # along Route 2's row 4 and in: no grass
    ways, seen_by = [], []
    for exact, seed in ((True, 3), (False, 4), (False, 5)):
        summary, seen, rewards, end_state = play_to_the_end(chain, exact, walk, seed)
        assert summary["chain_success"] and "complete" in summary["milestones"]
        way = summary["chain_way"]
        assert way["point"] == chain.points[-2].step and way["exact"] == exact and list(way["actions"]) == walk
        demo = demonstrate_way(chain_env, way, GAMMA)
        assert demo is not None and demo.steps == [way["point"]]
        assert zlib.decompress(chain_env.session.save_state()) == end_state  # its RNG too
        for key in demo.obs:
            assert np.array_equal(demo.obs[key], np.stack([o[key] for o in seen])), key
        assert np.allclose(demo.returns, discounted_returns(np.asarray(rewards, np.float32), GAMMA))
        ways.append(summary)
        seen_by.append(seen)
    failed, *_ = play_to_the_end(chain, False, [ACTION["b"]] * 4096, 6)
    assert not failed["chain_success"] and "chain_way" not in failed
    at_the_end, *_ = play_to_the_end(chain, False, walk, 7, t=chain.steps)  # held the end from its start
    assert at_the_end["chain_success"] and at_the_end["start_steps"] == chain.steps and "chain_way" not in at_the_end

    trainer = sil_run(tmp_path / "own", "reset.imitate_own=2", "reset.imitate_steps=0")
    curriculum, frontier = trainer.curriculum, trainer.curriculum.frontier
    assert frontier is not None
    frontier.t = chain.steps - 600  # window episodes too far from the end to succeed in this short run
    assert curriculum.imitation(GAMMA, 8, trainer.device) is None  # no success yet: nothing to imitate
    for summary in (ways[0], failed, ways[1]):
        curriculum.episode(summary)
    replayed: list[dict] = []
    sil = curriculum.imitation(GAMMA, 8, trainer.device)
    demo_env = curriculum._demo_env
    assert demo_env is not None and sil is not None
    assert len(sil.demo.actions) == 2 * len(walk) and sil.demo.starts.sum() == 2
    first_play = demo_env.play_way

    def counted(way: dict) -> tuple[list[dict[str, np.ndarray]], list[int], list[float], bool]:
        replayed.append(way)
        return first_play(way)

    demo_env.play_way = counted  # type: ignore[method-assign]
    assert curriculum.imitation(GAMMA, 8, trainer.device) is sil  # no new success: the same sequences
    curriculum.episode(ways[2])
    sil = curriculum.imitation(GAMMA, 8, trainer.device)
    assert sil is not None and replayed == [ways[2]["chain_way"]]  # only the new one played
    kept = [s["chain_way"] for s in ways[1:]]  # the last two
    assert curriculum.state_dict()["own"] == kept and sil.demo.starts.sum() == 2
    for key in sil.demo.obs:
        played = np.concatenate([np.stack([o[key] for o in seen]) for seen in seen_by[1:]])
        assert np.array_equal(sil.demo.obs[key], played), key
    trainer.run()
    imitation = read_scalar_tags(tmp_path / "own" / "tb")["loss/imitation"]
    assert imitation and imitation[0][1] > 0
    saved = load_checkpoint(tmp_path / "own")["backward"]
    assert saved["own"] == kept
    resumed = Trainer(compose_train_config([f"resume={tmp_path / 'own'}"]))
    assert resumed.curriculum.state_dict() == saved
    assert resumed.curriculum.imitation(GAMMA, 8, resumed.device) is not None
    resumed.close()

    # with imitate_steps > 0: the chain's way from the window's points first, then the run's own successes
    both = sil_run(tmp_path / "both", "reset.imitate_own=2", "reset.imitate_steps=16")
    assert both.curriculum.frontier is not None
    both.curriculum.frontier.t = t = chain.steps - 200
    both.curriculum.episode(ways[2])
    sil = both.curriculum.imitation(GAMMA, 8, both.device)
    window = [p.step for p in chain.points[:-1] if t <= p.step <= t + both.cfg.reset.window]
    assert sil is not None and sil.demo.steps == [*window, ways[2]["chain_way"]["point"]]
    for key in sil.demo.obs:
        assert np.array_equal(sil.demo.obs[key][-len(walk):], np.stack([o[key] for o in seen_by[2]])), key
    both.close()
