"""The training loop end to end on the real ROM: TensorBoard tags, checkpoints, exact resume."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from conftest import tiny_run, torchrun
from pokerl.checkpoint import load_checkpoint
from pokerl.config import compose_train_config
from pokerl.errors import CheckpointError, ConfigError
from pokerl.heatmap import Backdrop, VisitMap, draw_heatmap
from pokerl.logger import TrainLogger, read_scalar_tags
from pokerl.pretrained import export_weights
from pokerl.profile import load_profile
from pokerl.spec import load_spec
from pokerl.trainer import Trainer, train

# 2 envs x 16 steps = 32 env steps per update; episodes of 24 steps end inside every update.
SMALL = tiny_run("ppo.num_minibatches=2", "ppo.update_epochs=2", "env.max_steps=24", "log.checkpoint_every=1",
                 "log.heatmap_every=1", "log.video_every=2", "log.video_steps=8",
                 drop=("model.hidden", "model.vector_hidden"))


def run(tmp: Path, *extra: str) -> dict[str, float]:
    return train(compose_train_config([*SMALL, f"run_dir={tmp}", *extra]))


def test_tensorboard_has_every_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    episodes: list[dict] = []
    add = TrainLogger.add_episode
    monkeypatch.setattr(TrainLogger, "add_episode", lambda self, e: (episodes.append(e), add(self, e)))
    # a milestone every episode may or may not reach: leaving the start tile (9, 9)
    run(tmp_path, "total_steps=96", "+reward.milestones.moved={when: 'x != 9 or y != 9', reward: 0.0}")
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    scalars, images = set(acc.Tags()["scalars"]), set(acc.Tags()["images"])
    expected = {
        "episode/return", "episode/length", "perf/sps", "perf/env_sps", "perf/inference_ms", "perf/update_ms",
        "loss/policy",
        "loss/value", "loss/entropy", "ppo/approx_kl", "ppo/clipfrac", "ppo/explained_variance",
        "reward/exploration", "reward/milestones", "reward/level", "reward/heal", "reward/blackout", "reward/stuck",
        "milestone/route1", "milestone/badge1", "milestone/complete",
    }
    assert expected <= scalars, expected - scalars
    # episodes end at steps 24 and 48: two flushes of two episodes each; each milestone's value is the
    # share of that flush's episodes that reached it, including milestones no episode reached
    assert len(episodes) == 4
    for name in ("route1", "badge1", "complete", "moved"):
        values = [e.value for e in acc.Scalars(f"milestone/{name}")]
        assert values == [sum(name in e["milestones"] for e in pair) / 2 for pair in (episodes[:2], episodes[2:])]
    assert [e.value for e in acc.Scalars("milestone/moved")] != [0.0, 0.0]
    assert "video/episode" in images
    assert any(tag.startswith("exploration/map_") for tag in images)
    assert "exploration/world" in images
    # the world image is the one pokerl-eval --heatmap draws, over the screens the training envs saw
    visits, backdrop = VisitMap((16, 20)), Backdrop(load_spec("tinyquest").world_map, load_profile("tinyquest").screen)
    for e in episodes:
        visits.add(e["visits"])
        backdrop.add(e["screens"])
    assert backdrop.painted.any()
    drawn = draw_heatmap(backdrop.world, visits, backdrop.scale, backdrop)
    logged = np.asarray(Image.open(io.BytesIO(acc.Images("exploration/world")[-1].encoded_image_string)))
    np.testing.assert_array_equal(logged, drawn)
    # written at the start: the config, the custom-scalars layout, the hparams record with the milestones
    plugins: dict[str, bytes] = {}
    for path in (tmp_path / "tb").glob("events.*"):
        for event in LegacyEventFileLoader(str(path)).Load():
            for value in event.summary.value:
                plugins.setdefault(value.metadata.plugin_data.plugin_name, value.metadata.plugin_data.content)
    assert {"text", "custom_scalars", "hparams"} <= set(plugins), set(plugins)
    session = HParamsPluginData.FromString(plugins["hparams"])  # the first: the experiment's knobs and metrics
    names = {h.name for h in session.experiment.hparam_infos}
    metrics = {m.name.tag for m in session.experiment.metric_infos}
    assert {"ppo.gamma", "ppo.learning_rate", "num_envs", "reset.mode"} <= names, names
    assert {"milestone/route1", "milestone/complete", "milestone/moved"} <= metrics, metrics
    lengths = [e.value for e in acc.Scalars("episode/length")]
    assert lengths and all(v == 24 for v in lengths)  # truncation at env.max_steps
    saved = (tmp_path / "config.yaml").read_text()
    assert "max_steps: 24" in saved


def test_resume_continues_and_matches_uninterrupted_run(tmp_path: Path) -> None:
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    run(straight, "total_steps=96")  # 3 updates in one go
    Trainer(compose_train_config([*SMALL, f"run_dir={interrupted}", "total_steps=96"])).run(stop_at_update=2)
    first = load_checkpoint(interrupted)
    assert first["update"] == 2 and first["global_step"] == 64
    train(compose_train_config([f"resume={interrupted}", "total_steps=96", "log.progress=false"]))
    resumed, reference = load_checkpoint(interrupted), load_checkpoint(straight)
    assert resumed["update"] == 3 and resumed["global_step"] == 96
    for name, tensor in reference["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, rtol=0, atol=0, msg=name)


def test_resume_sets_a_key_added_after_the_run_started(tmp_path: Path) -> None:
    """A run made before ``archive.by_map`` existed (its config.yaml lacks it) resumes with it set: typed
    keys are filled with the defaults the run used; a misspelt key is still a one-line error."""
    run(tmp_path, "total_steps=32")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del saved["archive"]["by_map"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(ConfigError, match="unknown key 'archive.bymap'"):
        compose_train_config([f"resume={tmp_path}", "archive.bymap=true"])
    train(compose_train_config([f"resume={tmp_path}", "archive.by_map=true", "total_steps=64"]))
    assert load_checkpoint(tmp_path)["update"] == 2
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["archive"]["by_map"] is True


def test_init_starts_a_new_run_from_exported_weights(tmp_path: Path) -> None:
    """init= (fine-tuning; the shipped agent trained further in a later session): a new run whose policy
    starts from another run's exported half-precision weights, with steps and optimiser of its own."""
    run(tmp_path / "a", "total_steps=64")
    weights = tmp_path / "exported" / "a.pt"
    export_weights(load_checkpoint(tmp_path / "a"), weights)
    tuned = Trainer(compose_train_config([*SMALL, f"run_dir={tmp_path / 'b'}", f"init={weights}", "total_steps=32"]))
    try:
        assert tuned.global_step == 0 and not tuned.optimizer.state and tuned.archive.best() is None
        for name, tensor in torch.load(weights, weights_only=True)["model"].items():
            torch.testing.assert_close(tuned.policy.state_dict()[name], tensor.float(), rtol=0, atol=0, msg=name)
        tuned.run()
        assert tuned.global_step == 32
    finally:
        tuned.close()
    with pytest.raises(CheckpointError, match=r"init=.*a\.pt has model\.hidden=256, this config 128"):
        Trainer(compose_train_config([*SMALL, "model.hidden=128", f"init={weights}", f"run_dir={tmp_path / 'c'}"]))
    # weights alone cannot be resumed (no optimiser, steps or envs): the error says what to do instead
    out = subprocess.run([sys.executable, "-m", "pokerl.cli.train", f"resume={weights}"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
    assert "holds weights only" in out.stderr and f"init={weights}" in out.stderr


def test_torchrun_two_cpu_ranks_train_one_model(tmp_path: Path) -> None:
    """torch.distributed (Gloo on CPU): two ranks, each with its own envs, share one model."""
    args = ["-m", "pokerl.cli.train", *SMALL, "log.checkpoint_every=100", "total_steps=128", f"run_dir={tmp_path}"]
    out = torchrun(*args)
    assert out.returncode == 0, out.stderr[-6000:]
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["update"] == 2 and ckpt["global_step"] == 128  # 2 ranks x 2 envs x 16 steps per update
    # resumed: the checkpoint holds rank 0's RNG states, yet the ranks must not sample alike
    script = tmp_path / "resume_draw.py"
    script.write_text(RESUME_DRAW)
    out = torchrun(str(script), f"resume={tmp_path}", "total_steps=256")
    assert out.returncode == 0, out.stderr[-6000:]
    draws = [(tmp_path / f"draw{rank}").read_text() for rank in (0, 1)]  # files: the ranks' stdout interleaves
    assert draws[0] != draws[1]
    # started again there, not resumed: every rank stops at once (rank 0 refuses the run dir)
    out = torchrun(*args)
    assert out.returncode != 0 and "holds an earlier run" in out.stderr, out.stderr[-6000:]


RESUME_DRAW = """
import sys, torch, torch.distributed as dist
from pokerl.config import compose_train_config
from pokerl.trainer import Trainer

trainer = Trainer(compose_train_config(sys.argv[1:]))
(trainer.run_dir / f"draw{dist.get_rank()}").write_text(repr(torch.rand(1).item()))
trainer.close()
"""


def test_async_rollout_keeps_each_env_column_consistent(tmp_path: Path) -> None:
    """With async_envs, workers advance independently; each env's column must still be its own
    trajectory: an episode start at t=0 and again exactly env.max_steps (24) steps later."""
    cfg = compose_train_config([
        *SMALL, "num_envs=4", "pool.mode=async", "pool.workers=2", "ppo.num_steps=32",
        "total_steps=128", "log.video_every=1", f"run_dir={tmp_path}",
    ])
    trainer = Trainer(cfg)
    assert trainer.collector.asynchronous
    videos: list[list[np.ndarray]] = []
    trainer.logger.video = lambda frames, step: videos.append(frames)  # type: ignore[union-attr, method-assign]
    trainer.run(stop_at_update=1)
    starts = trainer.buffer.episode_starts
    for env in range(4):
        assert torch.nonzero(starts[:, env]).flatten().tolist() == [0, 24]
    assert trainer.buffer.rewards.abs().sum() > 0  # exploration rewards reached the buffer
    # the video shows env 0's screens as it acted on them (log.video_steps=8)
    assert len(videos) == 1 and len(videos[0]) == 8
    for t, frame in enumerate(videos[0]):
        np.testing.assert_array_equal(frame[..., 0], trainer.buffer.obs["screen"][t, 0, :, :, -1].cpu().numpy())


def test_bench_train_json(capsys: pytest.CaptureFixture[str]) -> None:
    """The benchmark runs the real trainer for one warm-up and ``--rounds`` timed updates, with a probe
    of as many raw processes as the pool has workers between updates (figures: timing, not asserted)."""
    import json

    from pokerl.bench.train import main

    tiny = ["num_envs=2", "pool.workers=2", "ppo.num_steps=16", "ppo.bptt=8", "ppo.num_minibatches=2",
            "ppo.update_epochs=1", "game.boot.writes.ballast=0", "torch_threads=1"]
    assert main(["--rounds", "2", "--raw-seconds", "0.3", "--json", *tiny]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("train_sps", "raw_sps", "learner_samples_per_s", "ideal_sps", "train_over_ideal", "train_over_raw"):
        assert isinstance(result[key], float), key
    assert result["rounds"] == 2 and len(result["ratio_per_round"]) == 2
    assert result["steps_trained"] == 3 * 16 * 2  # warm-up + 2 timed updates of 16 steps x 2 envs
    assert result["raw_processes"] == result["workers"] == 2
    with pytest.raises(SystemExit) as exit_info:  # the benchmark's own run dir and length: not silently dropped
        main(["--rounds", "2", *tiny, "total_steps=999"])
    assert exit_info.value.code == 2 and "total_steps= is the benchmark's own" in capsys.readouterr().err


def test_ctrl_c_finishes_the_update_checkpoints_and_exits_130(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) stops after the update in
    progress with a checkpoint to resume from; the workers ignore it and are closed by the trainer."""
    run_dir = tmp_path / "run"
    args = [*SMALL, "pool.mode=inline", "pool.workers=2", "log.checkpoint_every=1000", "total_steps=10_000_000",
            f"run_dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, "-m", "pokerl.cli.train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert "parameters" in proc.stdout.readline()  # printed once the Ctrl-C handler is in place
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "stopping after this update" in err and f"resume={run_dir}" in err
    assert "Traceback" not in err
    ckpt = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert ckpt["update"] >= 1
    assert len(ckpt["carry"]["envs"]) == 2  # the envs' states were saved too: the workers were alive


def test_bf16_autocast_keeps_the_recurrent_state_and_losses_in_fp32(tmp_path: Path) -> None:
    """bf16 autocast (CPU here, the GPU path's dtype rules alike) covers the CNN forward only: the
    LSTM state carried between steps and the losses stay fp32 and finite."""
    trainer = Trainer(compose_train_config([*SMALL, "bf16=true", "total_steps=64", f"run_dir={tmp_path}"]))
    last = trainer.run()
    assert trainer.state[0].dtype == trainer.state[1].dtype == torch.float32
    for key in ("loss/policy", "loss/value", "loss/entropy"):
        assert torch.isfinite(torch.tensor(last[key])), key
    assert last["fault/nonfinite_updates"] == 0


def test_periodic_evaluation_from_power_on_is_logged_and_leaves_training_as_it_was(tmp_path: Path) -> None:
    """``eval.every``: ``power_on/<milestone>`` rates and the return at each evaluated update; the run's
    actions are those of the same run without evaluations (its RNG is left alone)."""
    actions = []
    for name, extra in (("with", ["eval.every=1", "eval.episodes=2"]), ("without", [])):
        trainer = Trainer(compose_train_config([*SMALL, "total_steps=64", f"run_dir={tmp_path / name}", *extra]))
        trainer.run()
        actions.append(trainer.buffer.actions.clone())
    assert torch.equal(actions[0], actions[1])
    tags = read_scalar_tags(tmp_path / "with" / "tb")
    assert [step for step, _ in tags["power_on/route1"]] == [32, 64] and "power_on/return" in tags
    assert {f"power_on/{m}" for m in load_spec("tinyquest").milestone_names} <= set(tags)
    assert not any(tag.startswith("power_on/") for tag in read_scalar_tags(tmp_path / "without" / "tb"))
