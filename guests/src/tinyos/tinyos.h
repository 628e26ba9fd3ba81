/*
 * tinyos.h - every interface inside the tinyos kernel, in one place.
 *
 * Map of the sources:
 *   isr.S      interrupt entry stubs: save the registers, call C, maybe switch task
 *   cpu.c      GDT (ring 0 and ring 3 segments, TSS), IDT, exception and IRQ dispatch
 *   task.c     the task table and the round-robin scheduler
 *   syscall.c  the int 0x80 system calls
 *   tty.c      serial input: the IRQ 4 handler and a ring buffer the shell reads
 *   ata.c      the ATA disk, PIO mode, LBA28, polled
 *   disk.c     the boot disk: virtio-blk if the hypervisor offers one (virtio_blk.c), else ATA
 *   fs.c       TinyFS, a read-only file system: one directory sector
 *   memory.c   the memory map handed over by the boot loader
 *   balloon.c  lends free RAM to the sandbox's hypervisor (the balloon driver)
 *   netcmd.c   the network: ip= from the command line, the ping and net commands
 *              (net.c: ARP, IPv4, ICMP, UDP echo; virtio_net.c: the NIC driver)
 *   user.c     programs that run in ring 3 (they may only use system calls)
 *   shell.c    the command line
 *   kernel.c   kmain: bring everything up in order
 */
#ifndef TINYOS_H
#define TINYOS_H

#include <stdint.h>
#include "multiboot.h"

/* ---- segments (cpu.c) ---------------------------------------------------- */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_CS   (0x18 | 3)    /* selector | requested privilege level 3 */
#define USER_DS   (0x20 | 3)
#define TSS_SEL   0x28

/* The registers of an interrupted task, as isr.S pushes them. The last two
 * fields exist only when the CPU came from ring 3 (it then also switches to
 * the kernel stack named in the TSS and pushes the user stack pointer). */
struct trapframe {
    uint32_t gs, fs, es, ds;
    uint32_t edi, esi, ebp, kernel_esp, ebx, edx, ecx, eax;    /* pushal */
    uint32_t vector, error;
    uint32_t eip, cs, eflags;                                  /* pushed by the CPU */
    uint32_t user_esp, user_ss;                                /* ... from ring 3 only */
};

typedef void (*irq_handler)(void);

void cpu_init(void);                            /* GDT, TSS, IDT, PIC, PIT */
void cpu_set_kernel_stack(uint32_t esp0);       /* TSS.esp0 for the next ring-3 entry */
void irq_register(int irq, irq_handler handler);
struct trapframe *interrupt_dispatch(struct trapframe *frame);   /* called by isr.S */

/* ---- tasks (task.c) ------------------------------------------------------ */
#define MAX_TASKS 8
#define TICK_HZ   100

enum task_state { TASK_UNUSED, TASK_RUNNING, TASK_READY, TASK_SLEEPING, TASK_BLOCKED, TASK_DEAD };

struct task {
    uint32_t pid;
    char name[12];
    int ring;                   /* 0 = kernel task, 3 = user task */
    enum task_state state;
    uint32_t ticks_run;         /* timer ticks during which this task was running */
    uint32_t wake_at;           /* for TASK_SLEEPING: the tick to wake up at */
    struct trapframe *frame;    /* saved registers while not running */
    uint32_t kernel_stack_top;
};

extern struct task tasks[MAX_TASKS];
extern struct task *current;
extern volatile uint32_t ticks;

void task_init_idle(void);      /* the boot code becomes task 0, "idle" */
struct task *task_create(const char *name, void (*entry)(void), int ring);
const char *task_state_name(enum task_state state);
struct trapframe *schedule(struct trapframe *frame);    /* pick the next task to run */
struct trapframe *task_after_irq(struct trapframe *frame, int irq);
void task_timer_tick(void);
void task_wake(struct task *task);
int task_alive(uint32_t pid);

/* Kernel-task helpers, implemented with int 0x80 like the user ones. */
void task_yield(void);
void task_sleep(uint32_t ticks);
void task_block(void);          /* sleep until task_wake(); call with interrupts off */

/* ---- system calls (syscall.c) ------------------------------------------- */
enum { SYS_EXIT, SYS_YIELD, SYS_SLEEP, SYS_TICKS, SYS_WRITE, SYS_GETPID, SYS_BLOCK, SYS_COUNT };
struct trapframe *syscall_dispatch(struct trapframe *frame);

/* ---- serial input (tty.c) ----------------------------------------------- */
void tty_init(void);
char tty_getc(void);            /* blocks the calling task until a byte arrives */

/* ---- disk and file system (ata.c, disk.c, fs.c) ------------------------- */
int ata_init(void);             /* 1 if there is an ATA disk on the primary master */
int ata_present(void);
uint32_t ata_sectors(void);
int ata_read(uint32_t lba, void *buffer);       /* one 512-byte sector; 0 on success */
void disk_init(void);           /* probe virtio-blk, then ATA; print what was found */
int disk_present(void);
int disk_read(uint32_t lba, void *buffer);      /* one 512-byte sector; 0 on success */

struct tinyfs_file {
    char name[24];
    uint32_t lba;               /* first sector */
    uint32_t size;              /* bytes */
};
enum fs_status { FS_NO_DISK, FS_NOT_FORMATTED, FS_READ_ERROR, FS_MOUNTED };
enum fs_status fs_mount(void);
enum fs_status fs_status(void);
int fs_count(void);
const struct tinyfs_file *fs_file(int index);
const struct tinyfs_file *fs_find(const char *name);
/* Call emit(byte) for each byte of the file; 0 on success. */
int fs_read(const struct tinyfs_file *file, void (*emit)(char));

/* ---- memory (memory.c) -------------------------------------------------- */
void memory_init(uint32_t magic, const struct multiboot_info *info);
void memory_print_summary(void);
void memory_print_map(void);
const char *boot_loader_name(void);
uint32_t memory_top(void);      /* end of the usable RAM that holds the kernel */

/* ---- the balloon driver (balloon.c, ../balloon/driver.c) ------------------ */
void balloon_start(void);       /* find the free pages; detect the hypervisor */
void balloon_idle(void);        /* called by the idle task: follow the target */
void balloon_print_status(void);

/* ---- the network (netcmd.c, net.c, virtio_net.c) -------------------------- */
void net_boot_options(uint32_t magic, const struct multiboot_info *info);  /* copy ip=, gw= */
void net_start(void);           /* find the virtio-net card; quiet if there is none */
void cmd_ping(const char *args);
void cmd_net(const char *args);

/* ---- ring-3 programs (user.c) and the shell (shell.c) -------------------- */
void user_counter(void);
void user_rogue(void);
void shell_main(void);

#endif
