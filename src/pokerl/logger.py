"""TensorBoard logging: scalars, milestone rates, exploration heat maps and short episode videos.

The trainer feeds this class episode summaries (``info["episode"]`` from the env, forwarded by the
pool) and PPO statistics; it aggregates episodes between flushes and writes:

- ``episode/return``, ``episode/length``, ``reward/<term>`` (mean per-episode sum of each term),
  ``milestone/<name>`` (share of episodes that reached it, including names never reached),
- ``perf/*``, ``loss/*``, ``ppo/*`` scalars as given,
- ``exploration/map_<id>`` heat-map images (cumulative visits, log-scaled), and
  ``exploration/world`` when the game profile places maps on a global grid,
- ``video/episode``: an animated GIF image summary (TensorBoard's image plugin plays GIFs).
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import Summary

from pokerl.spec import GameSpec

# Heat-map colour ramp (black → purple → orange → yellow), 4 stops, interpolated per channel.
_RAMP = np.array([[0, 0, 0], [90, 20, 140], [240, 110, 30], [255, 240, 80]], dtype=np.float32)


def heat_to_rgb(counts: np.ndarray) -> np.ndarray:
    """Map a 2-D array of visit counts to an RGB uint8 image (log scale, 0 stays black)."""
    counts = np.asarray(counts, dtype=np.float32)
    scaled = np.log1p(counts)
    top = float(scaled.max())
    x = scaled / top if top > 0 else scaled
    pos = x * (len(_RAMP) - 1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, len(_RAMP) - 2)
    frac = (pos - lo)[..., None]
    rgb = _RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac
    return rgb.astype(np.uint8)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of an (H, W, C) image so single tiles are visible."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


class VisitMap:
    """Cumulative per-map visit counts, fed from episode summaries' ``visits`` entries."""

    def __init__(self, map_shape: tuple[int, int]) -> None:
        self.map_shape = map_shape
        self.counts: dict[int, np.ndarray] = {}

    def add(self, visits: Mapping[Any, Iterable[Sequence[int]]]) -> None:
        """Add ``{map_id: [[x, y, count], ...]}`` to the totals."""
        h, w = self.map_shape
        for map_id, cells in visits.items():
            grid = self.counts.setdefault(int(map_id), np.zeros((h, w), dtype=np.int64))
            for x, y, count in cells:
                if 0 <= y < h and 0 <= x < w:
                    grid[y, x] += count

    def world(self, offsets: Mapping[int, Sequence[int]], size: Sequence[int]) -> np.ndarray:
        """All maps pasted on one global grid of ``size`` = (width, height) at their offsets."""
        width, height = int(size[0]), int(size[1])
        world = np.zeros((height, width), dtype=np.int64)
        h, w = self.map_shape
        for map_id, grid in self.counts.items():
            if map_id not in offsets:
                continue
            ox, oy = (int(v) for v in offsets[map_id])
            y0, x0 = max(oy, 0), max(ox, 0)
            y1, x1 = min(oy + h, height), min(ox + w, width)
            if y1 > y0 and x1 > x0:
                world[y0:y1, x0:x1] += grid[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
        return world


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
        self.milestone_names = list(spec.milestone_names)
        self.reward_terms = list(spec.term_names)
        world = spec.world_map
        self.visits = VisitMap((world.map_height, world.map_width))
        self.world_offsets = dict(world.offsets)
        self.world_size = (world.width, world.height)
        self.heatmap_scale = heatmap_scale
        self._episodes: list[Mapping[str, Any]] = []

    def add_episode(self, summary: Mapping[str, Any]) -> None:
        """Record one finished episode's summary (``info["episode"]``)."""
        self._episodes.append(summary)
        visits = summary.get("visits")
        if visits:
            self.visits.add(visits)

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
        names = list(self.milestone_names)
        names += sorted({m for e in eps for m in e.get("milestones", ())} - set(names))
        for name in names:
            out[f"milestone/{name}"] = float(np.mean([name in e.get("milestones", ()) for e in eps]))
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
        """Write one exploration heat map per visited map, and the world map when offsets exist."""
        for map_id, grid in sorted(self.visits.counts.items()):
            image = upscale(heat_to_rgb(grid), self.heatmap_scale)
            self.writer.add_image(f"exploration/map_{map_id}", image, step, dataformats="HWC")
        if self.world_offsets and self.visits.counts:
            world = self.visits.world(self.world_offsets, self.world_size)
            self.writer.add_image("exploration/world", upscale(heat_to_rgb(world), 2), step, dataformats="HWC")

    def video(self, frames: Sequence[np.ndarray], step: int, tag: str = "video/episode", fps: int = 15) -> None:
        """Write frames as an animated GIF image summary."""
        if not frames:
            return
        h, w = np.asarray(frames[0]).shape[:2]
        image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=gif_bytes(frames, fps))
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.flush()
        self.writer.close()


def read_scalar_tags(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read every scalar tag of a TensorBoard logdir (used by tests and ``pokerl-eval``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for tag in acc.Tags().get("scalars", []):
        out[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    return dict(out)
