"""What a newcomer meets first: the one-line refusals of bad input, said at once and honestly (issue 36).

Each refusal is checked where the user meets it, the command line, and on the real bundled ROM where a
ROM is involved. "At once" is checked by what was built before the refusal (torch never imported, an
earlier run never touched), not by a clock.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, TQ_ROM, cli, refused, tiny_run
from pokerl.checkpoint import load_checkpoint
from pokerl.config import compose_train_config
from pokerl.errors import RomError
from pokerl.evaluate import evaluate, load_agent
from pokerl.pretrained import MACHINE_LOCAL, card_path, export_weights, pretrained_path, read_card
from pokerl.trainer import Trainer, train

NO_DISPLAY = {"DISPLAY": "", "WAYLAND_DISPLAY": "", "SDL_VIDEODRIVER": ""}
# A short real run: 2 envs x 8 steps an update, the small policy, no heat maps or videos.
TINY = tiny_run("ppo.num_steps=8", drop=("model.hidden", "model.vector_hidden", "log.progress"))


def test_play_and_eval_check_the_path_they_are_given_first(tmp_path: Path) -> None:
    line = refused(cli("pokerl.cli.play", str(tmp_path / "missing"), env=NO_DISPLAY))
    assert "checkpoint not found" in line and "display" not in line, line  # the path, then the window
    line = refused(cli("pokerl.cli.eval", str(tmp_path)))
    assert line == f"pokerl: error: {tmp_path} is not a run directory (no checkpoints/latest.pt in it): " \
                   f"give a run dir (runs/NAME) or a checkpoint file"
    (tmp_path / "config.yaml").write_text("seed: 1\n")  # a run that has not saved a checkpoint yet
    line = refused(cli("pokerl.cli.play", str(tmp_path), "--headless"))
    assert "has no checkpoint yet" in line, line


def refusal_before_torch(module: str, *argv: str) -> str:
    """Run ``module``'s main in a fresh interpreter: its one-line refusal and whether torch was imported."""
    code = (f"import sys\nfrom {module} import main\ntry:\n    main({list(argv)!r})\n"
            f"except SystemExit as e:\n    print(e.code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **NO_DISPLAY})
    assert out.stdout.strip() == "2 False", (module, argv, out.stdout, out.stderr[-2000:])
    return out.stderr.strip()


def test_a_bad_rom_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    other = tmp_path / "other.gb"
    data = bytearray(TQ_ROM.read_bytes())
    data[0x200] ^= 0xFF  # the real ROM, one byte changed: another SHA-1
    other.write_bytes(bytes(data))
    not_rom = tmp_path / "notes.gb"
    not_rom.write_bytes(b"not a ROM")
    assert "expected" in refusal_before_torch("pokerl.cli.train", f"rom={other}", f"run_dir={tmp_path / 'r'}")
    assert "ROM not found" in refusal_before_torch("pokerl.cli.train", f"rom={tmp_path / 'missing.gb'}")
    assert "not a Game Boy ROM" in refusal_before_torch("pokerl.cli.eval", "--pretrained", "tinyquest",
                                                         "--rom", str(not_rom))
    assert "ROM (--rom) not found" in refusal_before_torch("pokerl.cli.play", "--pretrained", "tinyquest",
                                                            "--rom", str(tmp_path / "missing.gb"), "--headless")
    assert "checkpoint not found" in refusal_before_torch("pokerl.cli.train", f"init={tmp_path / 'missing.pt'}")
    assert not (tmp_path / "r").exists()


def test_a_bad_rom_does_not_cost_the_run_that_overwrite_would_replace(tmp_path: Path) -> None:
    earlier = tmp_path / "run"
    (earlier / "checkpoints").mkdir(parents=True)
    (earlier / "config.yaml").write_text("seed: 1\n")
    cfg = compose_train_config(["num_envs=2", "pool.workers=1", "pool.mode=serial", "log.progress=false",
                                f"run_dir={earlier}", "overwrite=true", f"rom={tmp_path / 'missing.gb'}"])
    with pytest.raises(RomError, match="ROM not found"):
        Trainer(cfg)
    assert (earlier / "config.yaml").is_file() and (earlier / "checkpoints").is_dir()  # refused before removed


def test_info_leads_with_a_summary_and_the_whole_card_is_behind_full() -> None:
    out = cli("pokerl.cli.play", "--pretrained", "tinyquest", "--info", env=NO_DISPLAY)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    card = card_path(pretrained_path("tinyquest"))
    rates = read_card(pretrained_path("tinyquest"))["evaluation"]["milestone_rates"]
    assert len(lines) <= len(rates) + 6, out.stdout  # was the whole card: ~330 lines, the figures at the bottom
    assert lines[0].startswith("tinyquest: a CNN-LSTM policy") and lines[1].startswith("trained: ")
    route1 = next(line for line in lines if line.split()[:1] == ["route1"])
    assert route1.split()[1] == f"{rates['route1']:.0%}", route1
    assert lines[-1].endswith(f"{card} (--info --full prints it)")
    full = cli("pokerl.cli.eval", "--pretrained", "tinyquest", "--info", "--full")
    assert full.returncode == 0 and full.stdout.splitlines()[1:] == card.read_text().splitlines()
    assert "--full goes with --info" in refused(cli("pokerl.cli.eval", "--pretrained", "tinyquest", "--full"))


# An absolute path into a machine's folders (or a Windows drive), as a run config records its run_dir.
MACHINE_PATH = re.compile(rb"(?<![\w.~])/(?:work|home|Users|root|tmp|mnt|opt|srv|scratch|data|var|private)/[\w.+-]+"
                          rb"|\b[A-Z]:\\\\?[\w.+-]+")


def test_nothing_shipped_holds_a_path_of_the_machine_it_was_made_on() -> None:
    """The package (src/pokerl: code, ROM, shipped agents and cards) and the configs that ship with it."""
    host = socket.gethostname().encode()
    shipped = [p for root in (ROOT / "src" / "pokerl", ROOT / "configs") for p in sorted(root.rglob("*"))
               if p.is_file() and "__pycache__" not in p.parts]
    assert pretrained_path("tinyquest") in shipped and len(shipped) > 50
    found = {}
    for path in shipped:
        data = path.read_bytes()  # a .pt is an uncompressed zip: its config text is there as it is
        hits = [m.group().decode(errors="replace") for m in MACHINE_PATH.finditer(data)]
        if len(host) >= 4 and host in data:
            hits.append(host.decode())
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    assert not found, found


def test_exported_weights_leave_the_machine_behind(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(compose_train_config([*TINY, "env.max_steps=8", "log.progress=false", "total_steps=16",
                                f"run_dir={run_dir}"]))
    checkpoint = load_checkpoint(run_dir)
    assert str(run_dir) in checkpoint["config"]  # the run's own checkpoint keeps where it is (to resume)
    out = tmp_path / "agent.pt"
    export_weights(checkpoint, out)
    assert str(tmp_path).encode() not in out.read_bytes()
    config = yaml.safe_load(torch.load(out, weights_only=True)["config"])
    assert not set(MACHINE_LOCAL) & set(config) and config["game"]["name"] == "tinyquest"
    assert load_agent(out).global_step == 16  # still an agent: it loads and knows its game


@pytest.mark.parametrize("max_steps", [4096, 8])
def test_the_progress_bar_shows_progress_before_the_first_episode_ends(max_steps: int, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """tinyquest's episodes are 4,096 steps: with 8 envs on a CPU the first return comes after minutes. Until
    then the bar says so (ret=-, not nan) and shows the episodes ended and the milestones reached so far."""
    train(compose_train_config([*TINY, f"env.max_steps={max_steps}", "total_steps=64", f"run_dir={tmp_path}"]))
    last = capsys.readouterr().err.split("\r")[-1]  # the bar as it was left
    assert "nan" not in last and "milestones=" in last and "/13" in last, last
    if max_steps == 4096:
        assert "eps=0" in last and "ret=-" in last, last
    else:  # 2 envs x 32 steps in 8-step episodes
        assert "eps=8" in last and re.search(r"ret=-?\d+\.\d\d", last), last


def test_the_first_heat_map_and_video_come_as_soon_as_there_is_something_to_show(tmp_path: Path) -> None:
    """Heat maps every 10 updates and videos every 50 (the defaults): the first video is the run's first
    update, the first heat maps the update in which the first episodes ended (their visits), not update
    10 or 50; no heat map before that (it would be empty)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(compose_train_config([*TINY, "env.max_steps=12", "log.progress=false", "log.heatmap_every=10",
                                "log.video_every=50", "log.video_steps=8", "total_steps=48", f"run_dir={tmp_path}"]))
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    acc.Reload()
    steps = {tag: [e.step for e in acc.Images(tag)] for tag in acc.Tags()["images"]}
    assert steps.pop("video/episode") == [16], steps  # update 1 of 3 (2 envs x 8 steps an update)
    assert steps and all(at == [32] for at in steps.values()), steps  # update 2: the first episodes ended at 12
    assert {"exploration/world", "exploration/map_0"} <= set(steps)


def test_the_shipped_agents_demo_plays_until_a_milestone_its_card_says_it_reaches(tmp_path: Path) -> None:
    """Without --steps a shipped agent plays until the furthest milestone its card measured in at least half
    of its episodes (a fixed step count stayed in town); --until picks one, and play says it was reached."""
    from pokerl.cli.play import showcase_milestone

    evaluation = read_card(pretrained_path("tinyquest"))["evaluation"]
    likely = {m: at for m, at in evaluation["median_steps_to_milestone"].items()
              if evaluation["milestone_rates"][m] >= 0.5}
    assert showcase_milestone(str(pretrained_path("tinyquest"))) == max(likely, key=likely.get)
    gif, played, again = tmp_path / "demo.gif", tmp_path / "played.json", tmp_path / "again.json"
    # Two episodes: the actions are sampled and a machine's float rounding picks which, so one of them may
    # wander (CI once saw an episode of 4,096 steps without route1; the card's episodes reached it in 32 of 32).
    out = cli("pokerl.cli.play", "--pretrained", "tinyquest", "--headless", "--record", str(gif),
              "--until", "route1", "--seed", "0", "--episodes", "2", "--save-actions", str(played))
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert len(lines) == 2, lines
    totals = [int(line.split(" step ")[1].split()[0]) for line in lines]  # steps so far, over the episodes
    lengths = [totals[0], totals[1] - totals[0]]
    reached = [line.endswith("(reached route1: episode ended, --until)") and "route1" in line.split("milestones: ")[1]
               for line in lines]
    assert any(reached), lines
    ended_there = [1 <= n < evaluation["max_steps"] for n, ok in zip(lengths, reached, strict=True) if ok]
    assert all(ended_there), lines  # at route1, not at 4,096
    from PIL import Image

    assert Image.open(gif).n_frames > 1
    # --seed seeds each episode's sampled actions too: episode 2 of seed 0 is episode 1 of seed 1
    out = cli("pokerl.cli.play", "--pretrained", "tinyquest", "--headless", "--until", "route1", "--seed", "1",
              "--steps", "64", "--save-actions", str(again))
    assert out.returncode == 0, out.stderr[-2000:]
    actions, replayed = json.loads(played.read_text())["actions"], json.loads(again.read_text())["actions"]
    assert len(replayed) == min(64, lengths[1]) and replayed == actions[lengths[0]:lengths[0] + len(replayed)]
    assert "not a milestone of tinyquest" in refused(cli("pokerl.cli.play", "--pretrained", "tinyquest",
                                                         "--headless", "--until", "badge9"))


def test_eval_reports_shares_without_float_noise_and_maps_by_name(tmp_path: Path) -> None:
    """Ten episodes that all start in town: town's share is 1.0, not ten tenths added up (0.9999999999999999);
    the profile names the maps."""
    train(compose_train_config([*TINY, "env.max_steps=8", "log.progress=false", "total_steps=16",
                                f"run_dir={tmp_path}"]))
    agent = load_agent(tmp_path)
    result = evaluate(agent, episodes=10, envs_per_worker=2, seed=0)
    assert result.maps_visited[0] == 1.0 and all(v * 10 == round(v * 10) for v in result.maps_visited.values())
    assert agent.spec.profile.world_map.map_name(0) == "town" and agent.spec.profile.world_map.map_name(99) == "map 99"


BAD_ENV_SCRIPT = """
from pokerl.errors import exit_on_error
from pokerl.env import GameBoyEnv

@exit_on_error
def main():
    GameBoyEnv(rom={rom!r})

main()
"""


def test_cli_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    script = BAD_ENV_SCRIPT.format(rom=str(tmp_path / "missing.gb"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pokerl: error:") and "missing.gb" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
