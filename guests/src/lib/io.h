/* io.h - port I/O and a few CPU instructions as inline functions.
 *
 * On a PC, devices such as the serial port (0x3F8), the PIC (0x20/0xA0) and
 * the PIT (0x40-0x43) live in a separate 64 KiB "I/O port" address space that
 * only the IN and OUT instructions can reach. Under a hypervisor every one of
 * these instructions is a VM exit: the hypervisor emulates the device.
 */
#ifndef GUEST_IO_H
#define GUEST_IO_H

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t value)
{
    __asm__ volatile("outw %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline uint16_t inw(uint16_t port)
{
    uint16_t value;
    __asm__ volatile("inw %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void hlt(void) { __asm__ volatile("hlt" ::: "memory"); }

/* Wait for the next interrupt with interrupts enabled. "sti; hlt" is atomic:
 * STI takes effect after the next instruction, so no interrupt can slip in
 * between the two and leave us halted forever. */
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }

/* Save EFLAGS and disable interrupts; restore them later. */
static inline uint32_t irq_save(void)
{
    uint32_t flags;
    __asm__ volatile("pushfl; popl %0; cli" : "=r"(flags) : : "memory");
    return flags;
}

static inline void irq_restore(uint32_t flags)
{
    __asm__ volatile("pushl %0; popfl" : : "r"(flags) : "memory", "cc");
}

#endif
