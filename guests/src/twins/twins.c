/*
 * twins.c - a guest whose memory is the same in every copy of it.
 *
 * It fills `kib` KiB of free RAM with a pattern that depends only on the
 * address (each page starts with "TWIN" and its own address, so a hex dump
 * shows what it is), `rate` pages per timer tick (0 = all at once), then checks
 * the whole area `checks` times, `interval` ticks apart, and powers off.
 *
 * Every page differs from every other page of the same VM, but page N of one
 * copy equals page N of any other copy: run eight twins and a page-sharing
 * hypervisor can keep one copy of their memory instead of eight, unless it
 * only shares pages within a VM ("salting"). Every check reads every word, so
 * any mistake in sharing or swapping shows up on the console.
 */
#include <stdint.h>
#include "console.h"
#include "memguest.h"
#include "pc.h"

#define MAGIC 0x4E495754u               /* "TWIN" in memory, little-endian */
#define MAX_REPORTS 8                   /* corrupted words printed per check */

static uint32_t pattern(uint32_t address)
{
    return (address * 2654435761u) ^ 0x5EED7135u;
}

static void fill_page(uint32_t *page)
{
    uint32_t base = (uint32_t)page;
    page[0] = MAGIC;
    page[1] = base;
    for (uint32_t w = 2; w < PAGE_SIZE / 4; w++)
        page[w] = pattern(base + 4 * w);
}

/* Returns the number of wrong words in the page (reporting the first few). */
static uint32_t check_page(const uint32_t *page, uint32_t *reported)
{
    uint32_t base = (uint32_t)page, wrong = 0;
    for (uint32_t w = 0; w < PAGE_SIZE / 4; w++) {
        uint32_t want = w == 0 ? MAGIC : w == 1 ? base : pattern(base + 4 * w);
        if (page[w] == want)
            continue;
        if ((*reported)++ < MAX_REPORTS)
            kprintf("twins: CORRUPTED word at %p: %08x, expected %08x\n",
                    (void *)&page[w], page[w], want);
        wrong++;
    }
    return wrong;
}

void kmain(uint32_t magic, struct multiboot_info *mbi)
{
    memguest_init(magic, mbi, "twins");
    uint32_t kib = param("kib", 1024), rate = param("rate", 0);
    uint32_t checks = param("checks", 3), interval = param("interval", 10);
    kprintf("twins: booted by %s\n", memguest_loader());
    kprintf("twins: kib=%u rate=%u checks=%u interval=%u\n", kib, rate, checks, interval);

    uint32_t start = free_ram_start(), pages = kib / 4;
    if (start + pages * PAGE_SIZE > free_ram_end() || start + pages * PAGE_SIZE < start) {
        pages = (free_ram_end() - start) / PAGE_SIZE;
        kprintf("twins: only %u KiB of free RAM\n", pages * 4);
    }
    for (uint32_t i = 0; i < pages; i++) {
        fill_page((uint32_t *)(start + i * PAGE_SIZE));
        if (rate && (i + 1) % rate == 0)
            sleep_ticks(1);
    }
    kprintf("twins: filled %u pages with the twin pattern\n", pages);

    uint32_t errors = 0;
    for (uint32_t n = 1; n <= checks; n++) {
        sleep_ticks(interval);
        uint32_t wrong = 0, reported = 0;
        for (uint32_t i = 0; i < pages; i++)
            wrong += check_page((const uint32_t *)(start + i * PAGE_SIZE), &reported);
        if (wrong)
            kprintf("twins: check %u: %u words CORRUPTED\n", n, wrong);
        else
            kprintf("twins: check %u: %u pages ok\n", n, pages);
        errors += wrong;
    }
    kprintf("twins: done, %u errors, powering off\n", errors);
    poweroff();
}
