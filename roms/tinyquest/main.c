/* tinyquest entry point: hardware set-up, the per-frame loop, joypad, RNG and ballast. */
#include "tq.h"

/* Default per-frame busy-wait count (see README: chosen so raw PyBoy speed ~ Pokemon Red). */
#ifndef TQ_BALLAST_DEFAULT
#define TQ_BALLAST_DEFAULT 125
#endif

uint8_t joy_held, joy_new;

uint16_t get16(volatile uint8_t *p) { return ((uint16_t)p[0] << 8) | p[1]; }

void set16(volatile uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* 16-bit xorshift on tq_rng (big-endian); state 0 means "use a fixed nonzero constant". */
uint8_t rand8(void) {
  uint16_t s = get16(tq_rng);
  if (s == 0) s = 0xACE1;
  s ^= s << 7;
  s ^= s >> 9;
  s ^= s << 8;
  set16(tq_rng, s);
  return (uint8_t)(s ^ (s >> 8));
}

uint8_t event_get(uint8_t ev) { return tq_events[ev >> 3] & (uint8_t)(1 << (ev & 7)); }

void event_set(uint8_t ev) { tq_events[ev >> 3] |= (uint8_t)(1 << (ev & 7)); }

static void read_joypad(void) {
  uint8_t d, b, now;
  P1 = 0x20; /* select the d-pad */
  d = P1;
  d = P1;
  P1 = 0x10; /* select the buttons */
  b = P1;
  b = P1;
  b = P1;
  P1 = 0x30;
  now = (uint8_t)((~d) & 0x0F) | (uint8_t)(((~b) & 0x0F) << 4);
  joy_new = now & (uint8_t)~joy_held;
  joy_held = now;
}

/* Emulated-CPU cost knob: tq_ballast units of a fixed inner loop, every frame. */
static void ballast(void) {
  uint8_t n = tq_ballast;
  while (n) {
    volatile uint8_t i = 4;
    while (i) i--;
    n--;
  }
}

static void wait_vblank(void) {
  /* The VBlank interrupt (vector 0x40, a bare reti) wakes HALT. */
  IF_REG = 0;
  __asm__("halt");
  __asm__("nop");
}

static void load_tiles(void) {
  const uint8_t *s = font_tiles;
  uint8_t *d = VRAM_TILES;
  uint16_t n = 2048;
  while (n--) *d++ = *s++;
}

static void new_game(void) {
  tq_level = 1;
  set16(tq_max_hp, 18);
  set16(tq_hp, 18);
  set16(tq_xp, 0);
  tq_ballast = TQ_BALLAST_DEFAULT;
  tq_facing = 0;
}

void main(void) {
  uint8_t i;
  NR52 = 0; /* sound off */
  /* LCD off only inside VBlank */
  if (LCDC & 0x80) {
    while (LY < 144) {
    }
    LCDC = 0;
  }
  load_tiles();
  for (i = 0; i < 160; i++) OAM[i] = 0;
  OAM[2] = '@';
  BGP = 0xE4;
  OBP0 = 0xE4;
  OBP1 = 0xE4;
  SCX = 0;
  SCY = 0;
  new_game();
  world_enter(MAP_TOWN, 9, 9);
  /* first full screen while the LCD is still off */
  for (i = 0; i < 18; i++) {
    screen_flush();
  }
  LCDC = 0x93; /* LCD on, BG tiles at 0x8000, map 0x9800, sprites on, BG on */
  IE_REG = 0x01;
  __asm__("ei");
  for (;;) {
    wait_vblank();
    screen_flush();
    sprite_player(tq_in_battle == 0);
    read_joypad();
    set16(tq_frame, get16(tq_frame) + 1);
    rand8(); /* the RNG also ticks every frame, so timing matters (as in Pokemon) */
    if (tq_state == ST_TEXT) {
      text_update();
    } else if (tq_state == ST_MENU) {
      battle_menu_update();
    } else {
      world_update();
    }
    ballast();
  }
}
