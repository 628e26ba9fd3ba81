/*
 * balloon.c - tinyos's side of the balloon driver (../balloon/driver.c).
 *
 * tinyos never allocates memory at run time: everything above the kernel image
 * is free. So its page pool is simply [first free page, top), and the balloon
 * grows down from the top of RAM: take_page() lends the page just below `top`,
 * give_page() takes it back. The idle task polls the driver before each HLT, so
 * the balloon follows the hypervisor's target within a timer tick or two.
 * Under QEMU (no hypercall port) the driver stays off.
 */
#include "console.h"
#include "tinyos.h"
#include "../balloon/driver.h"

#define PAGE 4096u

extern char __kernel_end[];             /* kernel.ld */

static uint32_t low_pfn, top_pfn;        /* the free pool: frames [low_pfn, top_pfn) */

static uint32_t take_page(void)
{
    return top_pfn > low_pfn ? --top_pfn : 0;
}

static void give_page(uint32_t pfn)
{
    if (pfn == top_pfn)                 /* the driver gives pages back newest first */
        top_pfn++;
}

static const struct balloon_os tinyos_pool = { take_page, give_page };

void balloon_start(void)
{
    low_pfn = ((uint32_t)__kernel_end + PAGE - 1) / PAGE;
    top_pfn = memory_top() / PAGE;
    balloon_init(&tinyos_pool);
}

void balloon_idle(void)
{
    balloon_poll();
}

void balloon_print_status(void)
{
    if (!balloon_present()) {
        kprintf("balloon: no hypervisor port (not on the sandbox): the driver is off\n");
        return;
    }
    kprintf("balloon: holding %u pages (%u KiB) of %u free; hypervisor target %u pages\n",
            balloon_pages(), balloon_pages() * 4, top_pfn - low_pfn + balloon_pages(),
            balloon_target());
}
