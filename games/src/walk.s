; =============================================================================
; Retrofarm Walk -- a tiny two-player NES test game, written for retrofarm.
;
; Assemble:  ca65 walk.s -o walk.o && ld65 -C nrom.cfg walk.o -o walk.nes
; (games/build.sh does exactly that.)
;
; What it does (see games/README.md for the exact, verified numbers):
;   * The whole screen is one flat dark colour (palette entry $3F00).
;   * Player 1 is a 16x16 white block, player 2 a 16x16 red block.  Each is
;     made of four 8x8 sprites that all use one solid tile.
;   * The D-pad of controller N moves block N by 2 pixels per frame, clamped
;     so the block always stays fully inside the overscan-safe area.
;   * Holding A on controller 1 plays a steady ~440 Hz square wave on APU
;     pulse 1; holding A on controller 2 plays ~662 Hz on pulse 2.
;
; Frame structure: the NMI handler copies the shadow OAM page ($0200) to the
; PPU with OAM DMA and re-asserts scroll/PPUCTRL/PPUMASK.  The main loop waits
; for that NMI, then reads both controllers, updates sound and positions and
; rebuilds the shadow OAM, which the *next* NMI uploads.
;
; Everything is deterministic: RAM is cleared at reset and nothing depends on
; uninitialised state, timing races or randomness.
; =============================================================================

; ---------------------------------------------------------------------------
; Hardware registers
; ---------------------------------------------------------------------------
PPUCTRL   = $2000
PPUMASK   = $2001
PPUSTATUS = $2002
OAMADDR   = $2003
PPUSCROLL = $2005
PPUADDR   = $2006
PPUDATA   = $2007

SQ1_VOL   = $4000     ; pulse 1: duty / length-halt / constant-volume / volume
SQ1_SWEEP = $4001     ; pulse 1: sweep unit
SQ1_LO    = $4002     ; pulse 1: timer low 8 bits
SQ1_HI    = $4003     ; pulse 1: length index (bits 7-3) + timer high 3 bits
                      ; pulse 2 is the same four registers at $4004-$4007
TRI_LINEAR = $4008
NOISE_VOL = $400C
DMC_FREQ  = $4010
OAMDMA    = $4014
SND_CHN   = $4015     ; channel enable
JOY1      = $4016     ; controller strobe (write) / controller 1 data (read)
JOY2      = $4017     ; APU frame counter (write) / controller 2 data (read)

; ---------------------------------------------------------------------------
; Game constants
; ---------------------------------------------------------------------------
oam        = $0200    ; shadow OAM page, uploaded by OAM DMA every NMI

; Colours (NES master palette indices).
BG_COLOR   = $01      ; dark blue, the only background colour
P1_COLOR   = $30      ; white
P2_COLOR   = $16      ; red

TILE_SOLID = $01      ; CHR tile 1: every pixel colour 1 (tile 0 is blank)

; Controller bits after read_pads (first bit read ends up in bit 7).
BTN_A      = %10000000
BTN_B      = %01000000
BTN_SELECT = %00100000
BTN_START  = %00010000
BTN_UP     = %00001000
BTN_DOWN   = %00000100
BTN_LEFT   = %00000010
BTN_RIGHT  = %00000001

SPEED      = 2        ; pixels per frame while a direction is held

; Bounds for the top-left corner of a 16x16 block, in screen pixels.  They
; keep the block 8 pixels away from every edge of the 256x240 picture, so it
; stays fully visible even when a frontend crops 8 pixels of overscan on each
; side.  All bounds and start positions are even, so 2-pixel steps land on
; the bounds exactly.
X_MIN      = 8        ; block covers x  8..23  at the left bound
X_MAX      = 232      ; block covers x 232..247 at the right bound
Y_MIN      = 16       ; block covers y 16..31  at the top bound
Y_MAX      = 208      ; block covers y 208..223 at the bottom bound

P1_START_X = 64       ; player 1 starts covering x 64..79,   y 112..127
P1_START_Y = 112
P2_START_X = 176      ; player 2 starts covering x 176..191, y 112..127
P2_START_Y = 112

; APU pulse timer values.  Frequency = 1789773 / (16 * (period + 1)) on NTSC.
P1_PERIOD  = 253      ; 1789773 / (16 * 254) = 440.4 Hz  (A4)
P2_PERIOD  = 168      ; 1789773 / (16 * 169) = 661.9 Hz  (~E5)

; $4000/$4004 values: duty 50% (%10), length counter halted (bit 5),
; constant volume (bit 4), volume in bits 3-0.
VOL_ON     = %10111111 ; volume 15
VOL_OFF    = %10110000 ; volume 0 (silent, channel stays enabled)
SWEEP_OFF  = %00001000 ; sweep disabled; negate set so the sweep unit can
                       ; never mute the channel through "target overflow"
LEN_INDEX  = %00001000 ; length index 1 (254 frames); irrelevant while halted

; ---------------------------------------------------------------------------
; iNES header: 1 x 16 KiB PRG, 1 x 8 KiB CHR, mapper 0, vertical mirroring, NTSC
; ---------------------------------------------------------------------------
.segment "HEADER"
    .byte "NES", $1A
    .byte 1             ; PRG-ROM size in 16 KiB units
    .byte 1             ; CHR-ROM size in 8 KiB units
    .byte %00000001     ; flags 6: vertical mirroring, no battery, mapper low 0
    .byte %00000000     ; flags 7: mapper high 0, plain iNES
    .byte 0, 0, 0, 0, 0, 0, 0, 0

; ---------------------------------------------------------------------------
; Zero-page variables (all cleared to 0 at reset)
; ---------------------------------------------------------------------------
.segment "ZEROPAGE"
nmi_count: .res 1     ; incremented by every NMI; the main loop waits on it
pad:       .res 2     ; buttons held this frame, [0] = port 1, [1] = port 2
pad_prev:  .res 2     ; buttons held last frame (for A press/release edges)
pos_x:     .res 2     ; top-left x of each block
pos_y:     .res 2     ; top-left y of each block (screen line of its top row)
spr_y:     .res 1     ; scratch for build_oam: OAM Y of the block's top row
spr_x:     .res 1     ; scratch for build_oam: OAM X of the block's left column
spr_attr:  .res 1     ; scratch for build_oam: sprite attribute byte

.segment "CODE"

; ---------------------------------------------------------------------------
; reset: power-on / reset entry point
; ---------------------------------------------------------------------------
reset:
    sei                 ; no IRQs, ever
    cld                 ; the 2A03 has no decimal mode, but be tidy
    ldx #$40
    stx JOY2            ; APU frame counter: 4-step mode, frame IRQ inhibited
    ldx #$FF
    txs                 ; stack at $01FF
    inx                 ; X = 0
    stx PPUCTRL         ; NMI off while we set up
    stx PPUMASK         ; rendering off
    stx DMC_FREQ        ; DMC IRQ off
    stx SND_CHN         ; all sound channels off for now

    ; First vblank wait: the PPU needs ~29658 CPU cycles after power-on
    ; before it accepts writes.  Clear the stale vblank flag first.
    bit PPUSTATUS
@vblank1:
    bit PPUSTATUS
    bpl @vblank1

    ; Clear all 2 KiB of CPU RAM (X is 0 here) ...
    txa
@clear_ram:
    sta $0000,x
    sta $0100,x
    sta $0300,x
    sta $0400,x
    sta $0500,x
    sta $0600,x
    sta $0700,x
    inx
    bne @clear_ram
    ; ... and fill the shadow OAM page with $FF: Y = $FF puts a sprite below
    ; the visible picture, so every sprite we do not use stays hidden.
    lda #$FF
@clear_oam:
    sta oam,x
    inx
    bne @clear_oam

    ; Second vblank wait: after this the PPU is fully warmed up.
@vblank2:
    bit PPUSTATUS
    bpl @vblank2

    jsr init_apu
    jsr load_palette
    jsr clear_nametables

    ; Starting positions.
    lda #P1_START_X
    sta pos_x+0
    lda #P1_START_Y
    sta pos_y+0
    lda #P2_START_X
    sta pos_x+1
    lda #P2_START_Y
    sta pos_y+1

    ; Build the shadow OAM once so the very first DMA shows both blocks.
    ldx #0
    jsr build_oam
    ldx #1
    jsr build_oam

    ; Turn on NMI.  Clear the vblank flag first so the NMI does not fire
    ; immediately in the middle of a frame; the NMI handler itself enables
    ; rendering, so the first visible frame is already complete.
    bit PPUSTATUS
    lda #%10000000      ; NMI on, sprites + background from pattern table 0,
    sta PPUCTRL         ; 8x8 sprites, base nametable $2000

; ---------------------------------------------------------------------------
; main loop: one iteration per frame, right after the NMI
; ---------------------------------------------------------------------------
main_loop:
    lda nmi_count
@wait_nmi:
    cmp nmi_count
    beq @wait_nmi

    jsr read_pads

    ldx #0              ; player 1
    jsr update_player
    ldx #1              ; player 2
    jsr update_player

    jmp main_loop

; ---------------------------------------------------------------------------
; update_player: sound, movement and sprites for player X (0 or 1)
; ---------------------------------------------------------------------------
update_player:
    jsr update_sound
    jsr move_player
    jmp build_oam       ; tail call

; ---------------------------------------------------------------------------
; read_pads: read both controllers into pad[0], pad[1]; keep the old values
; in pad_prev.  Bit order after reading: A B Select Start Up Down Left Right
; (bit 7 .. bit 0).
; ---------------------------------------------------------------------------
read_pads:
    lda pad+0
    sta pad_prev+0
    lda pad+1
    sta pad_prev+1

    ; Strobe: writing 1 then 0 to $4016 latches the buttons of both ports.
    lda #1
    sta JOY1
    lda #0
    sta JOY1

    ; Eight reads per port.  A button counts as held if bit 0 (standard
    ; controller) or bit 1 (Famicom expansion controller) reads 1:
    ; "and #3 / cmp #1" sets carry exactly then, and ROL shifts it in.
    ; After eight ROLs the old contents have been shifted out completely.
    ldx #8
@loop:
    lda JOY1
    and #%00000011
    cmp #1
    rol pad+0
    lda JOY2
    and #%00000011
    cmp #1
    rol pad+1
    dex
    bne @loop
    rts

; ---------------------------------------------------------------------------
; update_sound: player X's A button gates its pulse channel.
;   On the frame A goes down: full volume, sweep off, and write the timer,
;   including the $4003/$4007 write that restarts the waveform -- only here,
;   because writing that register every frame would reset the phase and click.
;   While A stays held: keep volume 15, touch nothing else.
;   While A is up: volume 0 (silent).
; ---------------------------------------------------------------------------
update_sound:
    lda pulse_reg_base,x
    tay                 ; Y = 0 for pulse 1 ($4000), 4 for pulse 2 ($4004)

    lda pad,x
    and #BTN_A
    beq @released

    lda #VOL_ON         ; A held: constant volume 15
    sta SQ1_VOL,y
    lda pad_prev,x
    and #BTN_A
    bne @done           ; A was already held: the tone keeps running

    lda #SWEEP_OFF      ; A just pressed: (re)start the tone
    sta SQ1_SWEEP,y
    lda period_lo,x
    sta SQ1_LO,y
    lda period_hi,x
    ora #LEN_INDEX
    sta SQ1_HI,y        ; loads the length counter and starts the waveform
    rts

@released:
    lda #VOL_OFF        ; A up: silence (rewritten every frame, harmless)
    sta SQ1_VOL,y
@done:
    rts

; ---------------------------------------------------------------------------
; move_player: apply player X's D-pad to pos_x/pos_y.
; Up+Down together (or Left+Right together) cancel out: no movement on that
; axis.  Diagonals move on both axes at once.  Positions are clamped to
; [X_MIN, X_MAX] and [Y_MIN, Y_MAX]; the bounds are far enough from 0 and 255
; that a 2-pixel step can never wrap around.
; ---------------------------------------------------------------------------
move_player:
    ; Vertical axis.
    lda pad,x
    and #(BTN_UP | BTN_DOWN)
    cmp #BTN_UP
    beq @up
    cmp #BTN_DOWN
    beq @down
    jmp @horizontal
@up:
    lda pos_y,x
    sec
    sbc #SPEED
    cmp #Y_MIN
    bcs @store_y        ; still >= Y_MIN
    lda #Y_MIN
    jmp @store_y
@down:
    lda pos_y,x
    clc
    adc #SPEED
    cmp #(Y_MAX + 1)
    bcc @store_y        ; still <= Y_MAX
    lda #Y_MAX
@store_y:
    sta pos_y,x

@horizontal:
    lda pad,x
    and #(BTN_LEFT | BTN_RIGHT)
    cmp #BTN_LEFT
    beq @left
    cmp #BTN_RIGHT
    beq @right
    rts
@left:
    lda pos_x,x
    sec
    sbc #SPEED
    cmp #X_MIN
    bcs @store_x        ; still >= X_MIN
    lda #X_MIN
    jmp @store_x
@right:
    lda pos_x,x
    clc
    adc #SPEED
    cmp #(X_MAX + 1)
    bcc @store_x        ; still <= X_MAX
    lda #X_MAX
@store_x:
    sta pos_x,x
    rts

; ---------------------------------------------------------------------------
; build_oam: write player X's four sprites into the shadow OAM.
; Player 0 uses OAM slots 0-3, player 1 slots 4-7, so player 1's block is
; drawn in front where the two overlap.  Slots 8-63 keep Y = $FF (hidden).
;
; OAM Y is one less than the first screen line of the sprite (the PPU draws
; a sprite starting on the line after its Y value).
; ---------------------------------------------------------------------------
.macro PUT_SPRITE slot, dy, dx
    lda spr_y
    clc
    adc #dy
    sta oam + slot * 4 + 0, y   ; Y
    lda #TILE_SOLID
    sta oam + slot * 4 + 1, y   ; tile
    lda spr_attr
    sta oam + slot * 4 + 2, y   ; attributes (palette, front of background)
    lda spr_x
    clc
    adc #dx
    sta oam + slot * 4 + 3, y   ; X
.endmacro

build_oam:
    lda pos_y,x
    sec
    sbc #1
    sta spr_y           ; OAM Y of the top row
    lda pos_x,x
    sta spr_x
    stx spr_attr        ; sprite palette 0 for player 1, 1 for player 2
    txa
    asl a
    asl a
    asl a
    asl a
    tay                 ; Y = 16 * player = byte offset of its first sprite

    PUT_SPRITE 0, 0, 0  ; top-left
    PUT_SPRITE 1, 0, 8  ; top-right
    PUT_SPRITE 2, 8, 0  ; bottom-left
    PUT_SPRITE 3, 8, 8  ; bottom-right
    rts

; ---------------------------------------------------------------------------
; init_apu: silence everything, then enable only the two pulse channels.
; ---------------------------------------------------------------------------
init_apu:
    lda #$40
    sta JOY2            ; frame counter: 4-step, IRQ inhibit (again, to be sure)
    lda #VOL_OFF
    sta SQ1_VOL         ; pulse 1: duty 50%, halt, constant volume 0
    sta SQ1_VOL + 4     ; pulse 2: same
    lda #SWEEP_OFF
    sta SQ1_SWEEP
    sta SQ1_SWEEP + 4
    lda #0
    sta SQ1_LO
    sta SQ1_LO + 4
    sta SQ1_HI          ; channels are still disabled, so these $4003/$4007
    sta SQ1_HI + 4      ; writes do not load the length counters
    lda #%10000000
    sta TRI_LINEAR      ; triangle: control flag set, linear counter 0
    lda #%00110000
    sta NOISE_VOL       ; noise: halt, constant volume 0
    lda #0
    sta DMC_FREQ        ; DMC: no IRQ, no loop
    lda #%00000011
    sta SND_CHN         ; enable pulse 1 and pulse 2 only
    rts

; ---------------------------------------------------------------------------
; load_palette: write all 32 palette bytes.  Every entry is the background
; colour except sprite palette 0 colour 1 (player 1) and sprite palette 1
; colour 1 (player 2), so nothing else can ever show another colour.
; ---------------------------------------------------------------------------
load_palette:
    bit PPUSTATUS       ; reset the $2006 address latch
    lda #$3F
    sta PPUADDR
    lda #$00
    sta PPUADDR
    ldx #0
@loop:
    lda palette,x
    sta PPUDATA
    inx
    cpx #32
    bne @loop
    rts

; ---------------------------------------------------------------------------
; clear_nametables: fill $2000-$2FFF (all four logical nametables and their
; attribute tables) with tile 0 / palette 0, i.e. the flat background colour.
; ---------------------------------------------------------------------------
clear_nametables:
    bit PPUSTATUS
    lda #$20
    sta PPUADDR
    lda #$00
    sta PPUADDR
    tax                 ; X = 0: inner counter (256 bytes)
    ldy #16             ; Y = 16 pages of 256 bytes = 4 KiB
@loop:
    sta PPUDATA
    inx
    bne @loop
    dey
    bne @loop
    rts

; ---------------------------------------------------------------------------
; nmi: once per frame at the start of vblank
; ---------------------------------------------------------------------------
nmi:
    pha
    txa
    pha
    tya
    pha

    lda #0
    sta OAMADDR
    lda #>oam
    sta OAMDMA          ; copy $0200-$02FF into the PPU's OAM (513 cycles)

    bit PPUSTATUS       ; reset the address latch, then scroll to 0,0
    lda #0
    sta PPUSCROLL
    sta PPUSCROLL
    lda #%10000000      ; NMI on, nametable $2000, pattern table 0 for all
    sta PPUCTRL
    lda #%00011110      ; show sprites and background, including the
    sta PPUMASK         ; leftmost 8 pixels; no colour emphasis, no greyscale

    inc nmi_count       ; release the main loop

    pla
    tay
    pla
    tax
    pla
irq:                    ; IRQs are never enabled; just return if one comes
    rti

; ---------------------------------------------------------------------------
; Read-only data
; ---------------------------------------------------------------------------
.segment "RODATA"

pulse_reg_base:
    .byte 0, 4          ; offset of pulse 1 / pulse 2 registers from $4000
period_lo:
    .byte <P1_PERIOD, <P2_PERIOD
period_hi:
    .byte >P1_PERIOD, >P2_PERIOD

palette:
    ; background palettes 0-3 ($3F00-$3F0F): all the background colour
    .byte BG_COLOR, BG_COLOR, BG_COLOR, BG_COLOR
    .byte BG_COLOR, BG_COLOR, BG_COLOR, BG_COLOR
    .byte BG_COLOR, BG_COLOR, BG_COLOR, BG_COLOR
    .byte BG_COLOR, BG_COLOR, BG_COLOR, BG_COLOR
    ; sprite palettes 0-3 ($3F10-$3F1F).  $3F10 mirrors $3F00, so it must
    ; hold the background colour too.
    .byte BG_COLOR, P1_COLOR, BG_COLOR, BG_COLOR   ; palette 0: player 1
    .byte BG_COLOR, P2_COLOR, BG_COLOR, BG_COLOR   ; palette 1: player 2
    .byte BG_COLOR, BG_COLOR, BG_COLOR, BG_COLOR
    .byte BG_COLOR, BG_COLOR, BG_COLOR, BG_COLOR

; ---------------------------------------------------------------------------
; CPU vectors
; ---------------------------------------------------------------------------
.segment "VECTORS"
    .word nmi
    .word reset
    .word irq

; ---------------------------------------------------------------------------
; CHR-ROM: 8 KiB of pattern tables.  Only two tiles are defined; the linker
; fills the rest with zeros (blank tiles).  Each tile is 16 bytes: 8 bytes of
; bit plane 0, then 8 bytes of bit plane 1.
; ---------------------------------------------------------------------------
.segment "CHARS"
    ; tile 0: blank (colour 0 everywhere) -- the whole background uses it
    .byte $00, $00, $00, $00, $00, $00, $00, $00
    .byte $00, $00, $00, $00, $00, $00, $00, $00
    ; tile 1: solid (colour 1 everywhere: plane 0 all ones, plane 1 all zeros)
    .byte $FF, $FF, $FF, $FF, $FF, $FF, $FF, $FF
    .byte $00, $00, $00, $00, $00, $00, $00, $00
