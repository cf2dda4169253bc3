/* The fixed tinyquest WRAM block: pinned addresses shared with pokerl (see README.md). */
#include <stdint.h>

volatile __at(0xC000) uint8_t tq_map;
volatile __at(0xC001) uint8_t tq_x;
volatile __at(0xC002) uint8_t tq_y;
volatile __at(0xC003) uint8_t tq_badges;
volatile __at(0xC004) uint8_t tq_level;
volatile __at(0xC005) uint8_t tq_hp[2];
volatile __at(0xC007) uint8_t tq_max_hp[2];
volatile __at(0xC009) uint8_t tq_xp[2];
volatile __at(0xC00B) uint8_t tq_in_battle;
volatile __at(0xC00C) uint8_t tq_events[4];
volatile __at(0xC010) uint8_t tq_blackouts;
volatile __at(0xC011) uint8_t tq_complete;
volatile __at(0xC012) uint8_t tq_text;
volatile __at(0xC013) uint8_t tq_enemy_hp;
volatile __at(0xC014) uint8_t tq_rng[2];
volatile __at(0xC016) uint8_t tq_ballast;
volatile __at(0xC017) uint8_t tq_frame[2];
volatile __at(0xC019) uint8_t tq_facing;
volatile __at(0xC01A) uint8_t tq_enemy_level;
volatile __at(0xC01B) uint8_t tq_menu;
volatile __at(0xC01C) uint8_t tq_state;
volatile __at(0xC01D) uint8_t tq_steps[2];
