/*
 * memory.c - what the boot loader told us about RAM.
 *
 * The BIOS knows the memory layout (int 0x15, E820); the kernel, in protected
 * mode, can no longer ask it. So the boot loader asks, and hands the answer
 * over in the Multiboot info: a memory map (a list of regions with a type)
 * and, more coarsely, mem_lower/mem_upper in KiB. We copy what we need at
 * boot, before anything could overwrite the loader's memory.
 */
#include "console.h"
#include "string.h"
#include "tinyos.h"

#define MAX_REGIONS 32

struct region {
    uint64_t base, length;
    uint32_t type;
};

static struct region regions[MAX_REGIONS];
static int region_count;
static uint32_t mem_lower_kib, mem_upper_kib;
static int have_sizes;
static char loader_name[32] = "unknown";

extern char __kernel_start[], __text_end[], __data_start[], __kernel_end[];   /* kernel.ld */

void memory_init(uint32_t magic, const struct multiboot_info *info)
{
    if (magic != MULTIBOOT_BOOT_MAGIC)
        return;
    if (info->flags & MB_INFO_LOADER_NAME) {
        const char *name = (const char *)info->boot_loader_name;
        for (int i = 0; i < (int)sizeof(loader_name) - 1; i++)
            if (!(loader_name[i] = name[i]))
                break;
    }
    if (info->flags & MB_INFO_MEMORY) {
        mem_lower_kib = info->mem_lower;
        mem_upper_kib = info->mem_upper;
        have_sizes = 1;
    }
    if (info->flags & MB_INFO_MMAP) {
        uint32_t at = info->mmap_addr, end = info->mmap_addr + info->mmap_length;
        while (at < end && region_count < MAX_REGIONS) {
            const struct multiboot_mmap_entry *e = (const void *)at;
            regions[region_count++] = (struct region){ e->base, e->length, e->type };
            at += e->size + 4;          /* the size field does not count itself */
        }
    }
}

const char *boot_loader_name(void)
{
    return loader_name;
}

static const char *region_type(uint32_t type)
{
    static const char *const names[] = { "?", "usable", "reserved", "ACPI data", "ACPI NVS", "bad" };
    return type < 6 ? names[type] : "?";
}

/* Usable RAM in KiB: the sum of the usable regions, else the two sizes. */
static uint32_t usable_kib(void)
{
    uint64_t total = 0;
    for (int i = 0; i < region_count; i++)
        if (regions[i].type == 1)
            total += regions[i].length;
    if (region_count)
        return (uint32_t)(total >> 10);
    return have_sizes ? mem_lower_kib + mem_upper_kib : 0;
}

uint32_t memory_top(void)
{
    for (int i = 0; i < region_count; i++) {
        uint64_t end = regions[i].base + regions[i].length;
        if (regions[i].type == 1 && regions[i].base <= 0x100000 && end > 0x100000)
            return end > 0xFFFFF000u ? 0xFFFFF000u : (uint32_t)end & ~0xFFFu;
    }
    return have_sizes ? 0x100000 + mem_upper_kib * 1024 : 0x100000;
}

void memory_print_summary(void)
{
    kprintf("memory: %u KiB usable (%s)\n", usable_kib(),
            region_count ? "E820 memory map" : have_sizes ? "mem_lower/mem_upper" : "no information");
}

void memory_print_map(void)
{
    if (region_count) {
        kprintf("memory map from %s (BIOS E820):\n", loader_name);
        for (int i = 0; i < region_count; i++) {
            uint64_t last = regions[i].base + regions[i].length - 1;
            kprintf("  %08x%08x-%08x%08x  %-10s %u KiB\n",
                    (uint32_t)(regions[i].base >> 32), (uint32_t)regions[i].base,
                    (uint32_t)(last >> 32), (uint32_t)last,
                    region_type(regions[i].type), (uint32_t)(regions[i].length >> 10));
        }
    }
    if (have_sizes)
        kprintf("mem_lower %u KiB (below 1 MiB), mem_upper %u KiB (from 1 MiB)\n",
                mem_lower_kib, mem_upper_kib);
    kprintf("usable RAM: %u KiB\n", usable_kib());
    uint32_t start = (uint32_t)__kernel_start, end = (uint32_t)__kernel_end;
    kprintf("kernel: %p-%p, %u KiB (code+rodata %u KiB, data+bss %u KiB)\n",
            (void *)start, (void *)(end - 1), (end - start + 1023) / 1024,
            ((uint32_t)__text_end - start + 1023) / 1024,
            (end - (uint32_t)__data_start + 1023) / 1024);
}
