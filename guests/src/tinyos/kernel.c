/*
 * kernel.c - kmain: bring the machine up, start the tasks, become "idle".
 *
 * We arrive here from multiboot_entry.S in 32-bit protected mode, whichever
 * loader started us (guests/src/loader on a disk, or `qemu -kernel`): both
 * speak Multiboot, so EAX holds 0x2BADB002 and EBX the info structure.
 */
#include "console.h"
#include "io.h"
#include "pc.h"
#include "tinyos.h"

static void start_task(const char *name, void (*entry)(void), int ring)
{
    struct task *t = task_create(name, entry, ring);
    kprintf("task %u: %s (ring %d)\n", t->pid, t->name, ring);
}

void kmain(uint32_t magic, const struct multiboot_info *info)
{
    memory_init(magic, info);           /* first: copy the loader's data */
    net_boot_options(magic, info);
    console_init(1);                    /* COM1 with receive interrupts, VGA */
    kprintf("tinyos: booted by %s\n", boot_loader_name());
    if (magic != MULTIBOOT_BOOT_MAGIC)
        kprintf("tinyos: no Multiboot magic (EAX = %x): no memory information\n", magic);
    memory_print_summary();

    cpu_init();
    kprintf("cpu: GDT with ring 0 and ring 3 segments and a TSS; IDT with 32 exceptions\n");
    kprintf("pic: IRQ 0-15 on vectors 0x20-0x2f; pit: %u Hz\n", TICK_HZ);

    disk_init();                        /* virtio-blk if offered, else ATA */
    switch (fs_mount()) {
    case FS_MOUNTED:       kprintf("fs: TinyFS with %d files\n", fs_count()); break;
    case FS_NO_DISK:       kprintf("fs: no disk, no files\n"); break;
    case FS_NOT_FORMATTED: kprintf("fs: no TinyFS on the disk\n"); break;
    case FS_READ_ERROR:    kprintf("fs: disk read error\n"); break;
    }

    task_init_idle();
    tty_init();
    balloon_start();
    net_start();
    start_task("shell", shell_main, 0);
    start_task("counter", user_counter, 3);
    kprintf("tinyos: starting the scheduler\n\n");

    /* From the first timer tick on, the scheduler runs the tasks; this code
     * continues as task 0, "idle", whenever nobody else is ready. */
    for (;;) {
        balloon_idle();
        sti_hlt();
    }
}
