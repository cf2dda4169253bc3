"""``GameBoyEnv``: a Game Boy game as a Gymnasium environment, built from a profile and a reward config.

Observation (``Dict``, channel-last uint8 images):

- ``screen``  (72, 80, frame_stack): the last frames, 2x-downsampled grayscale;
- ``visited`` (72, 80, 1): the explored-tiles mask of the current map around the player (0/255);
- ``vector``  (D,) float32: RAM features named by the profile (HP fraction, level, badges, ...).

Actions are ``Discrete`` over the profile's action set. ``info`` carries the RAM fields,
``reward_terms`` and ``milestones``; when an episode ends it also carries ``episode``, a summary
the trainer logs (return, length, term sums, milestones, maps visited, tile visit counts).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from pokerl.config import from_mapping
from pokerl.emulator import EmulatorSession, read_rom
from pokerl.errors import ConfigError, PokerlError
from pokerl.profile import VECTOR_LIMIT, GameProfile, config_path, load_profile, load_yaml
from pokerl.rewards import Predicate, RewardConfig, RewardTracker, load_reward

OBS_H, OBS_W = 72, 80


@dataclass
class EnvConfig:
    """``configs/env/*.yaml``: how actions map to frames, the frame stack and the episode length."""

    hold_frames: int = 8
    step_frames: int = 24
    frame_stack: int = 3
    max_steps: int = 4096
    helpers: list[str] = field(default_factory=list)  # profile helpers to switch on (off by default)


def _as_mapping(value: Any) -> Any:
    """OmegaConf containers → plain dicts (so configs from Hydra and YAML look the same)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(value, DictConfig):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - hydra is a dependency
        pass
    return value


def load_env_config(env: str | os.PathLike[str] | Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> EnvConfig:
    """Env config from a name, a path or a mapping, with keyword overrides on top."""
    env = _as_mapping(env)
    if env is None:
        data, source = load_yaml("env", "default")
    elif isinstance(env, Mapping):
        data, source = dict(env), "env config"
    else:
        data, source = load_yaml("env", env)
    data = {**data, **overrides}
    cfg = from_mapping(EnvConfig, data, source)
    if not 1 <= cfg.hold_frames < cfg.step_frames:
        raise ConfigError(f"{source}: need 1 <= hold_frames < step_frames, got {cfg.hold_frames}, {cfg.step_frames}")
    if cfg.frame_stack < 1 or cfg.max_steps < 1:
        raise ConfigError(f"{source}: frame_stack and max_steps must be >= 1")
    return cfg


class GameBoyEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """A Game Boy game as a Gymnasium env; see the module docstring for spaces and info."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60}

    def __init__(
        self,
        game: str | os.PathLike[str] | Mapping[str, Any] = "tinyquest",
        reward: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        env: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        rom: str | os.PathLike[str] | None = None,
        render_mode: str | None = None,
        writes: Mapping[str, int] | None = None,
        boot_cache: str | os.PathLike[str] | None = None,
        window: str = "null",
        speed: int = 0,
        **overrides: Any,
    ) -> None:
        self.profile: GameProfile = load_profile(_as_mapping(game))
        profile = self.profile
        reward = _as_mapping(reward)
        if reward is None:
            default = profile.name if config_path("reward", profile.name).is_file() else None
            if default is None:
                raise ConfigError(f"no reward config given and configs/reward/{profile.name}.yaml does not exist")
            reward = default
        self.rewards: RewardConfig = load_reward(reward, profile.ram)
        self.config = load_env_config(env, overrides)
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.writes = dict(profile.boot.writes)
        for name, value in (writes or {}).items():
            if name not in profile.ram:
                raise ConfigError(f"writes: no such RAM field {name!r} in {profile.source}")
            self.writes[name] = int(value)
        self._done = Predicate(profile.done_when, profile.ram, profile.source) if profile.done_when else None
        self._busy = Predicate(profile.busy_when, profile.ram, profile.source) if profile.busy_when else None
        self._helpers = []
        for name in self.config.helpers:
            if name not in profile.helpers:
                raise ConfigError(f"env.helpers: {profile.source} has no helper {name!r} "
                                  f"(it has: {', '.join(profile.helpers) or 'none'})")
            h = profile.helpers[name]
            self._helpers.append((Predicate(h.when, profile.ram, profile.source), h.press, h.max_presses))

        rom_path = profile.rom_path(rom)
        rom_bytes = read_rom(rom_path, profile.sha1, what=f"{profile.name} ROM")
        self.session = EmulatorSession(rom_bytes, self.config.hold_frames, self.config.step_frames, window=window)
        self._boot_state = self._cached_boot(rom_path, rom_bytes, boot_cache)  # at unlimited speed
        self.session.pyboy.set_emulation_speed(speed)

        self._buttons: list[str | None] = [None if a == "noop" else a for a in profile.actions]
        self.action_space = gym.spaces.Discrete(len(self._buttons))
        self.observation_space = gym.spaces.Dict({
            "screen": gym.spaces.Box(0, 255, (OBS_H, OBS_W, self.config.frame_stack), np.uint8),
            "visited": gym.spaces.Box(0, 255, (OBS_H, OBS_W, 1), np.uint8),
            "vector": gym.spaces.Box(-VECTOR_LIMIT, VECTOR_LIMIT, (max(profile.vector_size, 1),), np.float32),
        })
        cell = profile.visited_cell
        self._crop_tiles = (-(-OBS_H // cell), -(-OBS_W // cell))
        th, tw = self._crop_tiles
        self._crop = np.zeros((th * cell, tw * cell), np.uint8)  # scaled-up crop, reused every step
        self._crop_obs = self._crop[:OBS_H, :OBS_W, None]  # the part that is observed (a view)
        # The crop only changes when the player moves or a tile is first visited: _visits_version
        # counts changes of the visited sets (first visits, reset, set_state); key = (pos, version).
        self._visits_version = 0
        self._crop_key: tuple[tuple[int, int, int], int] | None = None
        self._seen: dict[int, np.ndarray] = {}  # per map: visited tiles as 0/255, padded (see _seen_mask)
        wm = profile.world_map
        self._map_shape = (wm.map_height, wm.map_width)
        self._map_field, self._x_field, self._y_field = profile.coords
        self._stack = np.zeros((OBS_H, OBS_W, self.config.frame_stack), np.uint8)
        self._stack_flat = self._stack.reshape(-1)  # views made once: the step's frame shift and write
        self._stack_last = self._stack[..., -1]
        self._tracker = RewardTracker(self.rewards)
        # Visit counts per map: a flat row-major list of Python ints (a list update per step is much
        # cheaper than numpy scalar indexing); _grid() gives the numpy array for summaries and snapshots.
        self._visits: dict[int, list[int]] = {}
        self._steps = 0
        self._return = 0.0
        self._pos: tuple[int, int, int] = (0, 0, 0)

    # ------------------------------------------------------------------ boot and reset
    def _cached_boot(self, rom_path: Path | None, rom: bytes, cache_dir: str | os.PathLike[str] | None) -> bytes:
        """Boot, or load the start state an earlier env of this run made (``boot_cache``: a folder in
        the run dir). The file name hashes the ROM and the boot procedure, so a different ROM or
        profile never reuses it; a corrupt file is made again."""
        if cache_dir is None or self.profile.boot.state:
            return self._boot(rom_path)
        key = hashlib.sha1(rom + repr(self.profile.boot).encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"{self.profile.name}-{key}.state"
        if path.is_file():
            try:
                cached = path.read_bytes()
                self.session.load_state(cached, source=f"cached start state {path}")
                self._check_control(rom_path)
                return cached
            except PokerlError:
                pass  # fall through: boot again and rewrite it
        state = self._boot(rom_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(state)
        os.replace(tmp, path)
        return state

    def _check_control(self, rom_path: Path | None) -> None:
        for name, value in self.profile.boot.check.items():
            got = self.profile.ram[name].read(self.session.memory)
            if got != value:
                raise ConfigError(f"{self.profile.source}: boot did not reach control: {name} is {got}, expected {value}"
                                  f" (ROM {rom_path})")

    def _boot(self, rom_path: Path | None) -> bytes:
        """Power-on to player control (script or savestate); returns the state to reset to."""
        boot, s = self.profile.boot, self.session
        if boot.state:
            path = Path(boot.state).expanduser()
            if not path.is_file():
                raise ConfigError(f"{self.profile.source}: boot.state: savestate not found: {path}")
            s.load_state(path.read_bytes(), source=f"savestate {path}")
        else:
            s.tick(boot.ticks)
            for step in boot.sequence:
                s.press(step.button, step.hold, step.frames, render=False)
        s.tick(1, True)
        self._check_control(rom_path)
        return s.save_state()

    def _write(self, name: str, value: int) -> None:
        f = self.profile.ram[name]
        mem = self.session.memory
        if f.type == "u16be":
            mem[f.addr], mem[f.addr + 1] = (value >> 8) & 0xFF, value & 0xFF
        elif f.type == "u16le":
            mem[f.addr], mem[f.addr + 1] = value & 0xFF, (value >> 8) & 0xFF
        else:
            for i in range(f.size):
                mem[f.addr + i] = (value >> (8 * i)) & 0xFF

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Back to the boot state; ``seed`` seeds the game's RNG (through the profile's seed field)."""
        super().reset(seed=seed)
        state = (options or {}).get("state", self._boot_state)
        self.session.load_state(state)
        if self.profile.boot.seed_field:
            self._write(self.profile.boot.seed_field, int(self.np_random.integers(1, 1 << 16)))
        for name, value in self.writes.items():
            self._write(name, value)
        self.session.tick(1, True)
        ram = self.profile.read_ram(self.session.memory)
        self._tracker.reset(ram)
        self._visits = {}
        self._visits_version += 1
        self._seen = {}
        self._steps = 0
        self._return = 0.0
        self._pos = (int(ram[self._map_field]), int(ram[self._x_field]), int(ram[self._y_field]))
        self._visit(*self._pos)
        frame = self.session.gray_half()
        self._stack[...] = frame[..., None]
        return self._obs(ram), self._info(ram, dict.fromkeys(self.rewards.term_names, 0.0))

    # ------------------------------------------------------------------ snapshots (exact resume)
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue this episode exactly: emulator, frames, bookkeeping, RNG.

        Only plain types (bytes, ints, floats, str, lists, dicts), so it fits a weights_only checkpoint.
        """
        t = self._tracker
        return {
            "emulator": self.session.save_state(),
            "stack": self._stack.tobytes(),
            "visits": {int(m): self._grid(m).tobytes() for m in self._visits},
            "steps": self._steps,
            "return": self._return,
            "pos": list(self._pos),
            "reached": list(t.reached),
            "reached_all": sorted(t._reached),
            "tiles_found": t.tiles_found,
            "highs": dict(t.highs),
            "stuck_steps": t.stuck_steps,
            "totals": dict(t.totals),
            "np_random": repr(self.np_random.bit_generator.state),
        }

    def set_state(self, state: dict[str, Any]) -> dict[str, np.ndarray]:
        """Restore :meth:`get_state` output; returns the current observation."""
        import ast

        self.session.load_state(state["emulator"], source="env snapshot")
        self._stack[...] = np.frombuffer(state["stack"], np.uint8).reshape(self._stack.shape)
        self._visits = {int(m): np.frombuffer(g, np.int32).reshape(self._map_shape).ravel().tolist()
                        for m, g in state["visits"].items()}
        self._visits_version += 1
        self._seen = {}
        self._steps, self._return = int(state["steps"]), float(state["return"])
        self._pos = tuple(int(v) for v in state["pos"])  # type: ignore[assignment]
        t = self._tracker
        t.reached, t._reached = list(state["reached"]), set(state["reached_all"])
        t.tiles_found, t.stuck_steps, t.totals = int(state["tiles_found"]), int(state["stuck_steps"]), dict(state["totals"])
        t.highs = {str(f): int(v) for f, v in state.get("highs", {}).items()}
        ram = self.profile.read_ram(self.session.memory)
        t.prev = dict(ram)
        self.np_random.bit_generator.state = ast.literal_eval(state["np_random"])
        return self._obs(ram)

    # ------------------------------------------------------------------ step
    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Press the action's button for one step; returns the Gymnasium 5-tuple."""
        self.session.act(self._buttons[int(action)])
        ram = self.profile.read_ram(self.session.memory)
        for predicate, button, max_presses in self._helpers:
            for _ in range(max_presses):
                if not predicate(ram):
                    break
                self.session.act(button)
                ram = self.profile.read_ram(self.session.memory)
        pos = (ram[self._map_field], ram[self._x_field], ram[self._y_field])
        new_tile = self._visit(*pos)
        moved = pos != self._pos
        self._pos = pos
        busy = self._busy(ram) if self._busy else False
        terms = self._tracker.step(ram, new_tile, moved, busy)
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
        truncated = not terminated and self._steps >= self.config.max_steps
        info = self._info(ram, terms)
        if terminated or truncated:
            info["episode"] = self.episode_summary()
        return self._obs(ram), reward, terminated, truncated, info

    def _visit(self, map_id: int, x: int, y: int) -> bool:
        """Count a visit to a tile; True when it is the first visit this episode."""
        counts = self._visits.get(map_id)
        h, w = self._map_shape
        if counts is None:
            counts = self._visits[map_id] = [0] * (h * w)
        if not (0 <= y < h and 0 <= x < w):
            return False
        i = y * w + x
        counts[i] += 1
        if counts[i] == 1:
            self._visits_version += 1
            mask = self._seen.get(map_id)
            if mask is not None:
                th, tw = self._crop_tiles
                mask[y + th, x + tw] = 255
            return True
        return False

    def _grid(self, map_id: int) -> np.ndarray:
        """A map's visit counts as an int32 (height, width) array (a new array)."""
        return np.array(self._visits[map_id], np.int32).reshape(self._map_shape)

    def _seen_mask(self, map_id: int) -> np.ndarray | None:
        """A map's visited tiles as 0/255, padded by the crop size on every side (built on first use)."""
        mask = self._seen.get(map_id)
        if mask is None:
            if map_id not in self._visits:
                return None
            grid = self._grid(map_id)
            th, tw = self._crop_tiles
            h, w = grid.shape
            mask = self._seen[map_id] = np.zeros((h + 2 * th, w + 2 * tw), np.uint8)
            mask[th : th + h, tw : tw + w] = grid > 0
            mask *= 255
        return mask

    # ------------------------------------------------------------------ observations and info
    def _visited_crop(self) -> np.ndarray:
        """The explored mask of the current map, centred on the player, scaled to 72x80."""
        key = (self._pos, self._visits_version)
        if key == self._crop_key:
            return self._crop_obs.copy()
        self._crop_key = key
        th, tw = self._crop_tiles
        map_id, x, y = self._pos
        h, w = self._map_shape
        mask = self._seen_mask(map_id) if (0 <= y < h and 0 <= x < w) else None
        if mask is not None:  # the usual case: a view of the padded mask, no bounds arithmetic
            y0, x0 = y - th // 2 + th, x - tw // 2 + tw
            tiles = mask[y0 : y0 + th, x0 : x0 + tw]
        elif map_id in self._visits:  # off the map grid: clip by hand
            grid = self._grid(map_id)
            tiles = np.zeros((th, tw), np.uint8)
            y0, x0 = y - th // 2, x - tw // 2
            h, w = grid.shape
            sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y0 + th, h), min(x0 + tw, w)
            if sy1 > sy0 and sx1 > sx0:
                tiles[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = grid[sy0:sy1, sx0:sx1] > 0
                tiles *= 255
        else:
            tiles = np.zeros((th, tw), np.uint8)
        cell, big = self.profile.visited_cell, self._crop
        # each tile -> cell x cell pixels: repeat along x, then broadcast each row over cell rows
        big.reshape(th, cell, tw * cell)[...] = tiles.repeat(cell, 1)[:, None, :]
        return self._crop_obs.copy()

    def _vector(self, ram: Mapping[str, Any]) -> np.ndarray:
        # already within [0, VECTOR_LIMIT]: the generated builder clips (see profile.compile_vector)
        return np.array(self.profile.vector_values(ram) or [0.0], np.float32)  # type: ignore[attr-defined]

    def _obs(self, ram: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {"screen": self._stack.copy(), "visited": self._visited_crop(), "vector": self._vector(ram)}

    def _info(self, ram: dict[str, Any], terms: dict[str, float]) -> dict[str, Any]:
        info = dict(ram)
        info["reward_terms"] = terms
        info["milestones"] = list(self._tracker.reached)
        return info

    def episode_summary(self) -> dict[str, Any]:
        """What the trainer logs for a finished episode (plain types, small)."""
        visits = {}
        for map_id in self._visits:
            grid = self._grid(map_id)
            ys, xs = np.nonzero(grid)
            visits[int(map_id)] = [[int(x), int(y), int(grid[y, x])] for y, x in zip(ys, xs, strict=True)]
        return {
            "return": float(self._return),
            "length": int(self._steps),
            "reward_terms": {k: float(v) for k, v in self._tracker.totals.items()},
            "milestones": list(self._tracker.reached),
            "maps_visited": sorted(int(m) for m, counts in self._visits.items() if any(counts)),
            "visits": visits,
        }

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
    game: str | os.PathLike[str] | Mapping[str, Any] = "tinyquest",
    reward: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    env: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    rom: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> GameBoyEnv:
    """Build a :class:`GameBoyEnv`; picklable through ``functools.partial`` for worker processes."""
    return GameBoyEnv(game=game, reward=reward, env=env, rom=rom, **overrides)

