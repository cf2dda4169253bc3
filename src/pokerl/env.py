"""``GameBoyEnv``: a Game Boy game as a Gymnasium environment, built from a profile and a reward config.

Observation (``Dict``, channel-last uint8 images):

- ``screen``  (72, 80, frame_stack): the last frames, 2x-downsampled grayscale;
- ``visited`` (72, 80, 1): the explored-tiles mask of the current map around the player (0/255);
- ``vector``  (D,) float32: RAM features named by the profile (HP fraction, level, badges, ...).

Actions are ``Discrete`` over the profile's action set. ``info`` carries the RAM fields,
``reward_terms`` and ``milestones``; when an episode ends it also carries ``episode``, a summary
the trainer logs (return, length, term sums, milestones, maps visited, tile visit counts).
What the game is comes from a :class:`~pokerl.spec.GameSpec`; booting from
:mod:`pokerl.boot`, visit bookkeeping from :mod:`pokerl.exploration`, reward terms from
:class:`~pokerl.rewards.RewardTracker`.
"""

from __future__ import annotations

import ast
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from pokerl.archive import Entry, EnvArchive, MilestoneSet, ResetConfig, Trajectory, extend_trajectory
from pokerl.backward import Marks, draw_start, start_entry
from pokerl.boot import start_state
from pokerl.chain import Chain, Point
from pokerl.emulator import EmulatorSession, read_rom
from pokerl.errors import ConfigError
from pokerl.exploration import Exploration
from pokerl.heatmap import ScreenCapture
from pokerl.profile import check_write
from pokerl.rewards import RewardTracker
from pokerl.spec import ConfigSource, GameSpec, load_spec


class GameBoyEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """A Game Boy game as a Gymnasium env; see the module docstring for spaces and info."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60}

    def __init__(
        self,
        game: ConfigSource | None = None,
        reward: ConfigSource | None = None,
        env: ConfigSource | None = None,
        rom: str | os.PathLike[str] | None = None,
        render_mode: str | None = None,
        writes: Mapping[str, int] | None = None,
        boot_cache: str | os.PathLike[str] | None = None,
        window: str = "null",
        window_scale: int = 3,
        speed: int = 0,
        spec: GameSpec | None = None,
        capture_screens: bool = False,
        reset: ResetConfig | None = None,
        archive: bool = False,
        level_step: int = 0,
        by_map: bool = False,
        start: Entry | None = None,
        **overrides: Any,
    ) -> None:
        """``spec`` (or ``game``/``reward``/``env`` and env-config ``overrides`` to load one) says what
        to play; ``writes``: RAM writes after each reset on top of the profile's; ``boot_cache``: a
        folder where the run's envs share their start state (None: the user's cache folder, see
        :func:`pokerl.boot.user_cache_dir`); ``window="SDL2"``: show the game,
        ``window_scale`` times its size, at ``speed`` (1 real time, 0 unlimited); ``capture_screens``:
        each episode summary carries the screens the agent saw (``screens``, heat-map backgrounds, see
        :mod:`pokerl.heatmap`); ``reset``: where episodes start (``fresh``: power-on; ``frontier``: archived states, see
        :meth:`set_archive`); ``archive``: offer a state in ``info["archive_entry"]`` whenever a new
        set of milestones is held (or, with ``level_step`` > 0, a new level bucket; with ``by_map``, a
        new map: see :mod:`pokerl.archive`); ``start``: begin every episode at this archived state."""
        self.game_spec = spec if spec is not None else load_spec(game, reward, env, **overrides)
        if spec is not None and overrides:
            raise ConfigError(f"env config overrides {sorted(overrides)} given with a spec: put them in the spec")
        self.profile = profile = self.game_spec.profile
        self.rewards = self.game_spec.rewards
        self.config = self.game_spec.env
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.writes = dict(profile.boot.writes)
        for name, value in (writes or {}).items():
            check_write(profile.ram, name, value, f"writes.{name} (fields of {profile.source})")
            self.writes[name] = int(value)
        self._done = profile.predicate(profile.done_when, "done_when") if profile.done_when else None
        self._busy = profile.predicate(profile.busy_when, "busy_when") if profile.busy_when else None
        self._helpers = [(profile.predicate(h.when, f"helpers.{name}.when"), h.press, h.max_presses)
                         for name, h in ((n, profile.helpers[n]) for n in self.config.helpers)]
        self._capture = ScreenCapture(profile.world_map, profile.screen) if capture_screens else None
        self._reset_cfg = reset or ResetConfig()
        # frontier_weight=reward: each milestone's reward, what archived sets are weighed by (else counted)
        self._archive = EnvArchive(self._reset_cfg, {m.name: m.reward for m in self.rewards.milestones}
                                   if self._reset_cfg.frontier_weight == "reward" else None)
        self._archiving = archive
        self._level_step = level_step
        self._by_map = by_map
        self._fixed_start = start
        self._episode_start: Entry | None = None  # the entry this episode started from (None: power-on)
        self._pending = False  # a new cell is held but not archived yet (busy, or the end)
        self._level = 0  # the level bucket now (archive cells)
        self._cell_map = -1  # the map now, when maps split archive cells (else -1)
        self._chain: Chain | None = None  # reset.mode=backward: the chain (set_chain) ...
        self._t = 0  # ... and the frontier index on it (set_backward)
        self._limit: int | None = None  # this episode's steps when it started on the chain, else None
        self._chain_window = False  # ... whether its start was drawn from the window (its outcome moves t)
        self._chain_t = 0  # ... and the t it was drawn for (an outcome counts only while t is still there)
        self._chain_success = False  # ... whether it holds every milestone of the chain's end
        self._chain_from = (-1, False)  # ... the chain step it started at (-1: power-on) and whether exactly
        self._marks: Marks | None = None  # ... reset.follow: where the chain stood at each step (set_chain) ...
        self._progress = 0  # ... the furthest chain step this episode has got to ...
        self._followed = 0.0  # ... and what following has paid in it
        self._seed_written = 0  # lineage: what this episode's reset wrote into the game's RNG field ...
        self._actions: bytearray | None = bytearray()  # ... and its actions so far (None: unknown)

        rom_path = profile.rom_path(rom)
        rom_bytes = read_rom(rom_path, profile.sha1, what=f"{profile.name} ROM")
        self.session = EmulatorSession(rom_bytes, self.config.hold_frames, self.config.step_frames, window=window,
                                       scale=window_scale)
        self._boot_state = start_state(self.session, profile, rom_path, rom_bytes, boot_cache)  # unlimited speed
        self.session.pyboy.set_emulation_speed(speed)

        self._buttons: list[str | None] = [None if a == "noop" else a for a in profile.actions]
        self.action_space = self.game_spec.action_space
        self.observation_space = self.game_spec.observation_space
        wm = profile.world_map
        self._explore = Exploration((wm.map_height, wm.map_width), profile.visited_cell)
        self._map_field, self._x_field, self._y_field = profile.coords
        stack = self.observation_space["screen"].shape
        self._stack = np.zeros(stack, np.uint8)
        self._stack_flat = self._stack.reshape(-1)  # views made once: the step's frame shift and write
        self._stack_last = self._stack[..., -1]
        self._tracker = RewardTracker(self.rewards)
        self._steps = 0
        self._return = 0.0
        self._pos: tuple[int, int, int] = (0, 0, 0)

    # ------------------------------------------------------------------ reset
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Back to the boot state; ``seed`` seeds the game's RNG (through the profile's seed field)."""
        super().reset(seed=seed)
        options = options or {}
        entry = options.get("entry")
        self._limit = None
        exact = False  # reset.exact_starts: a chain start keeps the chain's own RNG (no seed, no boot writes)
        if entry is None and "state" not in options and self._fixed_start is None and self._chain is not None:
            start = draw_start(self._chain, self._t, self._reset_cfg, self.np_random, self.config.max_steps)
            entry = None if start.point is None else start_entry(self._chain, start.point)
            self._limit, self._chain_window, self._chain_t = start.limit, start.window, self._t
            self._chain_success = entry is not None and self._holds_chain_end(entry.milestones)
            self._progress = 0 if start.point is None else start.point.step
            exact = start.point is not None and self._reset_cfg.exact_starts
            self._chain_from = (self._progress if start.point is not None else -1, exact)
        elif entry is None and "state" not in options:
            entry = self._fixed_start or self._archive.draw(self.np_random)
        self._followed = 0.0
        rng = int(self.np_random.integers(1, 1 << 16)) if self.profile.boot.seed_field else 0
        state = entry.state if entry is not None else options.get("state", self._boot_state)
        return self._begin(entry, state, entry.milestones if entry is not None else (), rng, boot=not exact)

    def _begin(self, start: Entry | None, state: bytes, held: MilestoneSet, rng: int, boot: bool = True
               ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """An episode from ``state`` (``start``'s, or power-on's when None) holding ``held``, with ``rng``
        written into the game's RNG field (the profile's ``boot.seed_field``) and the boot writes, then one
        frame; ``boot=False``: the emulator exactly as ``state`` left it (a chain step mid-episode: its RNG
        ticks every frame, so a write or a frame there would leave the chain's way)."""
        self._episode_start = start
        self.session.load_state(state)
        if boot:
            self._boot(rng)
        ram = self.profile.read_ram(self.session.memory)
        self._tracker.reset(ram, held=held)
        self._seed_written, self._actions = rng, bytearray()
        self._pending = False
        self._level = self._level_bucket(ram)
        self._cell_map = int(ram[self._map_field]) if self._by_map else -1
        self._explore.reset()
        if self._capture is not None:
            self._capture.take()  # a new episode keeps its own screens
        self._steps = 0
        self._return = 0.0
        self._pos = (int(ram[self._map_field]), int(ram[self._x_field]), int(ram[self._y_field]))
        self._explore.visit(*self._pos)
        frame = self.session.gray_half()
        self._stack[...] = frame[..., None]
        return self._obs(ram), self._info(ram, dict.fromkeys(self.rewards.term_names, 0.0))

    def _boot(self, rng: int) -> None:
        """What an episode's start does to the loaded emulator: ``rng`` into the RNG field, the boot writes,
        one frame."""
        ram_map = self.profile.ram
        if self.profile.boot.seed_field:
            ram_map[self.profile.boot.seed_field].write(self.session.memory, rng)
        for name, value in self.writes.items():
            ram_map[name].write(self.session.memory, value)
        self.session.tick(1, True)

    def replay(self, trajectory: Trajectory) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """Play an archive entry's way from power-on (:attr:`pokerl.archive.Entry.trajectory`) as training
        did: each segment an episode whose reset wrote its seed, from where the last one stopped (saved
        and loaded, as an archived state is). Yields (segment, step in it, info) after every action."""
        state, held = self._boot_state, ()
        for k, (rng, actions) in enumerate(trajectory):
            self._begin(None, state, held, rng)
            for i, action in enumerate(actions):
                yield k, i, self.step(action)[4]
            held = (*held, *self._tracker.reached)
            state = self.session.save_state()

    def demonstrate(self, point: Point, steps: int) -> tuple[list[dict[str, np.ndarray]], list[int], list[float]]:
        """The chain's (:meth:`set_chain`) own way from its ``point`` for ``steps`` steps (to its end at most),
        played exactly as its run played it, as one episode from the point (as a backward episode from there
        plays on): the observations it sees, the chain's actions and the rewards they earn here. At each
        segment boundary the emulator gets what the chain's run gave it there (its seed, the boot writes, a
        frame, as :meth:`replay`), and the episode goes on. For self-imitation (pokerl.imitation)."""
        chain = self._chain
        assert chain is not None, "set_chain first"
        bounds = np.cumsum([len(actions) for _, actions in chain.trajectory])
        actions = [a for _, segment in chain.trajectory for a in segment][point.step:point.step + steps]
        obs, _ = self._begin(start_entry(chain, point), point.state, point.milestones, 0, boot=False)
        self._limit, self._chain_window, self._chain_t = len(actions), False, point.step
        self._progress, self._followed = point.step, 0.0
        seen, rewards = [obs], []
        for step, action in enumerate(actions, start=point.step):
            if step in bounds:  # the chain's run began its next segment here (at the point too)
                self._boot(chain.trajectory[int(np.searchsorted(bounds, step, side="right"))][0])
            obs, reward, *_ = self.step(action)
            seen.append(obs)
            rewards.append(reward)
        return seen[:-1], actions, rewards

    def play_way(self, way: Mapping[str, Any]) -> tuple[list[dict[str, np.ndarray]], list[int], list[float], bool]:
        """A backward episode played again from its ``chain_way`` (its summary's, ``reset.imitate_own``): the
        observations it saw, its actions and rewards, and whether it held the chain's end again (it does: the
        emulator is deterministic; False would be a bug). For self-imitation on the run's own successes."""
        chain = self._chain
        assert chain is not None, "set_chain first"
        point = None if way["point"] < 0 else next(p for p in chain.points if p.step == way["point"])
        entry = None if point is None else start_entry(chain, point)
        obs, _ = self._begin(entry, self._boot_state if point is None else point.state,
                             () if entry is None else entry.milestones, way["seed"], boot=not way["exact"])
        actions = list(way["actions"])
        self._limit, self._chain_window, self._chain_t = len(actions), False, self._t
        self._chain_success = False  # a way is kept only from a start short of the end
        self._progress, self._followed = (0 if point is None else point.step), 0.0
        seen, rewards = [obs], []
        for action in actions:
            obs, reward, *_ = self.step(action)
            seen.append(obs)
            rewards.append(reward)
        return seen[:-1], actions, rewards, self._chain_success

    # ------------------------------------------------------------------ the backward curriculum
    def set_chain(self, chain: Chain) -> None:
        """``reset.mode=backward``: the chain episodes start along (until :meth:`set_backward`, at its end)."""
        self._chain, self._t = chain, chain.steps
        self._marks = self._read_marks(chain) if self._reset_cfg.follow > 0 else None

    def _read_marks(self, chain: Chain) -> Marks:
        """Where the chain stood at each of its steps: from each saved point, its actions up to the next
        one (a segment boundary between them, where the chain's run wrote a new seed, is not replayed: the
        next point is exact again). The emulator is put back as it was. Once per env: 27 s for the
        16,813-step tinyquest chain on this 2-core machine with a training run beside it."""
        now = self.session.save_state()
        actions = [a for _, segment in chain.trajectory for a in segment]
        spots = []
        for point, following in zip(chain.points, [*chain.points[1:], None], strict=True):
            self.session.load_state(point.state, source="chain point")
            spots.append(self._spot(self.profile.read_ram(self.session.memory)))
            spots += [self._spot(self._press(a)) for a in actions[point.step:following.step - 1]] if following else []
        self.session.load_state(now, source="env snapshot")
        maps, xs, ys = np.array(spots, np.int64).T
        return Marks(maps, xs, ys, chain.milestone_steps)

    def _spot(self, ram: Mapping[str, Any]) -> tuple[int, int, int]:
        return int(ram[self._map_field]), int(ram[self._x_field]), int(ram[self._y_field])

    def _follow(self, pos: tuple[int, int, int]) -> float:
        """``reset.follow``: what getting ahead along the chain pays now (:class:`pokerl.backward.Marks`)."""
        assert self._marks is not None
        furthest = self._marks.furthest(self._progress, pos, self._held()[0], self._reset_cfg.follow_radius)
        paid = self._reset_cfg.follow * (furthest - self._progress)
        self._progress = furthest
        self._followed += paid
        return paid

    def set_backward(self, t: int) -> None:
        """The frontier index on the chain: resets draw their starts from [t, t + window] (pokerl.backward)."""
        self._t = int(t)

    def _holds_chain_end(self, held: MilestoneSet | list[str]) -> bool:
        assert self._chain is not None
        return set(self._chain.end.milestones) <= set(held)

    # ------------------------------------------------------------------ the archive
    def set_archive(self, entries: list[Entry]) -> None:
        """This env's copy of the run's archive: where frontier resets start, what is worth offering."""
        self._archive.set(entries)

    def _level_bucket(self, ram: Mapping[str, Any]) -> int:
        """The level part of this moment's archive cell: the reward's level sum, capped, // level_step."""
        return self.rewards.capped_level(ram) // self._level_step if self._level_step else 0

    def _archive_entry(self, ram: Mapping[str, Any], terminal: bool = False) -> Entry:
        """This moment as an archive entry: the milestones held, the state, the steps from power-on;
        ``terminal``: the game ended here (``done_when``)."""
        held, milestone_steps, start_steps = self._held()
        seed_field = self.profile.boot.seed_field
        trajectory = (extend_trajectory(self._episode_start, self._seed_written, bytes(self._actions))
                      if self._actions is not None else ())
        return Entry(tuple(sorted(held)), self.session.save_state(), start_steps + self._steps, milestone_steps,
                     int(ram[seed_field]) if seed_field else 0, time.time(), level=self._level, map=self._cell_map,
                     parent=None if self._episode_start is None else self._episode_start.cell, trajectory=trajectory,
                     terminal=terminal)

    def jump(self, entry: Entry) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """End the episode here (a truncation) and start the next at ``entry``: (summary, observation)."""
        summary = {**self.episode_summary(), "ended_by": "jump"}
        obs, _ = self.reset(options={"entry": entry})
        return summary, obs

    # ------------------------------------------------------------------ snapshots (exact resume)
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue this episode exactly: emulator, frames, bookkeeping, RNG.

        Only plain types (bytes, ints, floats, str, lists, dicts), so it fits a weights_only checkpoint.
        """
        return {
            "emulator": self.session.save_state(),
            "stack": self._stack.tobytes(),
            "visits": self._explore.state_dict(),
            "steps": self._steps,
            "return": self._return,
            "pos": list(self._pos),
            "rewards": self._tracker.state_dict(),
            "np_random": repr(self.np_random.bit_generator.state),
            "start": None if self._episode_start is None else self._episode_start.as_dict(),
            "uses": self._archive.uses_state(),
            "pending": self._pending,
            "level": self._level,
            "cell_map": self._cell_map,
            "chain": [self._limit, self._chain_window, self._chain_success, self._chain_t, self._progress,
                      self._followed],
            "seed_written": self._seed_written,
            "actions": None if self._actions is None else list(self._actions),  # a list: b"" is no weights_only type
        }

    def set_state(self, state: dict[str, Any]) -> dict[str, np.ndarray]:
        """Restore :meth:`get_state` output; returns the current observation."""
        self.session.load_state(state["emulator"], source="env snapshot")
        self._stack[...] = np.frombuffer(state["stack"], np.uint8).reshape(self._stack.shape)
        self._explore.load_state_dict(state["visits"])
        if self._capture is not None:
            self._capture.take()  # a new episode keeps its own screens
        self._steps, self._return = int(state["steps"]), float(state["return"])
        self._pos = tuple(int(v) for v in state["pos"])  # type: ignore[assignment]
        ram = self.profile.read_ram(self.session.memory)
        self._tracker.load_state_dict(state["rewards"], ram)
        self.np_random.bit_generator.state = ast.literal_eval(state["np_random"])
        self._episode_start = None if state["start"] is None else Entry.from_dict(state["start"])
        self._archive.load_uses(state["uses"])
        self._pending = bool(state["pending"])
        self._level = int(state.get("level", 0))
        self._cell_map = int(state.get("cell_map", -1))
        # [limit, window, success] in snapshots saved before the t drawn for was kept: its outcome does not count
        self._limit, self._chain_window, self._chain_success, *drawn_for = state.get("chain", [None, False, False])
        self._chain_t = int(drawn_for[0]) if drawn_for else -1
        self._progress, self._followed = (int(drawn_for[1]), float(drawn_for[2])) if len(drawn_for) > 1 else (0, 0.0)
        self._seed_written = int(state.get("seed_written", 0))
        actions = state.get("actions")  # absent from snapshots saved before lineage: unknown
        self._actions = None if actions is None else bytearray(actions)
        return self._obs(ram)

    def _press(self, action: int) -> dict[str, Any]:
        """An action's button, then the profile's helpers while theirs hold; the RAM after."""
        self.session.act(self._buttons[action])
        ram = self.profile.read_ram(self.session.memory)
        for predicate, button, max_presses in self._helpers:
            for _ in range(max_presses):
                if not predicate(ram):
                    break
                self.session.act(button)
                ram = self.profile.read_ram(self.session.memory)
        return ram

    # ------------------------------------------------------------------ step
    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Press the action's button for one step; returns the Gymnasium 5-tuple."""
        if self._actions is not None:
            self._actions.append(int(action))
        ram = self._press(int(action))
        pos = (ram[self._map_field], ram[self._x_field], ram[self._y_field])
        new_tile = self._explore.visit(*pos)
        moved = pos != self._pos
        busy = self._busy(ram) if self._busy else False
        if self._capture is not None and pos[0] == self._pos[0] and not busy:  # a step after arriving: drawn
            self._capture.offer(*pos, self.session.rgb)
        self._pos = pos
        reached = self._tracker.reached
        before = len(reached)
        terms = self._tracker.step(ram, new_tile, moved, busy)
        if self._marks is not None and self._limit is not None:
            terms["follow"] = self._follow(pos) if moved or len(reached) > before else 0.0
        level = self._level_bucket(ram)
        cell_map = int(pos[0]) if self._by_map else -1
        if len(reached) > before or level != self._level or cell_map != self._cell_map:
            self._pending = self._archiving
            self._level, self._cell_map = level, cell_map
        reward = float(sum(terms.values()))
        self._steps += 1
        self._return += reward
        if self.config.frame_stack > 1:
            # Shift the frames one channel left. On the channel-last buffer that is a shift of the flat
            # bytes by one (pixel p, channel c takes channel c + 1); the last channel is overwritten
            # below. A contiguous copy: ~40x cheaper than the strided overlapping `[..., :-1] = [..., 1:]`.
            flat = self._stack_flat
            flat[:-1] = flat[1:]
        self.session.gray_half(self._stack_last)
        terminated = bool(self._done(ram)) if self._done else False
        truncated = not terminated and self._steps >= (self._limit or self.config.max_steps)
        if self._limit is not None and not self._chain_success and len(reached) > before:
            self._chain_success = self._holds_chain_end(self._held()[0])
        info = self._info(ram, terms)
        if self._pending and (terminated or not busy):  # a new cell, where play can go on from it or the game ended
            self._pending = False
            candidate = self._archive_entry(ram, terminal=terminated)
            if self._archive.worth_offering(candidate):
                info["archive_entry"] = candidate
        if terminated or truncated:
            info["episode"] = self.episode_summary()
        return self._obs(ram), reward, terminated, truncated, info

    # ------------------------------------------------------------------ observations and info
    def _vector(self, ram: Mapping[str, Any]) -> np.ndarray:
        # already within [0, VECTOR_LIMIT]: the generated builder clips (see codegen.vector_builder)
        return np.array(self.profile.vector_values(ram) or [0.0], np.float32)

    def _obs(self, ram: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {"screen": self._stack.copy(), "visited": self._explore.crop(self._pos), "vector": self._vector(ram)}

    def _info(self, ram: dict[str, Any], terms: dict[str, float]) -> dict[str, Any]:
        info = dict(ram)
        info["reward_terms"] = terms
        info["milestones"] = list(self._tracker.reached)
        return info

    def _held(self) -> tuple[list[str], dict[str, int], int]:
        """The milestones held (at the start, then reached in this episode), each one's env step from
        power-on, and the start's steps from power-on (0 for a power-on start)."""
        start = self._episode_start
        held, base = (start.milestones, start.steps) if start is not None else ((), 0)
        start_steps = dict(start.milestone_steps) if start is not None else {}
        return ([*held, *self._tracker.reached],
                {**start_steps, **{m: base + at for m, at in self._tracker.reached_at.items()}}, base)

    def episode_summary(self) -> dict[str, Any]:
        """What the trainer logs for a finished episode (plain types, small); takes the episode's
        captured screens."""
        start = self._episode_start
        milestones, milestone_steps, base = self._held()
        summary = {
            "return": float(self._return),
            "length": int(self._steps),
            "reward_terms": {**{k: float(v) for k, v in self._tracker.totals.items()},
                             **({"follow": self._followed} if self._marks is not None and self._limit is not None
                                else {})},
            "start": "power-on" if self._episode_start is None else "archive",
            "start_steps": base,
            "start_milestones": list(start.milestones) if start is not None else [],
            "start_level": start.level if start is not None else 0,
            "start_map": start.map if start is not None else -1,
            # held at the start, then reached in the episode; steps from power-on (fresh: the episode's)
            "milestones": milestones,
            "milestone_steps": milestone_steps,
            "maps_visited": self._explore.maps_visited(),
            "visits": self._explore.summary(),
        }
        if self._limit is not None:  # started by the backward curriculum: on the chain, or at power-on at t = 0
            summary.update(start="chain" if start is not None else "power-on", chain_window=self._chain_window,
                           chain_success=self._chain_success, chain_limit=self._limit, chain_t=self._chain_t)
            if self._marks is not None:  # reset.follow: the furthest chain step got ahead to
                summary["chain_progress"] = self._progress
            reached = start is None or not self._holds_chain_end(start.milestones)  # not a start at the end
            if self._chain_success and reached and self._reset_cfg.imitate_own and self._actions is not None:
                point, exact = self._chain_from  # what play_way needs to play it again
                summary["chain_way"] = {"point": point, "exact": exact, "seed": self._seed_written,
                                        "actions": bytes(self._actions)}
        if self._capture is not None:
            summary["screens"] = self._capture.take()
        return summary

    def render(self) -> np.ndarray | None:
        """``rgb_array``: the full 144x160 frame."""
        if self.render_mode == "rgb_array":
            return self.session.rgb()
        return None

    def close(self) -> None:
        if getattr(self, "session", None) is not None:
            self.session.close()
            self.session = None  # type: ignore[assignment]


def make_env(
    game: ConfigSource | None = None,
    reward: ConfigSource | None = None,
    env: ConfigSource | None = None,
    rom: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> GameBoyEnv:
    """Build a :class:`GameBoyEnv`; picklable through ``functools.partial`` for worker processes."""
    return GameBoyEnv(game=game, reward=reward, env=env, rom=rom, **kwargs)
