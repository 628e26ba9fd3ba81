/* driver.h - the sandbox balloon driver, for any guest OS that can lend it pages.
 *
 * The OS gives the driver two functions: take_page() hands over one free page
 * (its frame number, or 0 when the OS has none to spare) and give_page() takes
 * one back. The driver polls the hypervisor's target and moves pages between
 * the OS and the hypervisor, a batch at a time.
 */
#ifndef BALLOON_DRIVER_H
#define BALLOON_DRIVER_H

#include <stdint.h>

struct balloon_os {
    uint32_t (*take_page)(void);
    void (*give_page)(uint32_t pfn);
};

#define BALLOON_MAX_PAGES 4096          /* 16 MiB: the most this driver can hold */
#define BALLOON_BATCH 64                /* pages per hypercall */

int balloon_init(const struct balloon_os *os);  /* 1 if the sandbox's hypercall port is there */
int balloon_present(void);
int balloon_poll(void);                 /* one batch toward the target: +inflated / -deflated */
int balloon_release_all(void);          /* give every page back to the OS, whatever the target */
uint32_t balloon_pages(void);           /* pages in the balloon now */
uint32_t balloon_target(void);          /* what the hypervisor asked for at the last poll */

#endif
