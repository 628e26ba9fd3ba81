/*
 * cpu.c - the x86 tables every protected-mode kernel needs, and the one C
 * function all interrupts go through.
 *
 * GDT  segment descriptors: ring 0 code/data, ring 3 code/data, and the TSS.
 *      Segments are flat (base 0, limit 4 GiB): tinyos separates rings by
 *      privilege level, not by memory (there is no paging).
 * TSS  the Task State Segment; x86 reads only esp0/ss0 from it here: the
 *      kernel stack to switch to when an interrupt arrives in ring 3.
 * IDT  one gate per vector: exceptions 0-31, IRQs 32-47, syscalls 0x80.
 */
#include "console.h"
#include "io.h"
#include "pc.h"
#include "tinyos.h"

/* ---- GDT and TSS --------------------------------------------------------- */

struct tss {
    uint32_t prev, esp0, ss0, esp1, ss1, esp2, ss2;
    uint32_t cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
    uint32_t es, cs, ss, ds, fs, gs, ldt;
    uint16_t trap, iomap_base;
} __attribute__((packed));

static struct tss tss;
static uint64_t gdt[6];

/* Pack a segment descriptor. access: present, privilege level, type;
 * flags: granularity (limit in 4 KiB pages) and 32-bit default size. */
static uint64_t descriptor(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
    return (uint64_t)(limit & 0xFFFF)
         | (uint64_t)(base & 0xFFFFFF) << 16
         | (uint64_t)access << 40
         | (uint64_t)((limit >> 16) & 0xF) << 48
         | (uint64_t)(flags & 0xF) << 52
         | (uint64_t)(base >> 24) << 56;
}

void load_gdt(const void *descriptor);      /* isr.S */

static void gdt_init(void)
{
    gdt[0] = 0;                                                /* the null selector */
    gdt[1] = descriptor(0, 0xFFFFF, 0x9A, 0xC);                /* 0x08 ring 0 code  */
    gdt[2] = descriptor(0, 0xFFFFF, 0x92, 0xC);                /* 0x10 ring 0 data  */
    gdt[3] = descriptor(0, 0xFFFFF, 0xFA, 0xC);                /* 0x18 ring 3 code  */
    gdt[4] = descriptor(0, 0xFFFFF, 0xF2, 0xC);                /* 0x20 ring 3 data  */
    gdt[5] = descriptor((uint32_t)&tss, sizeof(tss) - 1, 0x89, 0x0);   /* 0x28 TSS */
    tss.ss0 = KERNEL_DS;
    tss.iomap_base = sizeof(tss);   /* no I/O bitmap: ring 3 may not touch any port */
    struct { uint16_t limit; uint32_t base; } __attribute__((packed)) gdtr = {
        sizeof(gdt) - 1, (uint32_t)gdt
    };
    load_gdt(&gdtr);
}

void cpu_set_kernel_stack(uint32_t esp0)
{
    tss.esp0 = esp0;
}

/* ---- IDT ------------------------------------------------------------------ */

struct idt_gate {
    uint16_t offset_low, selector;
    uint8_t zero, type;
    uint16_t offset_high;
} __attribute__((packed));

#define GATE_KERNEL 0x8E    /* present, DPL 0, 32-bit interrupt gate (clears IF) */
#define GATE_USER   0xEE    /* the same with DPL 3: `int` allowed from ring 3 */

static struct idt_gate idt[256];
extern const uint32_t isr_table[48];        /* isr.S */
void isr_syscall(void);

static void set_gate(int vector, uint32_t handler, uint8_t type)
{
    idt[vector] = (struct idt_gate){ handler & 0xFFFF, KERNEL_CS, 0, type, handler >> 16 };
}

static void idt_init(void)
{
    for (int v = 0; v < 48; v++)
        set_gate(v, isr_table[v], GATE_KERNEL);
    set_gate(0x80, (uint32_t)isr_syscall, GATE_USER);
    struct { uint16_t limit; uint32_t base; } __attribute__((packed)) idtr = {
        sizeof(idt) - 1, (uint32_t)idt
    };
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

void cpu_init(void)
{
    gdt_init();
    idt_init();
    pic_remap();                    /* IRQ 0-15 -> vectors 0x20-0x2F, all masked */
    pit_set_frequency(TICK_HZ);
    irq_register(0, task_timer_tick);
}

/* ---- dispatch ------------------------------------------------------------ */

static irq_handler irq_handlers[16];

void irq_register(int irq, irq_handler handler)
{
    irq_handlers[irq] = handler;
    pic_unmask(irq);
}

static const char *const exception_names[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
    "#BR bound range", "#UD invalid opcode", "#NM no FPU", "#DF double fault",
    "coprocessor overrun", "#TS invalid TSS", "#NP segment not present",
    "#SS stack fault", "#GP general protection", "#PF page fault", "reserved",
    "#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD error",
    "#VE virtualization", "#CP control protection",
};

static struct trapframe *exception(struct trapframe *f)
{
    const char *name = exception_names[f->vector] ? exception_names[f->vector] : "reserved";
    if ((f->cs & 3) == 3) {
        /* A user task misbehaved: the kernel survives, the task does not. */
        kprintf("tinyos: %s (vector %u, error %x) in task %u '%s' at eip %p: task killed\n",
                name, f->vector, f->error, current->pid, current->name, (void *)f->eip);
        current->state = TASK_DEAD;
        return schedule(f);
    }
    kprintf("tinyos: kernel panic: %s (vector %u, error %x) at eip %p in task '%s'\n",
            name, f->vector, f->error, (void *)f->eip, current->name);
    halt_forever();
}

struct trapframe *interrupt_dispatch(struct trapframe *f)
{
    if (f->vector < 32)
        return exception(f);
    if (f->vector < 48) {
        int irq = f->vector - 32;
        if (irq_handlers[irq])
            irq_handlers[irq]();
        pic_eoi(irq);               /* before a task switch, or the PIC stays blocked */
        return task_after_irq(f, irq);
    }
    return syscall_dispatch(f);     /* vector 0x80 */
}
