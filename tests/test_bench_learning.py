"""``pokerl-bench learning``: the seeds it trains are the ones asked for, and what it sets itself is not
overridden in silence (issue 36). Real tinyquest runs of a few dozen steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import tiny_run
from pokerl.bench.learning import fingerprint, main
from pokerl.errors import ConfigError

QUICK = ["--steps", "32", "--eval-episodes", "0", "--json",
         *tiny_run("env.max_steps=10", drop=("model", "log.progress"))]


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


def test_bench_learning_counts_steps_and_reuses_finished_seeds(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.jsonl"
    args = ["--steps", "64", "--seeds", "2", "--results", str(results), "--run-root", str(tmp_path / "runs"),
            "--eval-episodes", "2", "--json",
            *tiny_run("env.max_steps=10"), "env.max_steps=16",
            "+reward.milestones.moved={when: 'x != 9 or y != 9', reward: 0.0}"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [s["seed"] for s in first["seeds"]] == [1, 2] and all(s["steps"] == 64 for s in first["seeds"])
    assert first["milestones"]["moved"]["share"] == 1.0
    assert all(set(s["eval_from_power_on"]) >= {"moved", "complete"} for s in first["seeds"])
    assert len(results.read_text().splitlines()) == 2
    assert main(args) == 0  # both seeds are in the results file: nothing is trained again
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["seeds"] == first["seeds"]
    assert len(results.read_text().splitlines()) == 2
    assert len(list((tmp_path / "runs").glob("*/seed*"))) == 2
    assert main([*args[:-2], args[-1], args[-2]]) == 0  # the same config, overrides in another order: reused
    assert len(results.read_text().splitlines()) == 2
    edited = [*args[:-1], "+reward.milestones.moved={when: 'x != 9 or y != 9', reward: 0.1}"]  # another config
    assert main(edited) == 0
    assert len(results.read_text().splitlines()) == 4  # trained again, as a new setting
    assert len(list((tmp_path / "runs").glob("*/seed*"))) == 4
    kept = results.read_text()
    results.write_text(kept + '{"seed": 3, "overr')  # a line cut short (by hand, or an older pokerl killed mid-write)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and f"{results}: line 5 is not JSON" in err
    assert results.read_text().startswith(kept)  # nothing was lost


def test_bench_learning_keys_fresh_seeds_without_the_archive_settings_they_never_read() -> None:
    fresh, frontier = ["reset.mode=fresh"], ["reset.mode=frontier"]
    assert fingerprint(fresh) == fingerprint([*fresh, "archive.level_step=3", "reset.fresh_share=0.5"])
    assert fingerprint(frontier) != fingerprint([*frontier, "archive.level_step=3"])
    assert fingerprint(frontier) != fingerprint([*frontier, "archive.by_map=true"])  # left out only at its default
    assert fingerprint(frontier) != fingerprint([*frontier, "reset.frontier_weight=reward"])
    assert fingerprint(fresh) != fingerprint([*fresh, "ppo.bootstrap_truncated=false"])


def test_bench_learning_keys_a_chain_by_its_content(tmp_path: Path) -> None:
    """The same chain at another path is the same setting (seeds run from it are reused); another chain is not."""
    one, copy, other = tmp_path / "one.pt", tmp_path / "elsewhere" / "copy.pt", tmp_path / "other.pt"
    copy.parent.mkdir()
    for path, content in ((one, b"a chain"), (copy, b"a chain"), (other, b"another chain")):
        path.write_bytes(content)
    backward = ["reset.mode=backward"]
    assert fingerprint([*backward, f"reset.chain={one}"]) == fingerprint([*backward, f"reset.chain={copy}"])
    assert fingerprint([*backward, f"reset.chain={one}"]) != fingerprint([*backward, f"reset.chain={other}"])
    with pytest.raises(ConfigError, match="no such chain file"):
        fingerprint([*backward, f"reset.chain={tmp_path / 'missing.pt'}"])
