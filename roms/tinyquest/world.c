/* Overworld: map drawing, walking, doors and map edges, signs, the key, heal pad, grass. */
#include "tq.h"

static uint8_t hold_timer;

#define HEAL_X 10
#define HEAL_Y 8

/* Tile at (x, y) of the current map after events (key taken, gate opened). */
static uint8_t tile_at(uint8_t x, uint8_t y) {
  uint8_t t = map_tiles[tq_map][(uint16_t)y * MAP_W + x];
  if (t == '$' && event_get(EV_GOT_KEY)) return ' ';
  if (t == '=' && event_get(EV_DOOR_UNLOCKED)) return '+';
  return t;
}

void world_draw(void) {
  const uint8_t *s = map_tiles[tq_map];
  uint8_t *d = scr;
  uint8_t key_gone = event_get(EV_GOT_KEY), gate_open = event_get(EV_DOOR_UNLOCKED);
  uint16_t n = MAP_W * MAP_H;
  uint8_t y;
  while (n--) {
    uint8_t t = *s++;
    if (t == '$' && key_gone) t = ' ';
    else if (t == '=' && gate_open) t = '+';
    *d++ = t;
  }
  for (y = 0; y < MAP_H; y++) dirty_rows[y] = 1;
  status_draw();
}

static void set_tile_shown(uint8_t x, uint8_t y, uint8_t t) {
  scr[(uint16_t)y * 20 + x] = t;
  dirty_rows[y] = 1;
}

void world_enter(uint8_t map, uint8_t x, uint8_t y) {
  tq_map = map;
  tq_x = x;
  tq_y = y;
  if (map == 2) event_set(EV_FOREST);
  if (map == 4) event_set(EV_ROUTE2);
  world_draw();
  if (map == MAP_FINAL) {
    event_set(EV_FINAL);
    text_clear();
    if ((tq_badges & 3) == 3) {
      tq_complete = 1;
      text_push("THE TROPHY IS YOURS!", "YOU BEAT TINYQUEST!");
    } else {
      text_push("THE TROPHY ROOM.", "BRING BOTH BADGES.");
    }
    text_begin(END_NONE);
  }
}

void world_blackout(void) {
  if (tq_blackouts != 255) tq_blackouts++;
  tq_in_battle = 0;
  tq_enemy_hp = 0;
  tq_enemy_level = 0;
  set16(tq_hp, get16(tq_max_hp));
  tq_state = ST_WALK;
  world_enter(MAP_TOWN, HEAL_X, HEAL_Y);
}

static void say(const char *a, const char *b) {
  text_clear();
  text_push(a, b);
  text_begin(END_NONE);
}

static void use_warp(void) {
  uint8_t i;
  for (i = 0; i < n_warps; i++) {
    const uint8_t *w = warp_table[i];
    if (w[0] == tq_map && w[1] == tq_x && w[2] == tq_y) {
      world_enter(w[3], w[4], w[5]);
      return;
    }
  }
}

static void talk_boss(void) {
  text_clear();
  if (tq_map == 3) {
    if (event_get(EV_BOSS1)) {
      say("ROCKO: YOU HAVE MY", "BADGE. GO ON!");
      return;
    }
    text_push("ROCKO: I AM THE", "GYM 1 LEADER.");
    text_push("ROCKO: SHOW ME", "WHAT YOU'VE GOT!");
    text_begin(END_BOSS1);
  } else {
    if (event_get(EV_BOSS2)) {
      say("MIRA: WELL FOUGHT.", "THE TROPHY AWAITS.");
      return;
    }
    text_push("MIRA: I AM THE GYM 2", "LEADER. BE READY!");
    text_begin(END_BOSS2);
  }
}

/* React to the solid tile t at (x, y) the player walked into or faced with A. */
static void touch(uint8_t t, uint8_t x, uint8_t y, uint8_t by_a) {
  uint8_t i;
  if (t == '&') {
    talk_boss();
  } else if (t == '$') {
    event_set(EV_GOT_KEY);
    set_tile_shown(x, y, ' ');
    say("YOU FOUND A KEY!", "IT FITS A GATE.");
  } else if (t == '=') {
    if (event_get(EV_GOT_KEY)) {
      event_set(EV_DOOR_UNLOCKED);
      set_tile_shown(x, y, '+');
      say("YOU USED THE KEY.", "THE GATE OPENED!");
    } else {
      say("THE GATE IS LOCKED.", "IT NEEDS A KEY.");
    }
  } else if (t == '%' && by_a) {
    say("A SHINY TROPHY.", "");
  } else if (t == '|' && by_a) {
    for (i = 0; i < n_signs; i++) {
      if (sign_table[i][0] == tq_map && sign_table[i][1] == x && sign_table[i][2] == y) {
        text_clear();
        text_push(sign_text[i], sign_text[i] + 20);
        text_begin(END_NONE);
        return;
      }
    }
  }
}

static uint8_t solid(uint8_t t) {
  return t == '^' || t == '#' || t == '~' || t == '|' || t == '%' || t == '&' || t == '$' || t == '=';
}

static void step_on(uint8_t t) {
  uint16_t steps = get16(tq_steps) + 1;
  set16(tq_steps, steps);
  if (t == '+') {
    use_warp();
  } else if (t == '*') {
    set16(tq_hp, get16(tq_max_hp));
    event_set(EV_HEALED);
    status_draw();
    say("YOU FEEL REFRESHED.", "HP IS FULL AGAIN.");
  } else if (t == '"') {
    if (rand8() < 40) {
      uint8_t lo = map_wild[tq_map][0];
      uint8_t span = (uint8_t)(map_wild[tq_map][1] - lo + 1);
      battle_start(1, (uint8_t)(lo + rand8() % span));
    }
  }
}

static void try_move(int8_t dx, int8_t dy) {
  int8_t nx = (int8_t)tq_x + dx;
  int8_t ny = (int8_t)tq_y + dy;
  uint8_t t, nb = 0xFF;
  if (nx < 0) {
    nb = map_edges[tq_map][2];
    nx = MAP_W - 1;
  } else if (nx >= MAP_W) {
    nb = map_edges[tq_map][3];
    nx = 0;
  } else if (ny < 0) {
    nb = map_edges[tq_map][0];
    ny = MAP_H - 1;
  } else if (ny >= MAP_H) {
    nb = map_edges[tq_map][1];
    ny = 0;
  } else {
    t = tile_at((uint8_t)nx, (uint8_t)ny);
    if (solid(t)) {
      touch(t, (uint8_t)nx, (uint8_t)ny, 0);
      return;
    }
    tq_x = (uint8_t)nx;
    tq_y = (uint8_t)ny;
    step_on(t);
    return;
  }
  if (nb != 0xFF) world_enter(nb, (uint8_t)nx, (uint8_t)ny);
}

void world_update(void) {
  uint8_t dir = 0;
  if (joy_new & J_A) {
    int8_t fx = (int8_t)tq_x, fy = (int8_t)tq_y;
    if (tq_facing == 0) fy++;
    else if (tq_facing == 1) fy--;
    else if (tq_facing == 2) fx--;
    else fx++;
    if (fx >= 0 && fx < MAP_W && fy >= 0 && fy < MAP_H) {
      uint8_t t = tile_at((uint8_t)fx, (uint8_t)fy);
      touch(t, (uint8_t)fx, (uint8_t)fy, 1);
    }
    return;
  }
  if (joy_held & 0x0F) {
    if (joy_new & 0x0F) {
      dir = joy_new;
      hold_timer = 0;
    } else {
      hold_timer++;
      if (hold_timer >= 16 && (hold_timer & 7) == 0) dir = joy_held;
    }
  } else {
    hold_timer = 0;
  }
  if (dir & J_DOWN) {
    tq_facing = 0;
    try_move(0, 1);
  } else if (dir & J_UP) {
    tq_facing = 1;
    try_move(0, -1);
  } else if (dir & J_LEFT) {
    tq_facing = 2;
    try_move(-1, 0);
  } else if (dir & J_RIGHT) {
    tq_facing = 3;
    try_move(1, 0);
  }
}
