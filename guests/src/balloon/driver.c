/*
 * driver.c - the balloon driver: lends the guest's free pages to the hypervisor.
 *
 * When the host runs short of memory, the hypervisor raises this VM's balloon
 * target. The driver then takes free pages from its OS (so the OS will not use
 * them) and tells the hypervisor their frame numbers; the hypervisor frees the
 * host RAM behind them. When memory is plentiful again the target drops, and
 * the driver asks for pages back and returns them to the OS.
 *
 * The guest, not the hypervisor, decides which pages go: free ones, so nothing
 * the guest needs is lost. That is why ballooning comes before hypervisor
 * swapping, which has to guess.
 */
#include "driver.h"
#include "hypercall.h"

static const struct balloon_os *os;
static int present;
static uint32_t held[BALLOON_MAX_PAGES];  /* frame numbers in the balloon, newest last */
static uint32_t count, target;
static uint32_t batch[BALLOON_BATCH];

int balloon_init(const struct balloon_os *ops)
{
    os = ops;
    present = sbx_present();
    return present;
}

int balloon_present(void)
{
    return present;
}

static int inflate(uint32_t want)
{
    uint32_t n = 0;
    while (n < want && n < BALLOON_BATCH && count + n < BALLOON_MAX_PAGES) {
        uint32_t pfn = os->take_page();
        if (!pfn)
            break;                      /* the OS has nothing left to lend */
        batch[n++] = pfn;
    }
    if (!n)
        return 0;
    uint32_t taken = sbx_call(SBX_BALLOON_INFLATE, (uint32_t)batch, n, 0);
    for (uint32_t i = 0; i < n; i++) {
        if (i < taken)
            held[count++] = batch[i];
        else
            os->give_page(batch[i]);    /* refused: the OS keeps it */
    }
    return (int)taken;
}

static int deflate(uint32_t want)
{
    uint32_t n = 0;
    while (n < want && n < BALLOON_BATCH && n < count) {
        batch[n] = held[count - 1 - n];
        n++;
    }
    if (!n)
        return 0;
    sbx_call(SBX_BALLOON_DEFLATE, (uint32_t)batch, n, 0);
    for (uint32_t i = 0; i < n; i++)
        os->give_page(held[--count]);
    return -(int)n;
}

int balloon_poll(void)
{
    if (!present)
        return 0;
    target = sbx_call(SBX_BALLOON_TARGET, 0, 0, 0);
    if (target > count)
        return inflate(target - count);
    if (target < count)
        return deflate(count - target);
    return 0;
}

int balloon_release_all(void)
{
    int moved = 0;
    while (present && count)
        moved += deflate(count);
    return moved;
}

uint32_t balloon_pages(void)
{
    return count;
}

uint32_t balloon_target(void)
{
    return target;
}
