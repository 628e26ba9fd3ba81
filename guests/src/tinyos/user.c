/*
 * user.c - programs that run in ring 3.
 *
 * They live in the kernel image (there is no program loader), but they run
 * with CPL 3: privileged instructions (CLI, HLT, IN, OUT, LGDT...) fault, and
 * the only way to reach the kernel is a system call, `int 0x80`. So this file
 * uses nothing but the small wrappers below; calling kernel functions from
 * here would break the rules (and crash on the first privileged instruction).
 */
#include <stdint.h>
#include "tinyos.h"

static inline uint32_t syscall2(uint32_t number, uint32_t a, uint32_t b)
{
    uint32_t result;
    __asm__ volatile("int $0x80" : "=a"(result) : "a"(number), "b"(a), "c"(b) : "memory");
    return result;
}

static void sys_sleep(uint32_t ticks)   { syscall2(SYS_SLEEP, ticks, 0); }
static uint32_t sys_ticks(void)         { return syscall2(SYS_TICKS, 0, 0); }
static void sys_exit(void)              { syscall2(SYS_EXIT, 0, 0); }

static void sys_print(const char *text)
{
    uint32_t n = 0;
    while (text[n])
        n++;
    syscall2(SYS_WRITE, (uint32_t)text, n);
}

/* "counter": works in bursts and naps in between. A burst is plain counting
 * until the timer has ticked once; the timer may preempt it at any moment
 * (it never has to give up the CPU itself). Then it sleeps for 4 ticks, so
 * it uses about a fifth of the CPU: watch its TICKS grow in `ps`. */
volatile uint32_t counter_value;

void user_counter(void)
{
    for (;;) {
        uint32_t start = sys_ticks();
        do {
            for (int i = 0; i < 100000; i++)
                counter_value++;
        } while (sys_ticks() == start);
        sys_sleep(4);
    }
}

/* "rogue": tries a privileged instruction. With IOPL 0, CLI in ring 3 raises
 * #GP (general protection); the kernel kills the task and carries on. */
void user_rogue(void)
{
    sys_print("rogue: hello from ring 3, now trying CLI\n");
    __asm__ volatile("cli");
    sys_print("rogue: CLI worked?! the CPU let ring 3 disable interrupts\n");
    sys_exit();
}
