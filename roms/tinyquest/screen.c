/* Shadow screen: game code edits scr[], VBlank copies a few dirty rows into VRAM. */
#include "tq.h"

uint8_t scr[18 * 20];
uint8_t dirty_rows[18];

static uint8_t fl_budget, fl_left;

/* Copy at most two dirty rows of scr[] into the BG map (0x9800). With the LCD on it only
   starts early in VBlank (LY 144..146) and then finishes within it (worst case ~1000 cycles).
   Hand-written: SDCC's loop was too slow for VBlank. */
void screen_flush(void) __naked {
  __asm
    ldh  a, (#0xff40)
    bit  7, a
    jr   z, 90$
    ldh  a, (#0xff44)
    cp   #144
    ret  c
    cp   #147
    ret  nc
90$:
    ld   a, #2
    ld   (#_fl_budget), a
    ld   a, #18
    ld   (#_fl_left), a
    ld   hl, #_dirty_rows
    ld   de, #_scr
    ld   bc, #0x9800
91$:
    ld   a, (hl)
    or   a
    jr   z, 94$
    xor  a
    ld   (hl), a
    push hl
    push bc
    push de
    ld   h, b
    ld   l, c
    ld   c, #20
93$:
    ld   a, (de)
    inc  de
    ld   (hl+), a
    dec  c
    jr   nz, 93$
    pop  de
    pop  bc
    pop  hl
    ld   a, (#_fl_budget)
    dec  a
    ld   (#_fl_budget), a
    ret  z
94$:
    inc  hl
    ld   a, e
    add  a, #20
    ld   e, a
    jr   nc, 95$
    inc  d
95$:
    ld   a, c
    add  a, #32
    ld   c, a
    jr   nc, 96$
    inc  b
96$:
    ld   a, (#_fl_left)
    dec  a
    ld   (#_fl_left), a
    jr   nz, 91$
    ret
  __endasm;
}

void screen_mark_all(void) {
  uint8_t i;
  for (i = 0; i < 18; i++) dirty_rows[i] = 1;
}

void screen_fill_row(uint8_t row, uint8_t ch) {
  uint8_t *d = scr + (uint16_t)row * 20;
  uint8_t n = 20;
  while (n--) *d++ = ch;
  dirty_rows[row] = 1;
}

void screen_text(uint8_t row, uint8_t col, const char *s) {
  uint8_t *d = scr + (uint16_t)row * 20 + col;
  while (*s && col < 20) {
    *d++ = (uint8_t)*s++;
    col++;
  }
  dirty_rows[row] = 1;
}

/* Right-aligned decimal number in a field of the given width. */
void screen_num(uint8_t row, uint8_t col, uint16_t v, uint8_t width) {
  uint8_t *d = scr + (uint16_t)row * 20 + col + width - 1;
  do {
    *d-- = (uint8_t)('0' + v % 10);
    v /= 10;
    width--;
  } while (v && width);
  while (width--) *d-- = ' ';
  dirty_rows[row] = 1;
}

/* Player sprite (OAM entry 0) at the player's tile; hidden in battles. */
void sprite_player(uint8_t visible) {
  if (visible) {
    OAM[0] = (uint8_t)(tq_y * 8 + 16);
    OAM[1] = (uint8_t)(tq_x * 8 + 8);
  } else {
    OAM[0] = 0;
  }
}
