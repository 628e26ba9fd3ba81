/* console.h - text output to COM1 and the VGA screen at the same time. */
#ifndef GUEST_CONSOLE_H
#define GUEST_CONSOLE_H

#include <stdarg.h>

void console_init(int serial_rx_interrupts);
void console_putc(char c);              /* '\n' becomes "\r\n" on the serial line */
void console_write(const char *s);
void kvprintf(const char *fmt, va_list ap);
/* A small printf: %s %c %d %u %x %X %p %%, with '-' / '0' flags and a width. */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
