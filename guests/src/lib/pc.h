/* pc.h - the PC's interrupt controllers, timer and power switch. */
#ifndef GUEST_PC_H
#define GUEST_PC_H

#include <stdint.h>

/* 8259A PICs: the BIOS leaves IRQ 0-7 on vectors 0x08-0x0F, which collide with
 * CPU exceptions in protected mode, so every OS moves them. */
#define IRQ_BASE 0x20                         /* IRQ n arrives as vector 0x20 + n */
void pic_remap(void);                         /* IRQ 0-15 -> vectors 0x20-0x2F, all masked */
void pic_unmask(int irq);
void pic_eoi(int irq);                        /* end of interrupt: allow the next one */

/* 8254 PIT channel 0 on IRQ 0: a periodic tick. */
#define PIT_HZ 1193182u                       /* the PIT's input clock */
void pit_set_frequency(uint32_t hz);

/* ACPI power-off (PIIX4 PM1a_CNT at 0x604: SLP_TYP 0 | SLP_EN). Does not return. */
void poweroff(void) __attribute__((noreturn));
/* Stop this CPU for good. */
void halt_forever(void) __attribute__((noreturn));

#endif
