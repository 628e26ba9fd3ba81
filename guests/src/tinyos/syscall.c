/*
 * syscall.c - system calls: how ring-3 code asks the kernel for anything.
 *
 * A user task cannot call kernel functions (it could jump there, but any
 * privileged instruction would fault). Instead it executes `int 0x80`, whose
 * IDT gate has DPL 3, so ring 3 may use it: the CPU switches to ring 0 and
 * to the kernel stack from the TSS. Convention: EAX = call number, EBX/ECX
 * = arguments, result back in EAX.
 */
#include "console.h"
#include "tinyos.h"

/* Each handler gets the caller's registers and returns the frame to resume,
 * which differs from the caller's when the call gives up the CPU. */
struct syscall {
    const char *name;
    struct trapframe *(*handler)(struct trapframe *f);
};

static struct trapframe *sys_exit(struct trapframe *f)
{
    current->state = TASK_DEAD;
    return schedule(f);
}

static struct trapframe *sys_yield(struct trapframe *f)
{
    return schedule(f);
}

static struct trapframe *sys_sleep(struct trapframe *f)
{
    current->wake_at = ticks + f->ebx;
    current->state = TASK_SLEEPING;
    return schedule(f);
}

static struct trapframe *sys_ticks(struct trapframe *f)
{
    f->eax = ticks;
    return f;
}

/* Without paging every address is reachable, so the kernel trusts the
 * pointer; a real kernel must check that it points into the caller's memory. */
static struct trapframe *sys_write(struct trapframe *f)
{
    const char *text = (const char *)f->ebx;
    for (uint32_t i = 0; i < f->ecx; i++)
        console_putc(text[i]);
    f->eax = f->ecx;
    return f;
}

static struct trapframe *sys_getpid(struct trapframe *f)
{
    f->eax = current->pid;
    return f;
}

static struct trapframe *sys_block(struct trapframe *f)
{
    current->state = TASK_BLOCKED;      /* until someone calls task_wake() */
    return schedule(f);
}

static const struct syscall syscalls[SYS_COUNT] = {
    [SYS_EXIT]   = { "exit",   sys_exit },    /* end the calling task */
    [SYS_YIELD]  = { "yield",  sys_yield },   /* let another task run */
    [SYS_SLEEP]  = { "sleep",  sys_sleep },   /* EBX = ticks to sleep */
    [SYS_TICKS]  = { "ticks",  sys_ticks },   /* EAX = timer ticks since boot */
    [SYS_WRITE]  = { "write",  sys_write },   /* EBX = text, ECX = length */
    [SYS_GETPID] = { "getpid", sys_getpid },  /* EAX = the caller's pid */
    [SYS_BLOCK]  = { "block",  sys_block },   /* wait for task_wake (kernel tasks) */
};

struct trapframe *syscall_dispatch(struct trapframe *f)
{
    if (f->eax >= SYS_COUNT || ((f->cs & 3) == 3 && f->eax == SYS_BLOCK)) {
        f->eax = (uint32_t)-1;          /* unknown call (or not for user tasks) */
        return f;
    }
    return syscalls[f->eax].handler(f);
}
