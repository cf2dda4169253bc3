;; tinyquest start-up code (written for this project): header, interrupt vectors,
;; RAM clearing, initialised-data copy, then main().
        .module crt0
        .globl  _main

        .area   _HEADER (ABS)
        .org    0x00
        reti
        .org    0x40            ; VBlank: only wakes the main loop from HALT
        reti
        .org    0x48            ; LCD STAT
        reti
        .org    0x50            ; timer
        reti
        .org    0x58            ; serial
        reti
        .org    0x60            ; joypad
        reti

        .org    0x100
        nop
        jp      init

        .org    0x150
init:
        di
        ld      sp, #0xE000
        ;; clear all of WRAM (0xC000-0xDFFF): the fixed block and SDCC's data
        ld      hl, #0xC000
        ld      bc, #0x2000
1$:
        xor     a
        ld      (hl+), a
        dec     bc
        ld      a, b
        or      c
        jr      nz, 1$
        ;; copy initialised globals
        ld      de, #s__INITIALIZED
        ld      hl, #s__INITIALIZER
        ld      bc, #l__INITIALIZER
2$:
        ld      a, b
        or      c
        jr      z, 3$
        ld      a, (hl+)
        ld      (de), a
        inc     de
        dec     bc
        jr      2$
3$:
        call    gsinit
        call    _main
4$:
        halt
        nop
        jr      4$

        ;; area order: code and constants in ROM, then RAM (--data-loc)
        .area   _HOME
        .area   _CODE
        .area   _INITIALIZER
        .area   _GSINIT
gsinit::
        .area   _GSFINAL
        ret
        .area   _DATA
        .area   _INITIALIZED
        .area   _BSEG
        .area   _BSS
        .area   _HEAP
