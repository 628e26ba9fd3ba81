/*
 * idt.c - the interrupt descriptor table of the small guests (cpuhog, diskbench,
 * router, the memory guests): 32 CPU exceptions, then the 16 PIC interrupts at
 * IRQ_BASE. idt_install() points every exception at exception_interrupt and every
 * IRQ at ignore_interrupt (lib/flat_gdt.S) and loads the table; the guest then
 * installs the few IRQ handlers it really uses with idt_set_gate().
 */
#include <stdint.h>
#include "idt.h"
#include "pc.h"

void exception_interrupt(void);
void ignore_interrupt(void);

struct idt_gate {
    uint16_t offset_low, selector;
    uint8_t zero, type;                 /* 0x8E: present, ring 0, 32-bit interrupt gate */
    uint16_t offset_high;
} __attribute__((packed));

static struct idt_gate idt[IRQ_BASE + 16];

void idt_set_gate(int vector, void (*handler)(void))
{
    uint32_t address = (uint32_t)handler;
    idt[vector] = (struct idt_gate){ address & 0xFFFF, 0x08, 0, 0x8E, address >> 16 };
}

void idt_install(void)
{
    struct { uint16_t limit; uint32_t base; } __attribute__((packed)) idtr = {
        sizeof(idt) - 1, (uint32_t)idt
    };
    for (int v = 0; v < 32; v++)
        idt_set_gate(v, exception_interrupt);
    for (int irq = 0; irq < 16; irq++)
        idt_set_gate(IRQ_BASE + irq, ignore_interrupt);
    __asm__ volatile("lidt %0" : : "m"(idtr));
}
