/* memguest.h - what the memory guests (twins, memhog, balloon) share.
 *
 * A flat GDT, an IDT whose only live interrupt is the PIT at 100 Hz, sleeping with
 * HLT, "key=value" parameters from the Multiboot command line, and where free RAM
 * starts and ends. Each guest calls memguest_init() first thing in kmain().
 */
#ifndef MEMGUEST_H
#define MEMGUEST_H

#include <stdint.h>
#include "multiboot.h"

#define TICK_HZ 100
#define PAGE_SIZE 4096u

extern volatile uint32_t ticks;         /* incremented 100 times a second */

/* GDT, console, IDT, PIC, PIT, interrupts on. `name` prefixes every message. */
void memguest_init(uint32_t magic, const struct multiboot_info *mbi, const char *name);
const char *memguest_loader(void);      /* who booted us ("qemu", "sandbox-loader", ...) */

/* The value of "key=NUMBER" on the command line, or `fallback`. */
uint32_t param(const char *key, uint32_t fallback);

/* Free RAM: from the first page after the kernel image to the end of the usable
 * region that holds the kernel (from the memory map, else mem_upper). */
uint32_t free_ram_start(void);
uint32_t free_ram_end(void);

void sleep_ticks(uint32_t n);           /* idle (sti; hlt) for n timer ticks */

#endif
