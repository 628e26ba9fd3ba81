/*
 * shell.c - the command line, a ring-0 task reading COM1.
 *
 * Reads a line with echo and backspace (Enter is either \r or \n; a \n right
 * after a \r is the same Enter), splits off the first word and looks it up
 * in the command table.
 */
#include "console.h"
#include "pc.h"
#include "string.h"
#include "tinyos.h"

#define LINE_MAX 78

struct command {
    const char *name;
    const char *help;
    void (*run)(const char *args);
};

static const struct command commands[];

static void cmd_help(const char *args)
{
    (void)args;
    kprintf("commands:\n");
    for (const struct command *c = commands; c->name; c++)
        kprintf("  %-9s %s\n", c->name, c->help);
}

static void cmd_ps(const char *args)
{
    (void)args;
    kprintf("PID  NAME       RING  STATE     TICKS\n");
    for (int i = 0; i < MAX_TASKS; i++) {
        const struct task *t = &tasks[i];
        if (t->state == TASK_UNUSED || t->state == TASK_DEAD)
            continue;
        kprintf("%3u  %-10s %4d  %-8s %6u\n", t->pid, t->name, t->ring,
                task_state_name(t->state), t->ticks_run);
    }
}

static void cmd_mem(const char *args)
{
    (void)args;
    memory_print_map();
}

static void cmd_uptime(const char *args)
{
    (void)args;
    uint32_t now = ticks;
    kprintf("uptime: %u ticks, %u.%02u s (PIT at %u Hz)\n",
            now, now / TICK_HZ, now % TICK_HZ, TICK_HZ);
}

/* Say why there are no files, if there are none; 1 if the FS is usable. */
static int fs_ready(const char *command)
{
    switch (fs_status()) {
    case FS_MOUNTED:       return 1;
    case FS_NO_DISK:       kprintf("%s: no disk\n", command); break;
    case FS_NOT_FORMATTED: kprintf("%s: the disk has no TinyFS\n", command); break;
    case FS_READ_ERROR:    kprintf("%s: disk read error\n", command); break;
    }
    return 0;
}

static void cmd_ls(const char *args)
{
    (void)args;
    if (!fs_ready("ls"))
        return;
    for (int i = 0; i < fs_count(); i++)
        kprintf("  %-16s %6u bytes\n", fs_file(i)->name, fs_file(i)->size);
    kprintf("%d files\n", fs_count());
}

static void cmd_cat(const char *args)
{
    if (!*args) {
        kprintf("usage: cat NAME\n");
        return;
    }
    if (!fs_ready("cat"))
        return;
    const struct tinyfs_file *file = fs_find(args);
    if (!file) {
        kprintf("cat: %s: no such file\n", args);
        return;
    }
    if (fs_read(file, console_putc) != 0)
        kprintf("cat: %s: read error\n", args);
}

static void cmd_echo(const char *args)
{
    kprintf("%s\n", args);
}

static void cmd_fault(const char *args)
{
    (void)args;
    struct task *t = task_create("rogue", user_rogue, 3);
    if (!t) {
        kprintf("fault: no free task slot\n");
        return;
    }
    kprintf("fault: started task %u 'rogue' in ring 3\n", t->pid);
    uint32_t pid = t->pid;
    while (task_alive(pid))
        task_sleep(1);
    kprintf("fault: the kernel is still running\n");
}

static void cmd_balloon(const char *args)
{
    (void)args;
    balloon_print_status();
}

static void cmd_poweroff(const char *args)
{
    (void)args;
    kprintf("tinyos: powering off\n");
    poweroff();
}

static const struct command commands[] = {
    { "help",     "list the commands",                           cmd_help },
    { "ps",       "list the tasks: ring, state, timer ticks run", cmd_ps },
    { "mem",      "memory map and kernel size",                  cmd_mem },
    { "uptime",   "time since boot, counted by the PIT",         cmd_uptime },
    { "ls",       "list the files on the disk",                  cmd_ls },
    { "cat",      "print a file: cat NAME",                      cmd_cat },
    { "echo",     "print the rest of the line",                  cmd_echo },
    { "fault",    "run a ring-3 task that breaks a rule",        cmd_fault },
    { "balloon",  "pages lent to the hypervisor (sandbox only)",  cmd_balloon },
    { "ping",     "echo requests: ping [-f] ADDRESS [COUNT]",    cmd_ping },
    { "net",      "the network card, address and counters",      cmd_net },
    { "poweroff", "turn the machine off (ACPI)",                 cmd_poweroff },
    { 0, 0, 0 },
};

/* Read one line into `line` (NUL-terminated), echoing what is typed. */
static void read_line(char *line)
{
    static char last;
    int len = 0;
    for (;;) {
        char c = tty_getc();
        char previous = last;
        last = c;
        if (c == '\n' && previous == '\r')
            continue;                       /* the \n of a \r\n pair */
        if (c == '\r' || c == '\n') {
            console_putc('\n');
            line[len] = 0;
            return;
        }
        if (c == '\b' || c == 0x7F) {       /* backspace or delete */
            if (len > 0) {
                len--;
                console_write("\b \b");
            }
            continue;
        }
        if (c >= ' ' && c <= '~' && len < LINE_MAX) {
            line[len++] = c;
            console_putc(c);
        }
    }
}

static void run(char *line)
{
    while (*line == ' ')
        line++;
    if (!*line)
        return;
    char *args = line;
    while (*args && *args != ' ')
        args++;
    if (*args)
        *args++ = 0;
    while (*args == ' ')
        args++;
    for (const struct command *c = commands; c->name; c++) {
        if (strcmp(c->name, line) == 0) {
            c->run(args);
            return;
        }
    }
    kprintf("%s: unknown command (try help)\n", line);
}

void shell_main(void)
{
    char line[LINE_MAX + 1];
    for (;;) {
        console_write("tinyos> ");
        read_line(line);
        run(line);
    }
}
