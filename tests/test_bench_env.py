"""``pokerl-bench env``: it runs end to end and reports what it compares."""

from __future__ import annotations

import json

import pytest

from pokerl.bench.env import main


def test_bench_env_json(capsys: pytest.CaptureFixture[str]) -> None:
    """The benchmark runs end to end and prints one JSON object (figures are not asserted: timing); the
    env and the bare PyBoy it is compared with show the same frame after the same actions, in every run."""
    assert main(["--runs", "2", "--seconds", "0.5", "--rounds", "2", "--envs", "2", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    result = json.loads(out[0])
    for key in ("env_sps", "raw_sps", "env_over_raw", "overhead_us"):
        assert isinstance(result[key], float) and len(result[f"{key}_range"]) == 2
    assert [len(run["ratio_per_round"]) for run in result["per_run"]] == [2, 2]
    assert result["same_frames"] is True
    assert isinstance(result["rss_mb_per_env"], float)  # a difference of RSS: can be ~0 with 2 envs
    assert result["writes"] == {"ballast": 125}
