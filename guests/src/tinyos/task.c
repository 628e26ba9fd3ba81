/*
 * task.c - tasks and a preemptive round-robin scheduler.
 *
 * Each task owns a kernel stack. While a task is not running, its registers
 * sit in a struct trapframe on that stack (pushed by isr.S when the interrupt
 * that stopped it arrived) and task->frame points there. Switching tasks is
 * therefore just: remember the current frame, pick another task, return its
 * frame to isr.S. The timer interrupt (IRQ 0, 100 times a second) does this,
 * which is what makes the scheduling preemptive: a task does not have to
 * cooperate to lose the CPU.
 *
 * Task 0, "idle", is the boot code itself (kmain's final loop): it runs
 * only when no other task is ready, and halts the CPU until an interrupt.
 */
#include "console.h"
#include "io.h"
#include "string.h"
#include "tinyos.h"

#define STACK_SIZE 4096

struct task tasks[MAX_TASKS];
struct task *current;
volatile uint32_t ticks;

static uint32_t next_pid;
static uint8_t kernel_stacks[MAX_TASKS][STACK_SIZE] __attribute__((aligned(16)));
static uint8_t user_stacks[MAX_TASKS][STACK_SIZE] __attribute__((aligned(16)));

static const char *const state_names[] = {
    [TASK_UNUSED] = "unused", [TASK_RUNNING] = "running", [TASK_READY] = "ready",
    [TASK_SLEEPING] = "sleeping", [TASK_BLOCKED] = "blocked", [TASK_DEAD] = "dead",
};

const char *task_state_name(enum task_state state)
{
    return state_names[state];
}

void task_init_idle(void)
{
    struct task *idle = &tasks[0];
    idle->pid = next_pid++;
    memcpy(idle->name, "idle", 5);
    idle->ring = 0;
    idle->state = TASK_RUNNING;
    current = idle;
}

/* What a task's entry function returns to: end the task. */
static void kernel_task_exit(void)
{
    __asm__ volatile("int $0x80" : : "a"(SYS_EXIT));
}

static void user_task_exit(void)   /* runs in ring 3 */
{
    __asm__ volatile("int $0x80" : : "a"(SYS_EXIT));
}

/* Create a task whose first "return from interrupt" starts entry() in the
 * given ring: we build the trapframe that isr.S will pop. */
struct task *task_create(const char *name, void (*entry)(void), int ring)
{
    int slot;
    for (slot = 1; slot < MAX_TASKS; slot++)
        if (tasks[slot].state == TASK_UNUSED || tasks[slot].state == TASK_DEAD)
            break;
    if (slot == MAX_TASKS)
        return 0;

    struct task *t = &tasks[slot];
    memset(t, 0, sizeof(*t));
    t->pid = next_pid++;
    for (int i = 0; i < (int)sizeof(t->name) - 1 && name[i]; i++)
        t->name[i] = name[i];
    t->ring = ring;
    t->kernel_stack_top = (uint32_t)&kernel_stacks[slot][STACK_SIZE];

    /* Below the kernel stack top: a return address for entry(), then the frame.
     * A ring-0 frame stops at eflags: IRET to the same ring pops only three words. */
    uint32_t *top = (uint32_t *)t->kernel_stack_top;
    struct trapframe *f;
    if (ring == 0) {
        top[-1] = (uint32_t)kernel_task_exit;
        f = (struct trapframe *)((uint8_t *)&top[-1] - (sizeof(*f) - 8));
    } else {
        f = (struct trapframe *)((uint8_t *)top - sizeof(*f));
    }
    memset(f, 0, ring == 0 ? sizeof(*f) - 8 : sizeof(*f));
    uint32_t data = ring == 0 ? KERNEL_DS : USER_DS;
    f->ds = f->es = f->fs = f->gs = data;
    f->eip = (uint32_t)entry;
    f->cs = ring == 0 ? KERNEL_CS : USER_CS;
    f->eflags = 0x202;              /* IF=1 (interrupts on), IOPL=0 */
    if (ring == 3) {
        uint32_t *user_top = (uint32_t *)&user_stacks[slot][STACK_SIZE];
        user_top[-1] = (uint32_t)user_task_exit;
        f->user_esp = (uint32_t)&user_top[-1];
        f->user_ss = USER_DS;
    }
    t->frame = f;
    t->state = TASK_READY;
    return t;
}

int task_alive(uint32_t pid)
{
    for (int i = 0; i < MAX_TASKS; i++)
        if (tasks[i].pid == pid && tasks[i].state != TASK_UNUSED && tasks[i].state != TASK_DEAD)
            return 1;
    return 0;
}

/* Round robin: the next ready task after the current one; idle if none. */
static struct task *pick_next(void)
{
    int start = current - tasks;
    for (int i = 1; i <= MAX_TASKS; i++) {
        struct task *t = &tasks[(start + i) % MAX_TASKS];
        if (t != &tasks[0] && t->state == TASK_READY)
            return t;
    }
    return &tasks[0];
}

struct trapframe *schedule(struct trapframe *frame)
{
    current->frame = frame;
    if (current->state == TASK_RUNNING)
        current->state = TASK_READY;
    struct task *next = pick_next();
    next->state = TASK_RUNNING;
    current = next;
    cpu_set_kernel_stack(next->kernel_stack_top);  /* where ring 3 -> 0 entries land */
    return next->frame;
}

/* IRQ 0: count time, charge it to the running task, wake sleepers. */
void task_timer_tick(void)
{
    ticks++;
    current->ticks_run++;
    for (int i = 0; i < MAX_TASKS; i++)
        if (tasks[i].state == TASK_SLEEPING && (int32_t)(ticks - tasks[i].wake_at) >= 0)
            tasks[i].state = TASK_READY;
}

/* After an interrupt: the timer ends the time slice; any other IRQ switches
 * only if the CPU was idle (e.g. a key press woke the shell). */
struct trapframe *task_after_irq(struct trapframe *frame, int irq)
{
    if (irq == 0 || current == &tasks[0])
        return schedule(frame);
    return frame;
}

void task_wake(struct task *task)
{
    if (task && task->state == TASK_BLOCKED)
        task->state = TASK_READY;
}

void task_yield(void)
{
    __asm__ volatile("int $0x80" : : "a"(SYS_YIELD) : "memory");
}

void task_sleep(uint32_t n)
{
    __asm__ volatile("int $0x80" : : "a"(SYS_SLEEP), "b"(n) : "memory");
}

void task_block(void)
{
    __asm__ volatile("int $0x80" : : "a"(SYS_BLOCK) : "memory");
}
