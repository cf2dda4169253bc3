/* Text boxes: a queue of two-line messages shown in screen rows 16-17; A closes each one. */
#include "tq.h"

#define QMAX 6
static char queue[QMAX][40];
static uint8_t q_len, q_pos, end_action;

static void copy_line(char *d, const char *s) {
  uint8_t n = 20;
  while (n && *s) {
    *d++ = *s++;
    n--;
  }
  while (n--) *d++ = ' ';
}

void text_clear(void) {
  q_len = 0;
  q_pos = 0;
}

void text_push(const char *line1, const char *line2) {
  if (q_len >= QMAX) return;
  copy_line(queue[q_len], line1);
  copy_line(queue[q_len] + 20, line2);
  q_len++;
}

/* Message "line1" / "prefix<v>suffix". */
void text_push_num(const char *line1, const char *prefix, uint16_t v, const char *suffix) {
  char buf[21];
  char digits[6];
  uint8_t i = 0, n = 0;
  while (*prefix && i < 20) buf[i++] = *prefix++;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n && i < 20) buf[i++] = digits[--n];
  while (*suffix && i < 20) buf[i++] = *suffix++;
  buf[i] = 0;
  text_push(line1, buf);
}

static void show_current(void) {
  const uint8_t *s = (const uint8_t *)queue[q_pos];
  uint8_t *d = scr + 16 * 20;
  uint8_t n = 40;
  while (n--) *d++ = *s++;
  dirty_rows[16] = 1;
  dirty_rows[17] = 1;
}

/* Open the queued messages; end is one of END_* and runs after the last one closes. */
void text_begin(uint8_t end) {
  end_action = end;
  q_pos = 0;
  if (q_len == 0) {
    tq_text = 0;
    return;
  }
  tq_state = ST_TEXT;
  tq_text = 1;
  show_current();
}

static void run_end(uint8_t end) {
  switch (end) {
  case END_MENU:
    tq_state = ST_MENU;
    battle_prompt();
    break;
  case END_LEAVE_BATTLE:
    battle_leave();
    break;
  case END_BLACKOUT:
    world_blackout();
    break;
  case END_BOSS1:
    battle_start(2, 1);
    break;
  case END_BOSS2:
    battle_start(2, 2);
    break;
  default:
    tq_state = tq_in_battle ? ST_MENU : ST_WALK;
    status_draw();
    break;
  }
}

void text_update(void) {
  if (!(joy_new & J_A)) return;
  q_pos++;
  if (q_pos < q_len) {
    show_current();
    return;
  }
  tq_text = 0;
  q_len = 0;
  tq_state = ST_WALK;
  run_end(end_action);
}

/* Status lines (rows 16-17) while no text box is open. */
void status_draw(void) {
  screen_fill_row(16, ' ');
  screen_fill_row(17, ' ');
  screen_text(16, 0, map_names[tq_map]);
  screen_text(16, 13, "LV");
  screen_num(16, 16, tq_level, 3);
  screen_text(17, 0, "HP");
  screen_num(17, 2, get16(tq_hp), 3);
  screen_text(17, 5, "/");
  screen_num(17, 6, get16(tq_max_hp), 3);
  screen_text(17, 11, "BADGES");
  screen_num(17, 18, (tq_badges & 1) + ((tq_badges >> 1) & 1), 2);
}
