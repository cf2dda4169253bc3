"""Shared helpers: a fast tinyquest env on the real ROM and ways to drive it, the overrides of a tiny training
run, and a tiny policy with a memory task for it.

Everything here runs the real bundled ROM through PyBoy; only the ROM's busy-wait ballast is set to
0 (a WRAM write the profile allows) so the tests run fast. Positions and rules come from
roms/tinyquest/README.md; the action indices follow configs/game/tinyquest.yaml.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

import pokerl  # noqa: F401  (registers the gymnasium ids)
from pokerl.config import PolicyConfig
from pokerl.env import GameBoyEnv
from pokerl.errors import PokerlError

# Start states made outside a run are kept in the user's cache folder (pokerl.boot.user_cache_dir): the tests
# (and the commands they start) keep theirs in a folder of their own, new each session, so a test run neither
# reads the user's nor fills it.
os.environ["POKERL_CACHE_DIR"] = tempfile.mkdtemp(prefix="pokerl-test-cache-")
atexit.register(shutil.rmtree, os.environ["POKERL_CACHE_DIR"], ignore_errors=True)

ROOT = Path(__file__).resolve().parent.parent
TQ_ROM = ROOT / "src" / "pokerl" / "games" / "tinyquest.gb"
TQ_PROFILE = ROOT / "configs" / "game" / "tinyquest.yaml"

# configs/game/tinyquest.yaml: actions: [down, left, right, up, a, b]
ACTION = {"down": 0, "left": 1, "right": 2, "up": 3, "a": 4, "b": 5}

# WRAM fields the profile does not name (roms/tinyquest/README.md, "WRAM block").
TQ_MENU = 0xC01B  # battle menu cursor: 0 HIT, 1 BLAST, 2 RUN
TQ_STATE = 0xC01C  # 0 walking, 1 text box, 2 battle move menu
TQ_HP = 0xC005  # u16 big-endian
TQ_XP = 0xC009  # u16 big-endian
TQ_LEVEL = 0xC004  # u8

FAST = {"ballast": 0}

# The overrides of a tiny training run on tinyquest: the small policy narrowed further, 2 envs x 16 steps an
# update in one process, one minibatch and one epoch, no ballast, no progress bar, heat maps or videos.
TINY_RUN = (
    "model=small", "model.hidden=32", "model.vector_hidden=16", "num_envs=2", "pool.mode=serial", "pool.workers=1",
    "ppo.num_steps=16", "ppo.bptt=8", "ppo.num_minibatches=1", "ppo.update_epochs=1", "game.boot.writes.ballast=0",
    "log.progress=false", "log.heatmap_every=0", "log.video_every=0", "torch_threads=1",
)


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def tiny_run(*extra: str, drop: tuple[str, ...] = ()) -> list[str]:
    """TINY_RUN with ``extra``: an extra whose key TINY_RUN sets replaces that override in place, the others
    follow in their order; the keys in ``drop`` are left out (the run takes their config defaults)."""
    given = {_key(o): o for o in extra}
    base = [given.pop(_key(o), o) for o in TINY_RUN if _key(o) not in drop]
    return [*base, *(o for o in extra if _key(o) in given)]


def torchrun(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``args`` as two CPU ranks under torchrun and return its output.

    The ranks run in their own sessions (torch's elastic launcher starts them so), so killing the
    launcher alone on a timeout would leave them running. On a timeout the launcher gets SIGTERM,
    which it forwards to its ranks before exiting, and SIGKILL only if it is still there a minute later.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:  # a rank that outlived the launcher would hold the pipes open
                proc.kill()
                proc.wait()
                err = "(killed: no output read)"
            raise AssertionError(f"torchrun ran past {timeout:g} s; its stderr ends:\n{err[-3000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def refused(out: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command printed (asserting it was one line, exit status 2)."""
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert out.stderr.startswith("pokerl: error: ") and out.stderr.strip().count("\n") == 0, out.stderr[-2000:]
    return out.stderr.strip()


def make_tq(**kwargs: Any) -> GameBoyEnv:
    """A tinyquest env with no ballast (fast) unless ``writes`` is given."""
    kwargs.setdefault("writes", FAST)
    kwargs.setdefault("game", "tinyquest")
    return GameBoyEnv(**kwargs)


def one_line(err: pytest.ExceptionInfo[PokerlError]) -> str:
    """The error's message, asserting it is one non-empty line."""
    text = str(err.value)
    assert text and "\n" not in text
    return text


def profile_with(tmp_path: Path, edit) -> Path:
    """tinyquest's profile edited by ``edit``, written to a file in ``tmp_path``."""
    data = yaml.safe_load(TQ_PROFILE.read_text())
    edit(data)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def tq_env() -> Iterator[GameBoyEnv]:
    """A fast tinyquest env, reset with seed 7."""
    env = make_tq()
    env.reset(seed=7)
    yield env
    env.close()


def write_u16(env: GameBoyEnv, addr: int, value: int) -> None:
    """Write a big-endian u16 into the emulator's WRAM."""
    env.session.memory[addr] = (value >> 8) & 0xFF
    env.session.memory[addr + 1] = value & 0xFF


def press(env: GameBoyEnv, button: str) -> tuple[float, dict[str, Any]]:
    """One env step with the named button; returns (reward, info)."""
    _, reward, _, _, info = env.step(ACTION[button])
    return reward, info


def position(env: GameBoyEnv) -> tuple[int, int, int]:
    """(map, x, y) read from RAM."""
    mem = env.session.memory
    return mem[0xC000], mem[0xC001], mem[0xC002]


def battle_button(env: GameBoyEnv) -> str | None:
    """The button that advances a battle or closes a text box (HIT every turn); None in the overworld."""
    mem = env.session.memory
    if mem[0xC012]:  # text box open
        return "a"
    if mem[0xC00B]:  # in battle: move the cursor to HIT, then choose it
        return "up" if mem[TQ_MENU] != 0 else "a"
    return None


def walk_town_to_route1(env: GameBoyEnv) -> list[tuple[float, dict[str, Any]]]:
    """From the start (9, 9) in town to Route 1 by the east edge (row 8), avoiding the heal pad."""
    out = [press(env, "right") for _ in range(9)]  # (18, 9)
    out.append(press(env, "up"))  # (18, 8)
    out.append(press(env, "right"))  # (19, 8)
    out.append(press(env, "right"))  # off the east edge: Route 1 (0, 8)
    return out


def walk_route1_to_grass(env: GameBoyEnv) -> None:
    """From Route 1's west edge (0, 8) onto its tall grass at (5, 8)."""
    for _ in range(5):
        press(env, "right")


def load_walkthrough() -> Any:
    """scripts/walkthrough_tinyquest.py as a module (it is a script, not a package module)."""
    name = "walkthrough_tinyquest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "walkthrough_tinyquest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ a tiny policy and a memory task


def tiny_space(vector: int = 2) -> gym.spaces.Dict:
    return gym.spaces.Dict({
        "screen": gym.spaces.Box(0, 255, (4, 4, 1), np.uint8),
        "visited": gym.spaces.Box(0, 255, (4, 4, 1), np.uint8),
        "vector": gym.spaces.Box(-1, 1, (vector,), np.float32),
    })


def tiny_config(recurrent: bool) -> PolicyConfig:
    return PolicyConfig(channels=[4], kernels=[2], strides=[1], cnn_out=16, vector_hidden=16, hidden=32,
                        recurrent=recurrent)


class CueEnvs:
    """N copies of a memory task: a cue (left/right) is shown only at the first step; after
    ``delay`` more steps the action must name the cue (reward 1, else 0). Episodes last delay+1 steps."""

    def __init__(self, n: int, delay: int, seed: int) -> None:
        self.n, self.delay = n, delay
        self.rng = np.random.default_rng(seed)
        self.t = np.zeros(n, dtype=np.int64)
        self.cue = self.rng.integers(0, 2, n)

    def obs(self) -> dict[str, torch.Tensor]:
        vector = np.zeros((self.n, 2), np.float32)
        first = self.t == 0
        vector[first, self.cue[first]] = 1.0
        return {
            "screen": torch.zeros(self.n, 4, 4, 1, dtype=torch.uint8),
            "visited": torch.zeros(self.n, 4, 4, 1, dtype=torch.uint8),
            "vector": torch.from_numpy(vector),
        }

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        last = self.t == self.delay
        reward = (last & (action == self.cue)).astype(np.float32)
        self.t += 1
        done = last
        self.t[done] = 0
        self.cue[done] = self.rng.integers(0, 2, int(done.sum()))
        return reward, done
