/*
 * machine.c - diskbench's machinery: its parameters, the guest clock (the sandbox's
 * time hypercall, docs/hypercalls.md), and the interrupts it sleeps on.
 */
#include <stdint.h>
#include "../tinyos/virtio_blk.h"
#include "atapio.h"
#include "diskbench.h"
#include "console.h"
#include "io.h"
#include "idt.h"
#include "pc.h"
#include "string.h"

#define HYPERCALL_PORT 0xD00
#define HYPERCALL_TIME 2

struct params p = { 256, 4, 64, 1, 1, 128, 1, "verify", "irq" };

/* ---- parameters --------------------------------------------------------- */

static int word_is(const char *word, const char *end, const char *key)
{
    uint32_t n = strlen(key);
    return (uint32_t)(end - word) > n && !memcmp(word, key, n) && word[n] == '=';
}

void parse_params(const char *text)
{
    static const struct { const char *key; uint32_t *field; } numbers[] = {
        { "kib", &p.kib }, { "block", &p.block }, { "ops", &p.ops }, { "qd", &p.qd },
        { "seed", &p.seed }, { "start", &p.start }, { "reports", &p.reports },
    };
    const char *end = text + 512;
    while (text < end && *text) {
        while (text < end && (*text == ' ' || *text == '\n' || *text == '\r' || *text == '\t'))
            text++;
        const char *word = text;
        while (text < end && *text && *text != ' ' && *text != '\n' && *text != '\r' && *text != '\t')
            text++;
        for (unsigned i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
            if (word_is(word, text, numbers[i].key)) {
                uint32_t value = 0;
                for (const char *d = word + strlen(numbers[i].key) + 1; d < text && *d >= '0' && *d <= '9'; d++)
                    value = value * 10 + (uint32_t)(*d - '0');
                *numbers[i].field = value;
            }
        char *strings[] = { p.mode, p.wait };
        const char *keys[] = { "mode", "wait" };
        uint32_t sizes[] = { sizeof(p.mode), sizeof(p.wait) };
        for (int i = 0; i < 2; i++)
            if (word_is(word, text, keys[i])) {
                const char *v = word + strlen(keys[i]) + 1;
                uint32_t n = (uint32_t)(text - v) < sizes[i] - 1 ? (uint32_t)(text - v) : sizes[i] - 1;
                memcpy(strings[i], v, n);
                strings[i][n] = 0;
            }
    }
}

/* ---- guest time: the sandbox's hypercall (docs/hypercalls.md) ------------ */

int on_sandbox;

int hypervisor_present(void)
{
    uint32_t value;
    __asm__ volatile("inl %%dx, %%eax" : "=a"(value) : "d"(HYPERCALL_PORT));
    return value == 0x53425831;         /* 'SBX1'; QEMU and real PCs answer 0xFFFFFFFF */
}

uint64_t now_ns(void)
{
    uint32_t low = HYPERCALL_TIME, high = HYPERCALL_PORT;
    if (!on_sandbox)
        return 0;
    __asm__ volatile("outl %%eax, %%dx" : "+a"(low), "+d"(high) : : "memory");
    return (uint64_t)high << 32 | low;
}

/* 64-by-32-bit division with DIV (no libgcc here); the quotient must fit 32 bits. */
uint32_t div64(uint64_t n, uint32_t d)
{
    uint32_t q, r;
    __asm__("divl %4" : "=a"(q), "=d"(r) : "a"((uint32_t)n), "d"((uint32_t)(n >> 32)), "rm"(d));
    return q;
}

/* ---- interrupts ----------------------------------------------------------- */

volatile uint32_t ticks;                /* counted by timer_interrupt (isr.S) */

void load_flat_gdt(void);
void timer_interrupt(void);
void ata_interrupt(void);
void virtio_interrupt(void);
void ignore_interrupt(void);
void exception_interrupt(void);



void setup_interrupts(void)
{
    idt_install();
    idt_set_gate(IRQ_BASE + 0, timer_interrupt);
    idt_set_gate(IRQ_BASE + ATA_IRQ, ata_interrupt);
    idt_set_gate(IRQ_BASE + VBLK_IRQ, virtio_interrupt);
    pic_remap();
    pit_set_frequency(1000);
    pic_unmask(0);
    pic_unmask(ATA_IRQ);
    pic_unmask(VBLK_IRQ);
    sti();
}

void ata_irq(void)
{
    atapio_interrupt();
    pic_eoi(ATA_IRQ);
}

void virtio_irq(void)
{
    vblk_interrupt();
    pic_eoi(VBLK_IRQ);
}

void guest_exception(void)
{
    kprintf("diskbench: unexpected CPU exception, halting\n");
    halt_forever();
}

/* Wait for the virtio disk: sleep until its interrupt unless a request is done. */
void sleep_until_interrupt(void)
{
    cli();
    if (vblk_done_waiting())
        sti();
    else
        sti_hlt();
}
