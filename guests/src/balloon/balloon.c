/*
 * balloon.c - a demo guest for the balloon driver (driver.c).
 *
 * Its "OS" is a stack of free pages: every page of free RAM. First it uses
 * `cache` KiB of them (0: all of them) as a cache and frees them again, so the
 * host really holds frames behind free guest pages, as a long-running OS's page
 * cache leaves them. Then, for `ticks` timer ticks, it polls the balloon target
 * every tick and, every `work` ticks, runs a workload on up to `kib` KiB of
 * pages taken from the stack (fewer while the balloon holds many), checking
 * what it wrote. At the end it takes every page back from the balloon and
 * powers off.
 *
 * Without the sandbox's hypercall port (under QEMU) the driver stays off and
 * the rest runs the same.
 */
#include <stdint.h>
#include "console.h"
#include "pc.h"
#include "../twins/memguest.h"
#include "driver.h"

#define MAX_FREE 8192                   /* pages: 32 MiB of guest RAM at most */

static uint32_t free_pages[MAX_FREE];   /* frame numbers of free pages: a stack */
static uint32_t free_count;

static uint32_t take_page(void)
{
    return free_count ? free_pages[--free_count] : 0;
}

static void give_page(uint32_t pfn)
{
    if (free_count < MAX_FREE)
        free_pages[free_count++] = pfn;
}

static const struct balloon_os os = { take_page, give_page };

static uint32_t pattern(uint32_t address, uint32_t round)
{
    return (address * 0x9E3779B1u) + round;
}

/* Take up to `pages` pages, write and check them, free them; returns wrong words. */
static uint32_t workload(uint32_t pages, uint32_t round)
{
    static uint32_t mine[MAX_FREE];
    uint32_t n = 0, wrong = 0;
    while (n < pages && (mine[n] = take_page()))
        n++;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t *page = (uint32_t *)(mine[i] * PAGE_SIZE);
        for (uint32_t w = 0; w < PAGE_SIZE / 4; w++)
            page[w] = pattern((uint32_t)&page[w], round);
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t *page = (const uint32_t *)(mine[i] * PAGE_SIZE);
        for (uint32_t w = 0; w < PAGE_SIZE / 4; w++)
            if (page[w] != pattern((uint32_t)&page[w], round) && wrong++ < 4)
                kprintf("balloon: CORRUPTED word at %p\n", (void *)&page[w]);
    }
    while (n)
        give_page(mine[--n]);
    return wrong;
}

void kmain(uint32_t magic, struct multiboot_info *mbi)
{
    memguest_init(magic, mbi, "balloon");
    uint32_t kib = param("kib", 1024), cache = param("cache", 0);
    uint32_t run = param("ticks", 300), every = param("work", 10);
    kprintf("balloon: booted by %s\n", memguest_loader());
    kprintf("balloon: kib=%u cache=%u ticks=%u work=%u\n", kib, cache, run, every);
    if (balloon_init(&os))
        kprintf("balloon: driver on: the hypervisor answered on port 0x0d00\n");
    else
        kprintf("balloon: driver off: no hypervisor port (not running on the sandbox)\n");

    for (uint32_t at = free_ram_end(); at > free_ram_start() && free_count < MAX_FREE; )
        give_page((at -= PAGE_SIZE) / PAGE_SIZE);      /* lowest page on top of the stack */
    uint32_t errors = workload(cache ? cache / 4 : free_count, 0);
    if (cache)
        kprintf("balloon: used %u KiB as a cache and freed it\n", cache);
    else
        kprintf("balloon: used all free RAM as a cache and freed it\n");

    uint32_t start = ticks, round = 1, last = 0;
    while (ticks - start < run) {
        balloon_poll();
        if (balloon_pages() != last && balloon_pages() == balloon_target()) {
            last = balloon_pages();
            kprintf("balloon: the balloon holds %u pages (%u KiB) for the hypervisor\n",
                    last, last * 4);
        }
        if ((ticks - start) % every == 0)
            errors += workload(kib / 4, round++);
        sleep_ticks(1);
    }
    if (balloon_release_all())
        kprintf("balloon: took every page back from the balloon\n");
    errors += workload(kib / 4, round);
    kprintf("balloon: done, %u errors, powering off\n", errors);
    poweroff();
}
