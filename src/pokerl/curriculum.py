"""The run's side of the backward curriculum: which chain the envs walk, when a goexplore run switches to
it, and t's moves at update boundaries (the algorithm itself: :mod:`pokerl.backward`).

``reset.mode=backward`` walks ``reset.chain`` from the start. ``reset.mode=goexplore`` explores with
frontier resets until the archive holds ``reset.target`` (the reward's last milestone unless set),
then replays that entry's trajectory from power-on into ``run_dir/chain.pt`` (:mod:`pokerl.chain`)
and walks it backward; the global step it switched at is kept (``found_at``). With ``reset.settle`` > 0 it
switches only once the archive's shortest entry holding the target has stood that many env steps
unbeaten: the archive keeps each cell's entry reached in the fewest steps, so exploring on shortens the
way (tinyquest's first chain to complete wandered for 22,046 steps; the scripted walkthrough takes 765)
and a shorter chain is fewer moves of t. ``goexplore/target_steps`` logs that length until the switch.
Under torchrun the ranks' archives hold every rank's entries but may evict differently (each counts its
own envs' uses), so rank 0's archive picks the entry and every rank replays that one: the same chain at
the same update. The window episodes' outcomes of every rank, in rank order, move t alike on all of them.

With ``reset.imitate`` > 0 it also replays the chain's way from the window's points, and from
``reset.imitate_later`` points past it (:mod:`pokerl.imitation`), on an env of its own, for PPO's
self-imitation term; with ``reset.imitate_own`` > 0 also the last that many of the run's own episodes that
held the chain's end (each kept as its start, seed and actions, in checkpoints too).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pokerl.archive import Archive, Cell, ResetConfig
from pokerl.backward import Frontier, window_outcomes, window_points
from pokerl.chain import Chain, ChainError, Point, load_chain, make_chain, save_chain
from pokerl.distributed import Dist
from pokerl.env import GameBoyEnv, make_env
from pokerl.errors import ConfigError
from pokerl.imitation import Demonstration, SelfImitation, demonstrate_from, demonstrate_way, join
from pokerl.pool import VectorPool
from pokerl.rundir import CHAIN_FILE
from pokerl.spec import GameSpec


class Curriculum:
    """t, the chain and the outcomes not yet counted; nothing (``frontier`` None) until there is a chain."""

    def __init__(self, cfg: ResetConfig, spec: GameSpec, run_dir: Path, rom: str | None,
                 saved: Mapping[str, Any] | None) -> None:
        """``saved``: a checkpoint's ``backward`` entry (None: a new run, or no chain yet)."""
        self.cfg, self.spec, self.run_dir, self.rom = cfg, spec, run_dir, rom
        self.chain = self._saved_chain(saved is not None and "t" in saved)
        self.frontier = Frontier(cfg, self.chain.steps) if self.chain is not None else None
        if self.frontier is not None and saved is not None:
            self.frontier.load_state_dict(saved)
        self.found_at: int | None = None if saved is None else saved.get("found_at")  # goexplore's switch
        # goexplore before the switch: the target's shortest way so far (its steps) and the global step it was found at
        shortest = None if saved is None else saved.get("shortest")
        self._shortest: tuple[int, int] | None = None if shortest is None else (int(shortest[0]), int(shortest[1]))
        self._new: list[tuple[int, bool]] = []  # window episodes since the last update boundary: (t drawn for, success)
        self._failed: set[tuple[Cell, int]] = set()  # goexplore: entries whose replay left the record
        self._demo_env: GameBoyEnv | None = None  # reset.imitate: the env the chain's way is replayed on ...
        self._demos: dict[int, Demonstration] = {}  # ... the chain's way from each point replayed so far, by step
        self._imitation: tuple[Any, SelfImitation | None] | None = None  # ... the last sequences, with their key
        # reset.imitate_own: the run's own episodes that held the chain's end (their summaries' chain_way), numbered
        # in the order they came, the last imitate_own of them; and their ways replayed so far, by number
        own = [] if saved is None else saved.get("own", [])
        self._own: deque[tuple[int, dict[str, Any]]] = deque(enumerate(own), maxlen=max(1, cfg.imitate_own))
        self._own_count = len(own)
        self._own_demos: dict[int, Demonstration | None] = {}

    def _saved_chain(self, resumed_backward: bool) -> Chain | None:
        if self.cfg.mode == "goexplore" and resumed_backward:
            return load_chain(self.run_dir / CHAIN_FILE)
        if self.cfg.mode != "backward":
            return None
        chain = load_chain(str(self.cfg.chain))  # mode=backward: the config checked it is set
        if chain.game != self.spec.profile.name:
            raise ConfigError(f"reset.chain={self.cfg.chain} is a chain of {chain.game}, not {self.spec.profile.name}")
        writes = dict(self.spec.profile.boot.writes)
        other = sorted(name for name in chain.writes if writes.get(name) != chain.writes[name])
        if other:  # the boot writes change the game's timing: its starts and its way would not be the chain's
            wanted = " ".join(f"game.boot.writes.{name}={chain.writes[name]}" for name in other)
            raise ConfigError(f"reset.chain={self.cfg.chain} was replayed with {wanted}, this run writes "
                              f"{', '.join(f'{n}={writes.get(n)}' for n in other)}: set {wanted}")
        return chain

    def attach(self, pool: VectorPool) -> None:
        """Hand the envs the chain and t (also the fresh envs of a worker restarted later)."""
        if self.chain is not None and self.frontier is not None:
            pool.call("set_chain", self.chain, replay=True)
            pool.call("set_backward", self.frontier.t, replay=True)

    def episode(self, summary: Mapping[str, Any]) -> None:
        """A finished episode: a window episode's outcome counts at the next boundary."""
        if self.frontier is not None:
            self._new.extend(window_outcomes([summary]))
            if self.cfg.imitate_own and "chain_way" in summary:
                self._own.append((self._own_count, summary["chain_way"]))
                self._own_count += 1

    def at_boundary(self, archive: Archive, pool: VectorPool, global_step: int, dist: Dist) -> dict[str, float]:
        """Between updates: goexplore looks for its chain; the outcomes so far may move t. Returns the
        ``backward/*`` scalars (none before there is a chain)."""
        if self.cfg.mode == "goexplore" and self.frontier is None:
            self._find(archive, pool, global_step, dist)
        if self.frontier is None:
            return {} if self._shortest is None else {"goexplore/target_steps": float(self._shortest[0])}
        outcomes, self._new = self._new, []
        outcomes = [o for rank in dist.exchange(outcomes) for o in rank]
        if self.frontier.record(outcomes):
            pool.call("set_backward", self.frontier.t, replay=True)
        return self.frontier.scalars()

    def _find(self, archive: Archive, pool: VectorPool, global_step: int, dist: Dist) -> None:
        target = self.cfg.target or self.spec.milestone_names[-1]
        entry = archive.for_milestone(target) if dist.is_main else None
        if entry is not None and (not entry.trajectory or (entry.cell, entry.steps) in self._failed):
            entry = None
        entry = dist.from_main(entry)  # rank 0's find on every rank
        if entry is None:
            return
        if self._shortest is None or entry.steps < self._shortest[0]:
            if dist.is_main and self.cfg.settle:
                print(f"pokerl: goexplore: the archive holds {target} {entry.steps:,} steps from power-on at step "
                      f"{global_step:,}", flush=True)
            self._shortest = (entry.steps, global_step)
        if global_step - self._shortest[1] < self.cfg.settle:
            return
        env = make_env(spec=self.spec, rom=self.rom, boot_cache=str(self.run_dir / "cache"))
        try:
            chain = make_chain(env, entry)
        except ChainError as err:  # not expected (replays are exact): say so once, go on exploring
            self._failed.add((entry.cell, entry.steps))
            print(f"pokerl: warning: goexplore: no chain to {target} from this entry ({err})", file=sys.stderr)
            return
        finally:
            env.close()
        if dist.is_main:
            save_chain(self.run_dir / CHAIN_FILE, chain)
            print(f"pokerl: goexplore: the archive reached {target} ({chain.steps:,} steps from power-on) at step "
                  f"{global_step:,}: backward resets along it from now on", flush=True)
        self.chain, self.frontier, self.found_at = chain, Frontier(self.cfg, chain.steps), global_step
        self.attach(pool)

    def imitation(self, gamma: float, bptt: int, device: torch.device) -> SelfImitation | None:
        """``reset.imitate``: the chain's way from each window point, and from ``reset.imitate_later`` points past
        the window drawn afresh each call (each update), then the run's own last ``reset.imitate_own`` successes,
        as self-imitation sequences; None when off, before goexplore's switch, or with nothing to imitate. Each
        point's way and each success is replayed once and kept (a point's way is the same whatever t is), so a
        move of t replays only the points it brings in, and a new success only itself."""
        if self.cfg.imitate <= 0 or self.chain is None or self.frontier is None:
            return None
        t = self.frontier.t
        key = (t, tuple(n for n, _ in self._own))
        if self._imitation is not None and self._imitation[0] == key and not self.cfg.imitate_later:
            return self._imitation[1]
        points: list[Point] = []
        if self.cfg.imitate_steps:  # 0: the run's own successes only
            window = window_points(self.chain, t, self.cfg)
            later = [p for p in self.chain.points[:-1] if p.step > t + self.cfg.window]
            drawn = torch.randperm(len(later))[:self.cfg.imitate_later].sort().values.tolist()
            points = [*window, *(later[i] for i in drawn)]
            # keep only the ways a later call can draw (t only moves back): the window's, and with imitate_later
            # every point past it (a 22,046-step chain's 689 points x 256 steps of ~23 KB observations: ~4 GB)
            drawable = {p.step for p in (window + later if self.cfg.imitate_later else window)}
            self._demos = {step: d for step, d in self._demos.items() if step in drawable}
        demo = join([*(self._demonstration(p, gamma) for p in points), *self._own_demonstrations(gamma)])
        self._imitation = key, None if demo is None else SelfImitation(demo, self.cfg.imitate, bptt, device)
        return self._imitation[1]

    def _own_demonstrations(self, gamma: float) -> list[Demonstration]:
        """``reset.imitate_own``: the run's last successful episodes, each played again on the first call that
        holds it."""
        numbers = {n for n, _ in self._own}
        for n, way in self._own:
            if n not in self._own_demos:
                self._own_demos[n] = demonstrate_way(self._env(), way, gamma)
                if self._own_demos[n] is None:  # not expected: replays are exact
                    print(f"pokerl: warning: reset.imitate_own: an episode from chain step {way['point']} did not "
                          "hold the chain's end when played again; left out", file=sys.stderr)
        self._own_demos = {n: d for n, d in self._own_demos.items() if n in numbers}
        return [d for d in self._own_demos.values() if d is not None]

    def _demonstration(self, point: Point, gamma: float) -> Demonstration:
        """The chain's way from ``point`` (replayed on the first call for it)."""
        if point.step not in self._demos:
            self._demos[point.step] = demonstrate_from(self._env(), point, self.cfg.imitate_steps, gamma)
        return self._demos[point.step]

    def _env(self) -> GameBoyEnv:
        """The env ways are replayed on: with the run's rewards (follow's marks too: the chain's way earns them)."""
        assert self.chain is not None
        if self._demo_env is None:
            self._demo_env = make_env(spec=self.spec, rom=self.rom, boot_cache=str(self.run_dir / "cache"),
                                      reset=self.cfg)
            self._demo_env.set_chain(self.chain)
        return self._demo_env

    def close(self) -> None:
        if self._demo_env is not None:
            self._demo_env.close()
            self._demo_env = None

    def state_dict(self) -> dict[str, Any] | None:
        """For checkpoints: t, the outcomes counted and the switch's step; before goexplore's switch, its shortest
        way to the target so far (None: neither yet)."""
        if self.frontier is None:
            return None if self._shortest is None else {"shortest": list(self._shortest)}
        return {**self.frontier.state_dict(), "found_at": self.found_at,
                **({"own": [way for _, way in self._own]} if self.cfg.imitate_own else {})}
