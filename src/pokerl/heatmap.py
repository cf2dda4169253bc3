"""Heat maps a person reads: visits per tile on the world grid, cropped to where the agent went, over
the screens it saw, with a colour legend.

Envs keep screenshots while they explore (:class:`ScreenCapture`; only when a heat map will be drawn,
``capture_screens``): one per screen-sized chunk of each map, shrunk to the heat map's scale, at most
:data:`SCREENS_PER_EPISODE`, never while ``busy_when`` holds. :class:`Backdrop` pastes them on the world
grid where the profile's ``screen`` geometry says the screen was (a whole map from its origin, or around
the player in games whose screen scrolls). :func:`draw_heatmap` crops to the visited tiles plus a margin,
outlines the maps nobody has been to, blends the visit counts over the picture and adds a legend. The
same image goes to ``pokerl-eval --heatmap`` and TensorBoard's ``exploration/world``. Screens made from a
user's ROM stay in that user's images: nothing here is shipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from pokerl.profile import ScreenGeometry, WorldMap

SCREEN_W, SCREEN_H = 160, 144
# The painted world is at most this many pixels (24 MB of RGB): Kanto (340x734 steps) at 5 px a step.
BACKDROP_PIXELS = 8_000_000
# An env keeps at most this many screens an episode (Pokémon at 5 px a step: 50x45 px, 6.8 KB each).
SCREENS_PER_EPISODE = 512
LEGEND_HEIGHT = 34  # pixels under the map: the colour scale and its labels
MIN_WIDTH = 240  # narrower maps are padded so the legend's labels fit
READABLE_WIDTH = 720  # pokerl-eval --heatmap: a narrower picture is scaled up, by whole pixels, to at least this

# Heat colour ramp (black → purple → orange → yellow), 4 stops, interpolated per channel.
_RAMP = np.array([[0, 0, 0], [90, 20, 140], [240, 110, 30], [255, 240, 80]], dtype=np.float32)
_EMPTY = 24  # grey level of world area with no picture


def heat_to_rgb(counts: np.ndarray) -> np.ndarray:
    """Map a 2-D array of visit counts to an RGB uint8 image (log scale, 0 stays black)."""
    scaled = np.log1p(np.asarray(counts, dtype=np.float32))
    top = float(scaled.max())
    return _ramp(scaled / top if top > 0 else scaled)


def _ramp(x: np.ndarray) -> np.ndarray:
    pos = x * (len(_RAMP) - 1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, len(_RAMP) - 2)
    frac = (pos - lo)[..., None]
    return (_RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac).astype(np.uint8)


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


def world_scale(world: WorldMap, screen: ScreenGeometry, max_pixels: int = BACKDROP_PIXELS) -> int:
    """Heat-map pixels per world step: the screen's own, unless the whole world would exceed ``max_pixels``."""
    fit = int(math.sqrt(max_pixels / (world.width * world.height)))
    return max(1, min(screen.step_pixels, fit))


def shrink(frame: np.ndarray, screen: ScreenGeometry, scale: int) -> np.ndarray:
    """A (144, 160, 3) screen (or one shrunk before) at ``scale`` pixels per step (box filter)."""
    size = (SCREEN_W * scale // screen.step_pixels, SCREEN_H * scale // screen.step_pixels)
    if (frame.shape[1], frame.shape[0]) == size:
        return np.array(frame, np.uint8)
    return np.asarray(Image.fromarray(np.asarray(frame, np.uint8)).resize(size, Image.BOX))


class ScreenCapture:
    """The screens one env keeps in an episode: one per map (whole-map screens) or per half-screen
    chunk of a map (scrolling screens), shrunk to the heat map's scale, at most ``max_screens``."""

    def __init__(self, world: WorldMap, screen: ScreenGeometry, max_screens: int = SCREENS_PER_EPISODE) -> None:
        self.screen, self.max_screens = screen, max_screens
        self.scale = world_scale(world, screen)
        cols, rows = SCREEN_W // screen.step_pixels, SCREEN_H // screen.step_pixels
        self.chunk = (max(1, cols // 2), max(1, rows // 2))  # a screen around any step of a chunk covers it
        self.keys: set[tuple[int, ...]] = set()
        self.screens: list[tuple[int, int, int, np.ndarray]] = []

    def offer(self, map_id: int, x: int, y: int, grab: Callable[[], np.ndarray]) -> None:
        """Keep ``grab()`` if this place's chunk has no screen yet (``grab`` is called only then)."""
        key = (map_id, x // self.chunk[0], y // self.chunk[1]) if self.screen.scrolls else (map_id,)
        if key in self.keys or len(self.screens) >= self.max_screens or not self.screen.placeable:
            return
        self.keys.add(key)
        self.screens.append((map_id, x, y, shrink(grab(), self.screen, self.scale)))

    def take(self) -> list[tuple[int, int, int, np.ndarray]]:
        """The episode's screens ``(map_id, x, y, image)``; starts a new episode's."""
        out, self.screens, self.keys = self.screens, [], set()
        return out


class Backdrop:
    """The world grid painted with captured screens (newest on top), at ``world_scale`` px a step."""

    def __init__(self, world: WorldMap, screen: ScreenGeometry, max_pixels: int = BACKDROP_PIXELS) -> None:
        self.world, self.screen = world, screen
        self.scale = world_scale(world, screen, max_pixels)
        shape = (world.height * self.scale, world.width * self.scale)
        self.image = np.zeros((*shape, 3), np.uint8)
        self.painted = np.zeros(shape, bool)

    def paint(self, map_id: int, x: int, y: int, shot: np.ndarray) -> None:
        """Paste one screen taken at step ``(x, y)`` of ``map_id``, clipped to that map's rectangle."""
        if map_id not in self.world.offsets or not self.screen.placeable:
            return
        s = self.scale
        shot = shrink(shot, self.screen, s)  # a no-op unless the capture had another scale
        mx, my, mw, mh = self.world.map_rect(map_id)
        px, py = (self.screen.player or (0, 0)) if self.screen.scrolls else (x, y)  # whole maps: from the origin
        left, top = (mx + x - px) * s, (my + y - py) * s
        x0, y0 = max(left, mx * s, 0), max(top, my * s, 0)
        x1 = min(left + shot.shape[1], (mx + mw) * s, self.image.shape[1])
        y1 = min(top + shot.shape[0], (my + mh) * s, self.image.shape[0])
        if x1 > x0 and y1 > y0:
            self.image[y0:y1, x0:x1] = shot[y0 - top : y1 - top, x0 - left : x1 - left]
            self.painted[y0:y1, x0:x1] = True

    def add(self, screens: Iterable[tuple[int, int, int, np.ndarray]]) -> None:
        """Paint an episode summary's ``screens``."""
        for map_id, x, y, shot in screens:
            self.paint(int(map_id), int(x), int(y), shot)


def draw_heatmap(world: WorldMap, visits: VisitMap, scale: int, backdrop: Backdrop | None = None,
                 margin: int = 4) -> np.ndarray:
    """An RGB image: the visited area plus ``margin`` steps, visits blended over the backdrop, maps
    never visited outlined, and a colour legend (visits per tile) underneath."""
    counts = visits.world(world.offsets, (world.width, world.height))
    ys, xs = np.nonzero(counts)
    if len(xs):
        x0, x1 = max(int(xs.min()) - margin, 0), min(int(xs.max()) + 1 + margin, world.width)
        y0, y1 = max(int(ys.min()) - margin, 0), min(int(ys.max()) + 1 + margin, world.height)
    else:
        x0, y0, x1, y1 = 0, 0, world.width, world.height
    s = scale if backdrop is None else backdrop.scale
    crop = counts[y0:y1, x0:x1]
    base = np.full((crop.shape[0] * s, crop.shape[1] * s, 3), _EMPTY, np.float32)
    if backdrop is not None:
        window = (slice(y0 * s, y1 * s), slice(x0 * s, x1 * s))
        base = np.where(backdrop.painted[window][..., None], backdrop.image[window], base).astype(np.float32)
    heat = heat_to_rgb(crop).repeat(s, 0).repeat(s, 1).astype(np.float32)
    hot = (crop > 0).repeat(s, 0).repeat(s, 1)[..., None]
    image = Image.fromarray(np.where(hot, 0.3 * base + 0.7 * heat, 0.6 * base).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for map_id in world.offsets:
        mx, my, mw, mh = world.map_rect(map_id)
        if counts[max(my, 0) : my + mh, max(mx, 0) : mx + mw].any():
            continue
        box = ((mx - x0) * s, (my - y0) * s, (mx - x0 + mw) * s - 1, (my - y0 + mh) * s - 1)
        if box[2] >= 0 and box[3] >= 0 and box[0] < image.width and box[1] < image.height:
            draw.rectangle(box, outline=(110, 110, 110))
    return np.asarray(_with_legend(image, int(crop.max())))


def readable(image: np.ndarray, width: int = READABLE_WIDTH, most: int = 4) -> np.ndarray:
    """``image`` (a drawn heat map, legend included) scaled up by the whole factor (at most ``most``) that
    makes it at least ``width`` wide: a few maps' worth is 240 px with 6-px labels otherwise."""
    return upscale(image, max(1, min(most, -(-width // image.shape[1]))))


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of an (H, W, C) image (every pixel a ``factor`` x ``factor`` block)."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def _with_legend(image: Image.Image, top: int) -> Image.Image:
    """``image`` with the colour scale underneath: log-scaled like the heat, labelled in visits per tile."""
    width = max(image.width, MIN_WIDTH)
    out = Image.new("RGB", (width, image.height + LEGEND_HEIGHT), (_EMPTY,) * 3)
    out.paste(image, (0, 0))
    bar_x0, bar_x1, bar_y = 8, width - 8, image.height + 4
    one = min(math.log(2) / math.log1p(top), 1.0) if top > 0 else 0.0  # where 1 visit sits on the log scale
    ramp = _ramp(np.linspace(one, 1.0, bar_x1 - bar_x0, dtype=np.float32))
    out.paste(Image.fromarray(np.repeat(ramp[None], 10, 0)), (bar_x0, bar_y))
    draw = ImageDraw.Draw(out)
    text_y = bar_y + 12
    draw.text((bar_x0, text_y), "1", fill=(230, 230, 230))
    label = f"{max(top, 1):,}"
    draw.text((bar_x1 - draw.textlength(label), text_y), label, fill=(230, 230, 230))
    middle = "visits per tile (log)"
    draw.text(((width - draw.textlength(middle)) / 2, text_y), middle, fill=(230, 230, 230))
    return out
