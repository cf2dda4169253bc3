/* tinyquest: shared declarations (hardware registers, the fixed WRAM block, module APIs). */
#ifndef TQ_H
#define TQ_H

#include <stdint.h>

/* ---- hardware registers ---- */
#define REG(a) (*(volatile uint8_t *)(a))
#define P1 REG(0xFF00)
#define IF_REG REG(0xFF0F)
#define NR52 REG(0xFF26)
#define LCDC REG(0xFF40)
#define STAT REG(0xFF41)
#define SCY REG(0xFF42)
#define SCX REG(0xFF43)
#define LY REG(0xFF44)
#define BGP REG(0xFF47)
#define OBP0 REG(0xFF48)
#define OBP1 REG(0xFF49)
#define WY REG(0xFF4A)
#define WX REG(0xFF4B)
#define IE_REG REG(0xFFFF)

#define VRAM_TILES ((uint8_t *)0x8000)
#define VRAM_BG ((uint8_t *)0x9800)
#define OAM ((uint8_t *)0xFE00)

/* ---- joypad bits (our own layout) ---- */
#define J_RIGHT 0x01
#define J_LEFT 0x02
#define J_UP 0x04
#define J_DOWN 0x08
#define J_A 0x10
#define J_B 0x20
#define J_SELECT 0x40
#define J_START 0x80

/* ---- the fixed WRAM block (see design.md / README.md); defined in wram.c ---- */
extern volatile uint8_t tq_map;
extern volatile uint8_t tq_x;
extern volatile uint8_t tq_y;
extern volatile uint8_t tq_badges;
extern volatile uint8_t tq_level;
extern volatile uint8_t tq_hp[2];     /* big-endian u16 */
extern volatile uint8_t tq_max_hp[2]; /* big-endian u16 */
extern volatile uint8_t tq_xp[2];     /* big-endian u16 */
extern volatile uint8_t tq_in_battle;
extern volatile uint8_t tq_events[4];
extern volatile uint8_t tq_blackouts;
extern volatile uint8_t tq_complete;
extern volatile uint8_t tq_text;
extern volatile uint8_t tq_enemy_hp;
extern volatile uint8_t tq_rng[2]; /* big-endian u16 */
extern volatile uint8_t tq_ballast;
extern volatile uint8_t tq_frame[2]; /* big-endian u16 */
/* free-for-game fields 0xC019.. */
extern volatile uint8_t tq_facing;      /* 0xC019: 0 down, 1 up, 2 left, 3 right */
extern volatile uint8_t tq_enemy_level; /* 0xC01A: enemy level in a battle (0 outside) */
extern volatile uint8_t tq_menu;        /* 0xC01B: battle menu cursor 0 HIT, 1 BLAST, 2 RUN */
extern volatile uint8_t tq_state;       /* 0xC01C: game state (ST_* below) */
extern volatile uint8_t tq_steps[2];    /* 0xC01D: tiles walked, big-endian u16 (wraps) */

/* event flag numbers */
#define EV_GOT_KEY 0
#define EV_DOOR_UNLOCKED 1
#define EV_BOSS1 2
#define EV_BOSS2 3
#define EV_HEALED 4
#define EV_FOREST 5
#define EV_ROUTE2 6
#define EV_FINAL 7

/* game states */
#define ST_WALK 0
#define ST_TEXT 1
#define ST_MENU 2

/* what happens when the text queue empties */
#define END_NONE 0
#define END_MENU 1
#define END_LEAVE_BATTLE 2
#define END_BLACKOUT 3
#define END_BOSS1 4
#define END_BOSS2 5

/* map ids */
#define MAP_TOWN 0
#define MAP_FINAL 6

/* ---- generated data (data.c from font.txt + maps.txt) ---- */
#define MAP_W 20
#define MAP_H 16
extern const uint8_t font_tiles[2048];
extern const uint8_t map_tiles[][MAP_W * MAP_H];
extern const uint8_t map_edges[][4]; /* N, S, W, E neighbour map id, 0xFF none */
extern const uint8_t map_wild[][2];  /* wild level range */
extern const char map_names[][12];
extern const uint8_t n_warps;
extern const uint8_t warp_table[][6]; /* map, x, y, dest map, dest x, dest y */
extern const uint8_t n_signs;
extern const uint8_t sign_table[][3]; /* map, x, y */
extern const char sign_text[][40];    /* two 20-char lines */

/* ---- helpers (main.c) ---- */
uint16_t get16(volatile uint8_t *p);
void set16(volatile uint8_t *p, uint16_t v);
uint8_t rand8(void);
uint8_t event_get(uint8_t ev);
void event_set(uint8_t ev);
extern uint8_t joy_held, joy_new;

/* ---- screen.c: 20x18 shadow screen, copied to VRAM a few rows per VBlank ---- */
extern uint8_t scr[18 * 20];
extern uint8_t dirty_rows[18];
void screen_flush(void);
void screen_fill_row(uint8_t row, uint8_t ch);
void screen_text(uint8_t row, uint8_t col, const char *s);
void screen_num(uint8_t row, uint8_t col, uint16_t v, uint8_t width);
void screen_mark_all(void);
void sprite_player(uint8_t visible);

/* ---- text.c: queue of two-line messages that A closes ---- */
void text_clear(void);
void text_push(const char *line1, const char *line2);
void text_push_num(const char *line1, const char *prefix, uint16_t v, const char *suffix);
void text_begin(uint8_t end_action);
void text_update(void);
void status_draw(void);

/* ---- world.c ---- */
void world_draw(void);
void world_enter(uint8_t map, uint8_t x, uint8_t y);
void world_update(void);
void world_blackout(void);

/* ---- battle.c ---- */
void battle_start(uint8_t kind, uint8_t level);
void battle_draw(void);
void battle_menu_update(void);
void battle_leave(void);
void battle_prompt(void);
#endif
