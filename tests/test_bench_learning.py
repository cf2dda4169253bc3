"""``pokerl-bench learning``: the seeds it trains are the ones asked for, and what it sets itself is not
overridden in silence (issue 36). Real tinyquest runs of a few dozen steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pokerl.bench.learning import main

QUICK = ["--steps", "32", "--eval-episodes", "0", "--json", "model.hidden=32", "model.vector_hidden=16",
         "num_envs=2", "pool.mode=serial", "pool.workers=1", "ppo.num_steps=16", "ppo.bptt=8",
         "ppo.num_minibatches=1", "ppo.update_epochs=1", "env.max_steps=10", "game.boot.writes.ballast=0",
         "log.heatmap_every=0", "log.video_every=0", "torch_threads=1"]


def test_the_seeds_asked_for_are_the_seeds_trained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "7,9", "--run-root", str(tmp_path), *QUICK]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [s["seed"] for s in result["seeds"]] == [7, 9]
    trained = {yaml.safe_load(p.read_text())["seed"] for p in tmp_path.glob("*/seed*/config.yaml")}
    assert trained == {7, 9}  # the runs' own configs: what was trained, not only what was reported
    assert main(["--first-seed", "9", "--seeds", "1", "--run-root", str(tmp_path), *QUICK]) == 0  # seed 9 again
    assert [s["seed"] for s in json.loads(capsys.readouterr().out.splitlines()[-1])["seeds"]] == [9]


@pytest.mark.parametrize(("override", "hint"), [
    ("seed=7", "--seeds 7,8,9 or --first-seed 7"),  # was trained as seed 1, in silence
    ("total_steps=64", "--steps"),
    ("run_dir=elsewhere", "--run-root"),
])
def test_overrides_the_bench_sets_itself_are_refused(override: str, hint: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--seeds", "1", "--run-root", str(tmp_path), *QUICK, override])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert f"{override.split('=')[0]}= is the benchmark's own" in err and hint in err, err
    assert not list(tmp_path.iterdir())  # nothing trained
