/* memguest.c - the small runtime of the memory guests (see memguest.h). */
#include "console.h"
#include "io.h"
#include "memguest.h"
#include "idt.h"
#include "pc.h"
#include "string.h"

volatile uint32_t ticks;

void load_flat_gdt(void);               /* lib/flat_gdt.S */
void timer_interrupt(void);            /* lib/timer_isr.S */
void exception_interrupt(void);
void ignore_interrupt(void);

extern char __kernel_end[];             /* kernel.ld */

static const char *guest_name = "guest";
static char cmdline[256];
static char loader[32] = "?";
static uint32_t ram_end;



/* Any CPU exception: there is no recovering in a guest this small. */
void guest_exception(void)
{
    kprintf("%s: unexpected CPU exception, halting\n", guest_name);
    halt_forever();
}

static void copy_string(char *dst, const char *src, uint32_t size)
{
    uint32_t i = 0;
    for (; src && src[i] && i + 1 < size; i++)
        dst[i] = src[i];
    dst[i] = 0;
}

/* The usable region of the memory map that contains 1 MiB, where the kernel is. */
static uint32_t find_ram_end(const struct multiboot_info *mbi)
{
    if (mbi->flags & MB_INFO_MMAP) {
        uint32_t at = mbi->mmap_addr, end = mbi->mmap_addr + mbi->mmap_length;
        while (at < end) {
            const struct multiboot_mmap_entry *e = (const void *)at;
            uint64_t last = e->base + e->length;
            if (e->type == 1 && e->base <= 0x100000 && last > 0x100000)
                return last > 0xFFFFF000u ? 0xFFFFF000u : (uint32_t)last;
            at += e->size + 4;
        }
    }
    if (mbi->flags & MB_INFO_MEMORY)
        return 0x100000 + mbi->mem_upper * 1024;
    return 0x100000 + 1024 * 1024;      /* nobody told us: assume 2 MiB of RAM */
}

void memguest_init(uint32_t magic, const struct multiboot_info *mbi, const char *name)
{
    guest_name = name;
    load_flat_gdt();
    console_init(0);
    if (magic != MULTIBOOT_BOOT_MAGIC) {
        kprintf("%s: not started by a Multiboot loader, halting\n", name);
        halt_forever();
    }
    /* Copy what we need before we overwrite the loader's memory. */
    if (mbi->flags & MB_INFO_CMDLINE)
        copy_string(cmdline, (const char *)mbi->cmdline, sizeof(cmdline));
    if (mbi->flags & MB_INFO_LOADER_NAME)
        copy_string(loader, (const char *)mbi->boot_loader_name, sizeof(loader));
    ram_end = find_ram_end(mbi) & ~(PAGE_SIZE - 1);

    idt_install();
    idt_set_gate(IRQ_BASE + 0, timer_interrupt);
    pic_remap();
    pit_set_frequency(TICK_HZ);
    pic_unmask(0);
    sti();
}

const char *memguest_loader(void)
{
    return loader;
}

uint32_t param(const char *key, uint32_t fallback)
{
    uint32_t len = strlen(key);
    for (const char *p = cmdline; *p; ) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        const char *word = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            p++;
        if ((uint32_t)(p - word) > len && !memcmp(word, key, len) && word[len] == '=') {
            uint32_t value = 0;
            for (const char *d = word + len + 1; d < p && *d >= '0' && *d <= '9'; d++)
                value = value * 10 + (uint32_t)(*d - '0');
            return value;
        }
    }
    return fallback;
}

uint32_t free_ram_start(void)
{
    return ((uint32_t)__kernel_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
}

uint32_t free_ram_end(void)
{
    return ram_end;
}

void sleep_ticks(uint32_t n)
{
    uint32_t target = ticks + n;
    while ((int32_t)(ticks - target) < 0)
        sti_hlt();
}
