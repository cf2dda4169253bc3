/* Turn-based battles: wild monsters in tall grass and the two gym leaders. */
#include "tq.h"

static const char wild_names[4][9] = {"BUGLET", "MOSSLING", "RATTO", "PEBBLIT"};
static const char *foe_name;
static uint8_t boss_no; /* 0 wild, 1 or 2 boss */

#define BOSS1_HP 20
#define BOSS1_LEVEL 3
#define BOSS2_HP 52
#define BOSS2_LEVEL 8
#define LEVEL_MAX 20
#define HP_PER_LEVEL 6

/* Total XP needed to reach level l + 1. */
static uint16_t xp_next(uint8_t l) { return (uint16_t)5 * l * (uint16_t)(l + 1); }

void battle_draw(void) {
  uint8_t r;
  for (r = 0; r < 16; r++) screen_fill_row(r, ' ');
  screen_text(1, 1, foe_name);
  screen_text(1, 14, "LV");
  screen_num(1, 16, tq_enemy_level, 3);
  screen_text(2, 1, "HP");
  screen_num(2, 4, tq_enemy_hp, 3);
  for (r = 4; r < 8; r++) screen_text(r, 12, boss_no ? "&&&&" : "%%%%");
  screen_text(10, 1, "YOU");
  screen_text(10, 14, "LV");
  screen_num(10, 16, tq_level, 3);
  screen_text(11, 1, "HP");
  screen_num(11, 4, get16(tq_hp), 3);
  screen_text(11, 7, "/");
  screen_num(11, 8, get16(tq_max_hp), 3);
  screen_text(13, 2, "HIT");
  screen_text(14, 2, "BLAST");
  screen_text(15, 2, "RUN");
  screen_text((uint8_t)(13 + tq_menu), 0, ">");
}

/* Rows 16-17 while the move menu waits for a choice. */
void battle_prompt(void) {
  screen_fill_row(16, ' ');
  screen_fill_row(17, ' ');
  screen_text(16, 0, "CHOOSE A MOVE:");
  screen_text(17, 0, "UP/DOWN THEN A");
}

void battle_start(uint8_t kind, uint8_t arg) {
  text_clear();
  tq_menu = 0;
  if (kind == 1) {
    boss_no = 0;
    tq_in_battle = 1;
    tq_enemy_level = arg;
    tq_enemy_hp = (uint8_t)(6 + 4 * arg);
    foe_name = wild_names[rand8() & 3];
    text_push("A WILD MONSTER", "JUMPS OUT!");
  } else {
    boss_no = arg;
    tq_in_battle = 2;
    if (arg == 1) {
      tq_enemy_level = BOSS1_LEVEL;
      tq_enemy_hp = BOSS1_HP;
      foe_name = "GOLEMITE";
    } else {
      tq_enemy_level = BOSS2_LEVEL;
      tq_enemy_hp = BOSS2_HP;
      foe_name = "DRAKOTH";
    }
    text_push("THE LEADER SENDS", "OUT A MONSTER!");
  }
  tq_state = ST_TEXT;
  battle_draw();
  text_begin(END_MENU);
}

void battle_leave(void) {
  tq_in_battle = 0;
  tq_enemy_hp = 0;
  tq_enemy_level = 0;
  tq_state = ST_WALK;
  world_draw();
}

static void redraw_hp(void) {
  screen_num(2, 4, tq_enemy_hp, 3);
  screen_num(11, 4, get16(tq_hp), 3);
  screen_num(11, 8, get16(tq_max_hp), 3);
  screen_num(10, 16, tq_level, 3);
}

static uint8_t foe_attack(void) {
  if (boss_no == 1) return (uint8_t)(3 + rand8() % 3);
  if (boss_no == 2) return (uint8_t)(6 + (rand8() & 3));
  return (uint8_t)(tq_enemy_level + 1 + (rand8() & 1));
}

static void win(void) {
  uint16_t xp = get16(tq_xp);
  uint16_t gain = boss_no == 1 ? 30 : boss_no == 2 ? 100 : (uint16_t)(3 + 3 * tq_enemy_level);
  uint8_t old = tq_level;
  uint8_t end = END_LEAVE_BATTLE;
  xp += gain;
  set16(tq_xp, xp);
  text_push_num("THE FOE FAINTED!", "YOU GOT ", gain, " XP.");
  while (tq_level < LEVEL_MAX && xp >= xp_next(tq_level)) {
    tq_level++;
    set16(tq_max_hp, get16(tq_max_hp) + HP_PER_LEVEL);
    set16(tq_hp, get16(tq_hp) + HP_PER_LEVEL);
  }
  if (tq_level != old) text_push_num("LEVEL UP!", "YOU ARE NOW LV ", tq_level, "");
  if (boss_no == 1) {
    tq_badges |= 1;
    event_set(EV_BOSS1);
    text_push("YOU WON BADGE 1!", "ROUTE 2 IS NEXT.");
  } else if (boss_no == 2) {
    tq_badges |= 2;
    event_set(EV_BOSS2);
    text_push("YOU WON BADGE 2!", "SEE THE TROPHY ROOM.");
  }
  redraw_hp();
  text_begin(end);
}

static void take_turn(uint8_t move) {
  uint8_t dmg = 0, hit = 1;
  uint16_t hp;
  text_clear();
  if (move == 2) {
    if (!boss_no) {
      text_push("YOU GOT AWAY", "SAFELY.");
      text_begin(END_LEAVE_BATTLE);
      return;
    }
    text_push("YOU CAN'T RUN FROM", "A GYM LEADER!");
  } else {
    if (move == 0) {
      dmg = (uint8_t)(tq_level + 2 + (rand8() & 1));
    } else {
      hit = rand8() & 1;
      dmg = hit ? (uint8_t)(2 * tq_level + 4) : 0;
    }
    if (dmg > tq_enemy_hp) dmg = tq_enemy_hp;
    tq_enemy_hp = (uint8_t)(tq_enemy_hp - dmg);
    if (hit) {
      text_push_num(move ? "YOU USED BLAST!" : "YOU USED HIT!", "FOE LOST ", dmg, " HP.");
    } else {
      text_push("YOU USED BLAST!", "IT MISSED!");
    }
    if (tq_enemy_hp == 0) {
      win();
      return;
    }
  }
  dmg = foe_attack();
  hp = get16(tq_hp);
  hp = dmg >= hp ? 0 : hp - dmg;
  set16(tq_hp, hp);
  text_push_num("THE FOE ATTACKS!", "YOU LOST ", dmg, " HP.");
  redraw_hp();
  if (hp == 0) {
    text_push("YOU BLACKED OUT!", "BACK TO TOWN...");
    text_begin(END_BLACKOUT);
  } else {
    text_begin(END_MENU);
  }
}

void battle_menu_update(void) {
  uint8_t old = tq_menu;
  if (joy_new & J_UP && tq_menu > 0) tq_menu--;
  if (joy_new & J_DOWN && tq_menu < 2) tq_menu++;
  if (old != tq_menu) {
    screen_text((uint8_t)(13 + old), 0, " ");
    screen_text((uint8_t)(13 + tq_menu), 0, ">");
  }
  if (joy_new & J_A) take_turn(tq_menu);
}
