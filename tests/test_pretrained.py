"""The agent shipped inside the package (``scripts/train_pretrained.py`` made it): its files are what its
model card says, and it plays from power-on as the card's figures say."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import torch

from pokerl.pretrained import pretrained_path, read_card

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
    out = subprocess.run([sys.executable, "-m", "pokerl.cli.play", "--pretrained", "tinyquest", "--info"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "DISPLAY": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == weights.with_name("tinyquest.card.yaml").read_text().splitlines()


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
