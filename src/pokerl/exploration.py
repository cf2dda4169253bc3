"""Exploration bookkeeping: per-map visit counts and the ``visited`` observation around the player.

Visit counts are kept per map as flat row-major lists of Python ints (a list update per step is much
cheaper than numpy scalar indexing); :meth:`Exploration.grid` gives a map's numpy array for
summaries and snapshots. The ``visited`` observation is the explored mask of the current map,
centred on the player and scaled to the 72x80 screen; it is rebuilt only when the player moves or
a tile is first visited.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pokerl.spec import OBS_H, OBS_W


class Exploration:
    """One episode's visits on a grid of ``map_shape`` = (height, width) tiles per map."""

    def __init__(self, map_shape: tuple[int, int], cell: int) -> None:
        """``cell``: pixels of the 72x80 observation per map tile."""
        self.map_shape, self.cell = map_shape, cell
        self.crop_tiles = (-(-OBS_H // cell), -(-OBS_W // cell))
        th, tw = self.crop_tiles
        self._crop = np.zeros((th * cell, tw * cell), np.uint8)  # scaled-up crop, reused every step
        self._crop_obs = self._crop[:OBS_H, :OBS_W, None]  # the part that is observed (a view)
        # _version counts changes of the visited sets (first visits, reset, restore); the crop is
        # rebuilt only when (position, version) changes.
        self._version = 0
        self._crop_key: tuple[tuple[int, int, int], int] | None = None
        self.visits: dict[int, list[int]] = {}
        self._seen: dict[int, np.ndarray] = {}  # per map: visited tiles as 0/255, padded (see _seen_mask)

    def reset(self) -> None:
        """Forget every visit (a new episode)."""
        self.visits = {}
        self._seen = {}
        self._version += 1

    def visit(self, map_id: int, x: int, y: int) -> bool:
        """Count a visit to a tile; True when it is the first visit this episode."""
        counts = self.visits.get(map_id)
        h, w = self.map_shape
        if counts is None:
            counts = self.visits[map_id] = [0] * (h * w)
        if not (0 <= y < h and 0 <= x < w):
            return False
        i = y * w + x
        counts[i] += 1
        if counts[i] == 1:
            self._version += 1
            mask = self._seen.get(map_id)
            if mask is not None:
                th, tw = self.crop_tiles
                mask[y + th, x + tw] = 255
            return True
        return False

    def grid(self, map_id: int) -> np.ndarray:
        """A map's visit counts as an int32 (height, width) array (a new array)."""
        return np.array(self.visits[map_id], np.int32).reshape(self.map_shape)

    def _seen_mask(self, map_id: int) -> np.ndarray | None:
        """A map's visited tiles as 0/255, padded by the crop size on every side (built on first use)."""
        mask = self._seen.get(map_id)
        if mask is None:
            if map_id not in self.visits:
                return None
            grid = self.grid(map_id)
            th, tw = self.crop_tiles
            h, w = grid.shape
            mask = self._seen[map_id] = np.zeros((h + 2 * th, w + 2 * tw), np.uint8)
            mask[th : th + h, tw : tw + w] = grid > 0
            mask *= 255
        return mask

    def crop(self, pos: tuple[int, int, int]) -> np.ndarray:
        """The explored mask of the current map, centred on ``pos`` = (map, x, y), as (72, 80, 1) uint8."""
        key = (pos, self._version)
        if key == self._crop_key:
            return self._crop_obs.copy()
        self._crop_key = key
        th, tw = self.crop_tiles
        map_id, x, y = pos
        h, w = self.map_shape
        mask = self._seen_mask(map_id) if (0 <= y < h and 0 <= x < w) else None
        if mask is not None:  # the usual case: a view of the padded mask, no bounds arithmetic
            y0, x0 = y - th // 2 + th, x - tw // 2 + tw
            tiles = mask[y0 : y0 + th, x0 : x0 + tw]
        elif map_id in self.visits:  # off the map grid: clip by hand
            grid = self.grid(map_id)
            tiles = np.zeros((th, tw), np.uint8)
            y0, x0 = y - th // 2, x - tw // 2
            sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y0 + th, h), min(x0 + tw, w)
            if sy1 > sy0 and sx1 > sx0:
                tiles[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = grid[sy0:sy1, sx0:sx1] > 0
                tiles *= 255
        else:
            tiles = np.zeros((th, tw), np.uint8)
        cell, big = self.cell, self._crop
        # each tile -> cell x cell pixels: repeat along x, then broadcast each row over cell rows
        big.reshape(th, cell, tw * cell)[...] = tiles.repeat(cell, 1)[:, None, :]
        return self._crop_obs.copy()

    def summary(self) -> dict[int, list[list[int]]]:
        """Every visited tile as ``{map_id: [[x, y, count], ...]}`` (plain types, for episode summaries)."""
        visits = {}
        for map_id in self.visits:
            grid = self.grid(map_id)
            ys, xs = np.nonzero(grid)
            visits[int(map_id)] = [[int(x), int(y), int(grid[y, x])] for y, x in zip(ys, xs, strict=True)]
        return visits

    def maps_visited(self) -> list[int]:
        return sorted(int(m) for m, counts in self.visits.items() if any(counts))

    def state_dict(self) -> dict[int, bytes]:
        """The visit counts as ``{map_id: int32 bytes}`` (for snapshots)."""
        return {int(m): self.grid(m).tobytes() for m in self.visits}

    def load_state_dict(self, state: Mapping[Any, bytes]) -> None:
        self.visits = {int(m): np.frombuffer(g, np.int32).reshape(self.map_shape).ravel().tolist()
                       for m, g in state.items()}
        self._seen = {}
        self._version += 1
