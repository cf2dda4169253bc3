"""The agent shipped inside the package (``scripts/train_pretrained.py`` made it): its files are what its
model card says, and it plays from power-on as the card's figures say."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from pokerl.pretrained import card_path, pretrained_path, read_card

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_pretrained.py"

# The card measures 32 seeded episodes, this test 8 of the same setting (seed 0, 4 envs, sampled actions):
# sampled actions can differ across CPUs, and 8 episodes carry more chance than 32. 3/8 is the 95% binomial
# interval of 8 against 32 episodes at a rate of 0.5 (1.96 * sqrt(0.25 / 8 + 0.25 / 32) = 0.39), rounded down
# to whole episodes.
MARGIN = 3 / 8


def test_the_shipped_files_are_what_the_card_says() -> None:
    weights = pretrained_path("tinyquest")
    card = read_card(weights)
    saved = torch.load(weights, weights_only=True)
    assert set(saved) == {"model", "config", "about", "global_step"}  # weights only, as shipped
    assert all(t.dtype == torch.float16 for t in saved["model"].values() if t.is_floating_point())
    assert card["weights"]["bytes"] == weights.stat().st_size <= 5_000_000
    assert card["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert card["training"]["env_steps"] == sum(stage["env_steps"] for stage in card["training"]["stages"])
    assert saved["global_step"] == card["training"]["stages"][-1]["env_steps"]
    assert card["evaluation"]["episodes"] >= 32
    out = subprocess.run([sys.executable, "-m", "pokerl.cli.play", "--pretrained", "tinyquest", "--info", "--full"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "DISPLAY": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == card_path(weights).read_text().splitlines()


def test_the_shipped_agent_plays_from_power_on_as_its_card_says() -> None:
    card = read_card(pretrained_path("tinyquest"))["evaluation"]
    out = subprocess.run([sys.executable, "-m", "pokerl.cli.eval", "--pretrained", "tinyquest", "--episodes", "8",
                          "--seed", str(card["seed"]), "--envs-per-worker", "4", "--json"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    rates = json.loads(out.stdout)["milestone_rates"]
    assert rates.keys() == card["milestone_rates"].keys()
    far = {m: (rate, card["milestone_rates"][m]) for m, rate in rates.items()
           if abs(rate - card["milestone_rates"][m]) > MARGIN}
    assert not far, f"milestone: (these 8 episodes, the card's) {far}"


def test_train_pretrained_ships_a_stage_and_a_second_stage_from_it(tmp_path: Path) -> None:
    """What makes the shipped agent: a short run becomes weights and a card, goes on with ``--set`` (a
    change the card dates); ``--init`` goes on from them as a second stage that the card lists after the
    first; no path of this machine gets into a card."""
    def train(out: str, *more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(SCRIPT), "--run-root", str(tmp_path / "runs"), "--steps", "1024",
                               "--episodes", "1", "--out", str(tmp_path / out), *more],
                              capture_output=True, text=True, timeout=600)

    first = train("one")
    assert first.returncode == 0, first.stderr
    one = tmp_path / "one" / "tinyquest.pt"
    assert "changes" not in read_card(one)["training"]["stages"][0]
    # the same run goes on to a larger budget with a config change; the card says from which step
    at_step = torch.load(one, weights_only=True)["global_step"]
    longer = train("one", "--steps", "2048", "--set", "reset.fresh_share=0.25")
    assert longer.returncode == 0, longer.stderr
    (stage,) = read_card(one)["training"]["stages"]
    assert stage["changes"] == [{"at_step": at_step, "set": ["reset.fresh_share=0.25"]}]
    assert stage["env_steps"] >= 2048 and read_card(one)["training"]["config"]["reset"]["fresh_share"] == 0.25
    second = train("two", "--init", str(one))
    assert second.returncode == 0, second.stderr
    two = tmp_path / "two" / "tinyquest.pt"
    card = read_card(two)
    stages = card["training"]["stages"]
    assert [stage["init_sha256"] for stage in stages] == [None, hashlib.sha256(one.read_bytes()).hexdigest()]
    assert stages[0] == read_card(one)["training"]["stages"][0]
    assert card["training"]["env_steps"] == sum(stage["env_steps"] for stage in stages) >= 2 * 1024
    assert torch.load(two, weights_only=True)["global_step"] == stages[1]["env_steps"]
    assert card["evaluation"]["episodes"] == 1
    assert str(tmp_path) not in card_path(two).read_text()

    not_weights = tmp_path / "one" / "tinyquest.card.yaml"
    bad = train("three", "--init", str(not_weights))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "three").exists()
