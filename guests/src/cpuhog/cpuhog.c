/*
 * cpuhog.c - a compute-bound guest for scheduling experiments.
 *
 * It loops "burn, report, sleep": `burn` iterations of an integer workload,
 * then a line "cpuhog: N checksum=..." on COM1, then `sleep` milliseconds
 * idle (HLT with the PIT ticking at 100 Hz, so the vCPU really idles). After
 * `reports` reports it powers the machine off; reports=0 runs forever.
 *
 * The parameters come from the Multiboot command line: `qemu -append` for
 * cpuhog.elf, or sector 1 of cpuhog.img, which the boot loader passes on
 * (see README.md). The checksum depends only on the parameters, so any
 * correct x86 CPU (QEMU, Unicorn, KVM) prints the same numbers.
 */
#include <stdint.h>
#include "console.h"
#include "io.h"
#include "multiboot.h"
#include "idt.h"
#include "pc.h"
#include "string.h"

#define TICK_HZ 100

struct params {
    uint32_t burn;      /* workload iterations per report */
    uint32_t sleep_ms;  /* idle time after each report    */
    uint32_t reports;   /* reports before power-off, 0 = forever */
};

volatile uint32_t ticks;                /* incremented by timer_interrupt */

void load_flat_gdt(void);
void timer_interrupt(void);
void exception_interrupt(void);
void ignore_interrupt(void);

/* ---- the interrupt descriptor table ---------------------------------- */



static void setup_interrupts(void)
{
    idt_install();
    idt_set_gate(IRQ_BASE + 0, timer_interrupt);
    pic_remap();
    pit_set_frequency(TICK_HZ);
    pic_unmask(0);
}

void guest_exception(void)
{
    kprintf("cpuhog: unexpected CPU exception, halting\n");
    halt_forever();
}

/* ---- parameters ------------------------------------------------------- */

/* Parse "key=value" words; other words (QEMU puts the kernel's file name
 * first) are ignored. Stops at a NUL or after 512 characters. */
static void parse_params(const char *text, struct params *p)
{
    const char *end = text + 512;
    while (text < end && *text) {
        while (text < end && (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\n'))
            text++;
        const char *word = text;
        while (text < end && *text && *text != ' ' && *text != '\t' && *text != '\r' && *text != '\n')
            text++;
        uint32_t *field = 0;
        const char *digits = 0;
        if (text - word > 5 && !memcmp(word, "burn=", 5))
            field = &p->burn, digits = word + 5;
        else if (text - word > 6 && !memcmp(word, "sleep=", 6))
            field = &p->sleep_ms, digits = word + 6;
        else if (text - word > 8 && !memcmp(word, "reports=", 8))
            field = &p->reports, digits = word + 8;
        if (!field)
            continue;
        uint32_t value = 0;
        for (; digits < text && *digits >= '0' && *digits <= '9'; digits++)
            value = value * 10 + (uint32_t)(*digits - '0');
        *field = value;
    }
}

/* ---- the workload ----------------------------------------------------- */

static uint32_t table[1024];
static uint32_t rng_state = 0x2545F491;

/* xorshift32 picks a table cell; a linear congruential step updates it;
 * the cells feed a running checksum. Loads, stores, shifts, multiplies and
 * a data-dependent address: more like real code than an empty loop. */
static uint32_t burn(uint32_t iterations)
{
    uint32_t x = rng_state, sum = 0;
    for (uint32_t i = 0; i < iterations; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        uint32_t *cell = &table[x & 1023];
        *cell = *cell * 1664525u + 1013904223u + i;
        sum = (sum << 1 | sum >> 31) ^ *cell;
    }
    rng_state = x;
    return sum;
}

static void sleep_ms(uint32_t ms)
{
    uint32_t target = ticks + (ms * TICK_HZ + 999) / 1000;
    while ((int32_t)(ticks - target) < 0)
        sti_hlt();                      /* idle until the next interrupt */
}

void kmain(uint32_t magic, struct multiboot_info *mbi)
{
    struct params p = { 100000, 0, 20 };

    load_flat_gdt();
    console_init(0);
    if (magic != MULTIBOOT_BOOT_MAGIC) {
        kprintf("cpuhog: not started by a Multiboot loader, halting\n");
        halt_forever();
    }
    if (mbi->flags & MB_INFO_CMDLINE)
        parse_params((const char *)mbi->cmdline, &p);
    kprintf("cpuhog: booted by %s\n",
            (mbi->flags & MB_INFO_LOADER_NAME) ? (const char *)mbi->boot_loader_name : "?");
    kprintf("cpuhog: burn=%u sleep=%u reports=%u\n", p.burn, p.sleep_ms, p.reports);

    /* Interrupts only when we sleep: with sleep=0 this is a pure CPU hog. */
    if (p.sleep_ms) {
        setup_interrupts();
        sti();
    }
    uint32_t checksum = 0;
    for (uint32_t n = 1; p.reports == 0 || n <= p.reports; n++) {
        checksum ^= burn(p.burn);
        kprintf("cpuhog: %u checksum=%08x\n", n, checksum);
        if (p.sleep_ms)
            sleep_ms(p.sleep_ms);
    }
    kprintf("cpuhog: done, powering off\n");
    poweroff();
}
