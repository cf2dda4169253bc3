/* Shadow screen: game code edits scr[], VBlank copies a few dirty rows into VRAM. */
#include "tq.h"

uint8_t scr[18 * 20];
uint8_t dirty_rows[18];

/* Copy at most two dirty rows (they fit in one VBlank). */
void screen_flush(void) {
  uint8_t row, done = 0;
  for (row = 0; row < 18 && done < 2; row++) {
    if (dirty_rows[row]) {
      const uint8_t *s = scr + (uint16_t)row * 20;
      uint8_t *d = VRAM_BG + ((uint16_t)row << 5);
      uint8_t n = 20;
      dirty_rows[row] = 0;
      while (n--) *d++ = *s++;
      done++;
    }
  }
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
