"""Heat maps: the background painter on synthetic screens of a scrolling game, captures, crop and legend."""

from __future__ import annotations

import numpy as np

from pokerl.heatmap import LEGEND_HEIGHT, Backdrop, ScreenCapture, VisitMap, draw_heatmap
from pokerl.profile import ScreenGeometry, WorldMap

# Two 30x20-step maps side by side, a Pokémon-like screen: 16 px a step, 10x9 steps, the player at (4, 4).
WORLD = WorldMap({0: (0, 0), 1: (30, 0)}, width=60, height=20, map_width=30, map_height=20)
SCROLLING = ScreenGeometry(scrolls=True, step_pixels=16, player=(4, 4))


def synthetic_screen(tag: int) -> np.ndarray:
    """A 144x160 screen whose step cell (col, row) is coloured (tag, col * 20, row * 20)."""
    frame = np.zeros((144, 160, 3), np.uint8)
    for row in range(9):
        for col in range(10):
            frame[row * 16 : (row + 1) * 16, col * 16 : (col + 1) * 16] = (tag, col * 20, row * 20)
    return frame


def cell(backdrop: Backdrop, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """The backdrop's pixels and painted mask of world step (x, y)."""
    s = backdrop.scale
    return backdrop.image[y * s : (y + 1) * s, x * s : (x + 1) * s], backdrop.painted[y * s : (y + 1) * s,
                                                                                       x * s : (x + 1) * s]


def test_painter_fills_the_steps_around_the_player_at_their_place() -> None:
    backdrop = Backdrop(WORLD, SCROLLING, max_pixels=60 * 20 * 16)  # room for 4 px a step: screens shrink
    assert backdrop.scale == 4
    capture = ScreenCapture(WORLD, SCROLLING)
    capture.offer(0, 10, 8, lambda: synthetic_screen(50))
    capture.offer(0, 27, 8, lambda: synthetic_screen(90))  # near map 1: the screen overlaps it
    backdrop.add(capture.take())
    pixels, painted = cell(backdrop, 10, 8)
    assert painted.all() and (pixels == (50, 4 * 20, 4 * 20)).all()  # the player's own cell
    pixels, painted = cell(backdrop, 6, 4)
    assert painted.all() and (pixels == (50, 0, 0)).all()  # the screen's top-left cell
    pixels, _ = cell(backdrop, 15, 12)
    assert (pixels == (50, 9 * 20, 8 * 20)).all()  # its bottom-right cell
    for x, y in [(5, 8), (10, 3), (10, 13), (16, 8)]:  # just outside that screen
        assert not cell(backdrop, x, y)[1].any(), (x, y)
    pixels, painted = cell(backdrop, 29, 8)
    assert painted.all() and (pixels == (90, 6 * 20, 4 * 20)).all()
    assert not backdrop.painted[:, 30 * 4 :].any()  # map 1's rectangle is not painted from map 0's screen


def test_capture_keeps_one_screen_per_chunk_and_stops_at_its_cap() -> None:
    capture = ScreenCapture(WORLD, SCROLLING, max_screens=3)
    grabs: list[tuple[int, int]] = []
    for x, y in [(0, 0), (1, 1), (4, 3), (5, 0), (5, 4), (20, 10), (25, 15)]:
        capture.offer(0, x, y, lambda x=x, y=y: (grabs.append((x, y)), synthetic_screen(1))[1])
    assert grabs == [(0, 0), (5, 0), (5, 4)]  # chunks of 5x4 steps; the fourth new chunk is over the cap
    shots = capture.take()
    assert [(m, x, y) for m, x, y, _ in shots] == [(0, 0, 0), (0, 5, 0), (0, 5, 4)]
    assert shots[0][3].shape == (144 * 16 // 16, 160, 3)  # the screen's own 16 px a step (room to spare)
    assert capture.take() == []
    whole = ScreenCapture(WORLD, ScreenGeometry(scrolls=False, step_pixels=8))
    for x in range(10):
        whole.offer(1, x, 3, lambda: synthetic_screen(2))
    assert len(whole.take()) == 1  # a whole-map screen: one per map


def test_draw_crops_to_the_visits_outlines_unvisited_maps_and_adds_a_legend() -> None:
    world = WorldMap({0: (0, 0), 1: (30, 0), 2: (0, 40)}, width=60, height=60, map_width=30, map_height=20)
    visits = VisitMap((20, 30))
    visits.add({0: [[22, 10, 5], [23, 10, 40], [26, 12, 1]]})
    image = draw_heatmap(world, visits, scale=8)
    # steps 18..30 x 6..16 (the visits ± 4), 8 px a step, the legend under it, padded to the legend's width
    assert image.shape == (11 * 8 + LEGEND_HEIGHT, 240, 3)
    x, y = (23 - 18) * 8 + 4, (10 - 6) * 8 + 4
    colours = [tuple(image[y, x]), tuple(image[y, x - 8]), tuple(image[y + 16, x + 24]), tuple(image[y, x + 8])]
    assert len(set(colours)) == 4  # 40, 5, 1 and 0 visits
    hottest, unvisited = np.array(colours[0], int), np.array(colours[3], int)
    assert hottest[0] > 170 and hottest[0] > hottest[2] + 100  # the top of the ramp (yellow), over dark grey
    assert (unvisited < 30).all()  # no picture there: dark grey
    assert (image[: 11 * 8, (30 - 18) * 8] == 110).all()  # map 1 (never visited) outlined at its left edge
    assert not (image[: 11 * 8, (30 - 18) * 8 - 8] == 110).all()
    legend = image[-LEGEND_HEIGHT:]
    assert legend[4:14, 8:-8].std() > 20  # the colour scale is drawn


def test_screens_near_the_world_origin_are_clipped_and_drawn_under_the_heat() -> None:
    backdrop = Backdrop(WORLD, SCROLLING, max_pixels=60 * 20 * 16)
    backdrop.paint(0, 1, 1, synthetic_screen(200))  # the screen starts 3 steps left of and above the world
    pixels, painted = cell(backdrop, 0, 0)
    assert painted.all() and (pixels == (200, 3 * 20, 3 * 20)).all()  # screen cell (3, 3) lands on step (0, 0)
    assert backdrop.painted[: 6 * 4, : 7 * 4].all() and not backdrop.painted[6 * 4 :].any()
    visits = VisitMap((20, 30))
    visits.add({0: [[1, 1, 3]]})
    image = draw_heatmap(WORLD, visits, scale=1, backdrop=backdrop)  # the backdrop's scale wins: 4 px a step
    assert image.shape[:2] == ((1 + 1 + 4) * 4 + LEGEND_HEIGHT, 240)
    under = image[2 * 4 + 1, 0 * 4 + 1].astype(int)  # step (0, 2): not visited, painted: the picture, dimmed
    assert tuple(under) == tuple(int(0.6 * v) for v in (200, 3 * 20, 5 * 20))


def test_scrolling_screens_without_the_players_place_are_not_captured() -> None:
    unknown = ScreenGeometry(scrolls=True, step_pixels=16)  # an older profile: no `player`
    capture = ScreenCapture(WORLD, unknown)
    capture.offer(0, 10, 8, lambda: synthetic_screen(50))
    assert capture.take() == []
    backdrop = Backdrop(WORLD, unknown)
    backdrop.paint(0, 10, 8, synthetic_screen(50))
    assert not backdrop.painted.any()
