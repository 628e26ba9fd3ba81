/*
 * memhog.c - touches memory at a chosen rate and checks that it stays intact.
 *
 * Pass 1 writes `kib` KiB of free RAM, `rate` pages per timer tick (0 = as
 * fast as it can). Every later pass first checks that each page still holds
 * what the previous pass wrote, then writes new values; a final check follows
 * the last pass. Every word depends on its address, the pass and `seed`, so no
 * two pages are alike (nothing to share) and two memhogs with different seeds
 * share nothing either. Whatever the hypervisor does to these pages - swap them
 * out and back in, move them, take them away - the guest must not notice; if
 * it does, the console says which word was wrong.
 */
#include <stdint.h>
#include "console.h"
#include "pc.h"
#include "../twins/memguest.h"

#define MAX_REPORTS 8

static uint32_t value(uint32_t address, uint32_t pass, uint32_t seed)
{
    return (address * 0x9E3779B1u) ^ (pass * 0x85EBCA6Bu) ^ (seed * 0xC2B2AE35u);
}

static void write_page(uint32_t *page, uint32_t pass, uint32_t seed)
{
    uint32_t base = (uint32_t)page;
    for (uint32_t w = 0; w < PAGE_SIZE / 4; w++)
        page[w] = value(base + 4 * w, pass, seed);
}

static uint32_t reported;

static uint32_t check_page(const uint32_t *page, uint32_t pass, uint32_t seed)
{
    uint32_t base = (uint32_t)page, wrong = 0;
    for (uint32_t w = 0; w < PAGE_SIZE / 4; w++) {
        uint32_t want = value(base + 4 * w, pass, seed);
        if (page[w] == want)
            continue;
        if (reported++ < MAX_REPORTS)
            kprintf("memhog: CORRUPTED word at %p: %08x, expected %08x (pass %u)\n",
                    (void *)&page[w], page[w], want, pass);
        wrong++;
    }
    return wrong;
}

void kmain(uint32_t magic, struct multiboot_info *mbi)
{
    memguest_init(magic, mbi, "memhog");
    uint32_t kib = param("kib", 1024), rate = param("rate", 0);
    uint32_t passes = param("passes", 3), seed = param("seed", 1);
    kprintf("memhog: booted by %s\n", memguest_loader());
    kprintf("memhog: kib=%u rate=%u passes=%u seed=%u\n", kib, rate, passes, seed);

    uint32_t start = free_ram_start(), pages = kib / 4;
    if (start + pages * PAGE_SIZE > free_ram_end() || start + pages * PAGE_SIZE < start) {
        pages = (free_ram_end() - start) / PAGE_SIZE;
        kprintf("memhog: only %u KiB of free RAM\n", pages * 4);
    }
    uint32_t errors = 0;
    for (uint32_t pass = 1; pass <= passes; pass++) {
        uint32_t wrong = 0;
        for (uint32_t i = 0; i < pages; i++) {
            uint32_t *page = (uint32_t *)(start + i * PAGE_SIZE);
            if (pass > 1)
                wrong += check_page(page, pass - 1, seed);
            write_page(page, pass, seed);
            if (rate && (i + 1) % rate == 0)
                sleep_ticks(1);
        }
        if (pass == 1)
            kprintf("memhog: pass 1: wrote %u pages\n", pages);
        else
            kprintf("memhog: pass %u: checked and rewrote %u pages, %u words wrong\n", pass, pages, wrong);
        errors += wrong;
    }
    uint32_t wrong = 0;
    for (uint32_t i = 0; i < pages; i++)
        wrong += check_page((const uint32_t *)(start + i * PAGE_SIZE), passes, seed);
    kprintf("memhog: final check: %u pages, %u words wrong\n", pages, wrong);
    errors += wrong;
    kprintf("memhog: done, %u errors, powering off\n", errors);
    poweroff();
}
