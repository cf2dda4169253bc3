"""Milestone statistics from real episode summaries on the real ROM: rates, median steps, first reached."""

from __future__ import annotations

from conftest import make_tq, press, walk_town_to_route1
from pokerl.env import GameBoyEnv
from pokerl.milestones import first_reached, median_steps, reach_rates


def finish(env: GameBoyEnv) -> dict:
    """Step in place (B) until the episode ends; its summary."""
    while True:
        _, _, terminated, truncated, info = env.step(5)
        if terminated or truncated:
            return info["episode"]


def test_stats_of_a_walk_to_route1_and_of_an_episode_started_there() -> None:
    env = make_tq(archive=True, max_steps=20)
    try:
        env.reset(seed=1)
        offered = [info["archive_entry"] for _, info in walk_town_to_route1(env) if "archive_entry" in info]
        walked = finish(env)  # route1 at step 12 of 20
        env.reset(seed=2)
        stayed = finish(env)  # never left the town
    finally:
        env.close()
    assert reach_rates([walked, stayed], ["route1", "gym1"]) == {"route1": 0.5, "gym1": 0.0}
    assert median_steps([walked, stayed], ["route1", "gym1"]) == {"route1": 12.0}
    # ended at global step 1,000 with 4 global steps per env step: route1 was 8 env steps earlier
    assert first_reached(walked, 1000, 4) == {"route1": 1000 - (20 - 12) * 4}

    env = make_tq(start=offered[0], max_steps=6)  # started holding route1 (reached 12 steps from power-on)
    try:
        env.reset(seed=3)
        for _ in range(3):
            press(env, "left")  # back into the town
        resumed = finish(env)
    finally:
        env.close()
    assert "route1" in resumed["milestones"] and resumed["milestone_steps"]["route1"] == 12
    assert first_reached(resumed, 1000, 4) == {}  # held from the start: reached in another episode
    assert median_steps([walked, resumed], ["route1"]) == {"route1": 12.0}
