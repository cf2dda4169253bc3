"""What a run shows while it trains: TensorBoard (scalars, milestone rates, exploration heat maps, short
episode videos) and the terminal's progress line (:class:`ProgressBar`).

The trainer feeds this class episode summaries (``info["episode"]`` from the env, forwarded by the
pool) and PPO statistics; it aggregates episodes between flushes and writes:

- ``episode/return``, ``episode/length``, ``reward/<term>`` (mean per-episode sum of each term),
  ``milestone/<name>`` (share of episodes that reached it, including names never reached),
- ``perf/*``, ``loss/*``, ``ppo/*`` scalars as given,
- ``exploration/map_<id>`` heat-map images (cumulative visits, log-scaled), and
  ``exploration/world`` when the game profile places maps on a global grid: the same picture as
  ``pokerl-eval --heatmap``, over the screens the envs saw (:mod:`pokerl.heatmap`),
- ``video/episode``: an animated GIF image summary (TensorBoard's image plugin plays GIFs),
- at the start: the config (text), a custom-scalars layout and the hparams plugin's record.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import Summary, hparams

from pokerl.heatmap import Backdrop, VisitMap, draw_heatmap, heat_to_rgb, upscale
from pokerl.milestones import reach_rates
from pokerl.spec import GameSpec

# TensorBoard's world heat map is shrunk to at most this many pixels (it is written every heatmap_every
# updates for the whole run; pokerl-eval --heatmap keeps the full size).
WORLD_IMAGE_PIXELS = 1_500_000

# The config's main knobs, shown by TensorBoard's hparams plugin beside the milestone rates.
HPARAMS = (
    "game.name", "reward.name", "model.hidden", "num_envs", "total_steps", "seed", "env.max_steps",
    "ppo.learning_rate", "ppo.gamma", "ppo.gae_lambda", "ppo.clip_coef", "ppo.ent_coef", "ppo.num_steps",
    "ppo.bptt", "ppo.update_epochs", "ppo.bootstrap_truncated", "reset.mode", "archive.max_states",
    "archive.level_step", "archive.by_map", "reset.frontier_weight",
)


def gif_bytes(frames: Sequence[np.ndarray], fps: int = 15) -> bytes:
    """Encode (H, W, 3) uint8 frames as an animated GIF with Pillow."""
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return buf.getvalue()


class TrainLogger:
    """Aggregates episode summaries between flushes and writes everything to one TensorBoard run."""

    def __init__(self, logdir: str | Path, spec: GameSpec, heatmap_scale: int = 4,
                 purge_step: int | None = None) -> None:
        """``purge_step``: on resume, events at or after this step (from updates lost to a kill) are dropped."""
        self.writer = SummaryWriter(log_dir=str(logdir), purge_step=purge_step)
        # the writer's event file, for the summaries SummaryWriter has no method for (a GIF image; the hparams
        # record without the run of its own add_hparams would start)
        self.events = self.writer.file_writer
        assert self.events is not None
        self.milestone_names = list(spec.milestone_names)
        self.reward_terms = list(spec.term_names)
        self.world = spec.world_map
        self.visits = VisitMap((self.world.map_height, self.world.map_width))
        self.backdrop = Backdrop(self.world, spec.profile.screen) if self.world.offsets else None
        self.heatmap_scale = heatmap_scale
        self.heatmaps_written = 0  # heatmaps() calls that had visits to draw (none before an episode ended)
        self._episodes: list[Mapping[str, Any]] = []

    def describe_run(self, config: Mapping[str, Any], config_yaml: str) -> None:
        """Written at the start (a killed run still shows it): the config as text, a custom-scalars
        layout (milestone rates, reward terms, throughput: one chart each) and the hparams plugin's
        record linking the config's main knobs (:data:`HPARAMS`) to the ``milestone/*`` scalars."""
        self.writer.add_text("config", "\n".join(f"    {line}" for line in config_yaml.splitlines()), 0)
        self.writer.add_custom_scalars({"pokerl": {
            "milestone rates": ["Multiline", [r"milestone/.*"]],
            "reward terms": ["Multiline", [r"reward/.*"]],
            "throughput (env steps/s)": ["Multiline", [r"perf/.*sps"]],
            "first reached (global step)": ["Multiline", [r"milestone_first/.*"]],
        }})
        knobs = {}
        for key in HPARAMS:
            value: Any = config
            for part in key.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            if isinstance(value, (bool, int, float, str)):
                knobs[key] = value
        metrics = {f"milestone/{name}": 0.0 for name in self.milestone_names}
        experiment, session_start, _ = hparams(knobs, metrics)  # no session end: it would say "success" now
        for summary in (experiment, session_start):  # into this run, not the sub-run add_hparams makes
            self.events.add_summary(summary)

    def add_episode(self, summary: Mapping[str, Any]) -> None:
        """Record one finished episode's summary (``info["episode"]``)."""
        self._episodes.append(summary)
        visits = summary.get("visits")
        if visits:
            self.visits.add(visits)
        if self.backdrop is not None:
            self.backdrop.add(summary.get("screens", ()))

    def episode_means(self) -> dict[str, float]:
        """Means over the episodes recorded since the last flush (empty dict when none)."""
        eps = self._episodes
        if not eps:
            return {}
        out = {
            "episode/return": float(np.mean([e["return"] for e in eps])),
            "episode/length": float(np.mean([e["length"] for e in eps])),
            "episode/maps_visited": float(np.mean([len(e.get("maps_visited", ())) for e in eps])),
        }
        # where episodes started: power-on or an archived state (reset.mode frontier / swarm)
        out["episode/start_archive"] = float(np.mean([e.get("start") == "archive" for e in eps]))
        for kind in ("power-on", "archive"):
            returns = [e["return"] for e in eps if e.get("start", "power-on") == kind]
            if returns:
                out[f"episode/return_{kind.replace('-', '_')}"] = float(np.mean(returns))
        terms = set(self.reward_terms)
        for e in eps:
            terms.update(e.get("reward_terms", {}))
        for term in sorted(terms):
            out[f"reward/{term}"] = float(np.mean([e.get("reward_terms", {}).get(term, 0.0) for e in eps]))
        out.update({f"milestone/{name}": rate for name, rate in reach_rates(eps, self.milestone_names).items()})
        return out

    def flush_episodes(self, step: int) -> dict[str, float]:
        """Write the episode means at ``step`` and start a new aggregation window."""
        means = self.episode_means()
        self.scalars(means, step)
        self._episodes = []
        return means

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Write a dict of scalar tags."""
        for tag, value in values.items():
            self.writer.add_scalar(tag, float(value), step)

    def heatmaps(self, step: int) -> None:
        """Write one exploration heat map per visited map, and the world map when offsets exist; nothing
        before an episode has ended (its visits come with its summary)."""
        if not self.visits.counts:
            return
        self.heatmaps_written += 1
        for map_id, grid in sorted(self.visits.counts.items()):
            image = upscale(heat_to_rgb(grid), self.heatmap_scale)
            self.writer.add_image(f"exploration/map_{map_id}", image, step, dataformats="HWC")
        if self.backdrop is not None:
            image = draw_heatmap(self.world, self.visits, self.backdrop.scale, self.backdrop)
            if image.shape[0] * image.shape[1] > WORLD_IMAGE_PIXELS:  # all of Kanto: 1700x3700 at 5 px a step
                shrink = (WORLD_IMAGE_PIXELS / (image.shape[0] * image.shape[1])) ** 0.5
                size = (int(image.shape[1] * shrink), int(image.shape[0] * shrink))
                image = np.asarray(Image.fromarray(image).resize(size, Image.BOX))
            self.writer.add_image("exploration/world", image, step, dataformats="HWC")

    def video(self, frames: Sequence[np.ndarray], step: int, tag: str = "video/episode", fps: int = 15) -> None:
        """Write frames as an animated GIF image summary."""
        if not frames:
            return
        h, w = np.asarray(frames[0]).shape[:2]
        image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=gif_bytes(frames, fps))
        self.events.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.flush()
        self.writer.close()


class ProgressBar:
    """The terminal's progress line (tqdm): steps, steps/s, episodes ended, mean return, milestones held."""

    def __init__(self, total: int, initial: int, milestones: int) -> None:
        from tqdm import tqdm

        self.milestones = milestones
        self.bar = tqdm(total=total, initial=initial, unit="step", unit_scale=True, dynamic_ncols=True, desc="pokerl")

    def update(self, steps: int, *, sps: float, episodes: int, returns: Sequence[float], held: set[str],
               update: int) -> None:
        self.bar.update(steps)
        self.bar.set_postfix(sps=f"{sps:,.0f}", eps=episodes, ret=f"{np.mean(returns):.2f}" if returns else "-",
                             milestones=f"{len(held)}/{self.milestones}", upd=update, refresh=False)

    def close(self) -> None:
        self.bar.close()


def read_scalar_tags(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read every scalar tag of a TensorBoard logdir (used by the soak benchmark and tests)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for tag in acc.Tags().get("scalars", []):
        out[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    return dict(out)
