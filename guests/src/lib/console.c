/* console.c - kprintf() writing to both COM1 and VGA text memory.
 *
 * VGA text mode: 80x25 cells at physical address 0xB8000, two bytes per
 * cell (the character, then a colour attribute). We keep our own cursor and
 * scroll by copying rows up; we never touch the VGA I/O ports.
 */
#include <stdint.h>
#include "console.h"
#include "serial.h"
#include "string.h"

#define VGA_COLS 80
#define VGA_ROWS 25
#define VGA_ATTR 0x07   /* light grey on black */

static volatile uint16_t *const vga = (volatile uint16_t *)0xB8000;
static int row, col;

static void vga_scroll(void)
{
    for (int i = 0; i < (VGA_ROWS - 1) * VGA_COLS; i++)
        vga[i] = vga[i + VGA_COLS];
    for (int i = 0; i < VGA_COLS; i++)
        vga[(VGA_ROWS - 1) * VGA_COLS + i] = (VGA_ATTR << 8) | ' ';
    row = VGA_ROWS - 1;
}

static void vga_putc(char c)
{
    if (c == '\n') {
        col = 0;
        row++;
    } else if (c == '\r') {
        col = 0;
    } else if (c == '\b') {
        if (col > 0)
            col--;
    } else {
        vga[row * VGA_COLS + col] = (VGA_ATTR << 8) | (unsigned char)c;
        if (++col == VGA_COLS) {
            col = 0;
            row++;
        }
    }
    if (row == VGA_ROWS)
        vga_scroll();
}

void console_init(int serial_rx_interrupts)
{
    serial_init(serial_rx_interrupts);
    for (int i = 0; i < VGA_ROWS * VGA_COLS; i++)
        vga[i] = (VGA_ATTR << 8) | ' ';
    row = col = 0;
}

void console_putc(char c)
{
    if (c == '\n')
        serial_putc('\r');
    serial_putc(c);
    vga_putc(c);
}

void console_write(const char *s)
{
    while (*s)
        console_putc(*s++);
}

/* Print an unsigned number in base 10 or 16, padded to `width`. */
static void put_number(uint32_t n, unsigned base, int upper, int width, char pad, int left)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char buf[12];
    int len = 0;
    do {
        buf[len++] = digits[n % base];
        n /= base;
    } while (n);
    if (!left)
        for (; width > len; width--)
            console_putc(pad);
    while (len)
        console_putc(buf[--len]), width--;
    for (; width > 0; width--)
        console_putc(' ');
}

void kvprintf(const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            console_putc(*fmt);
            continue;
        }
        fmt++;
        int left = 0, width = 0;
        char pad = ' ';
        if (*fmt == '-')
            left = 1, fmt++;
        if (*fmt == '0')
            pad = '0', fmt++;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        switch (*fmt) {
        case 'd': {
            int32_t v = va_arg(ap, int32_t);
            if (v < 0) {
                console_putc('-');
                width--;
                put_number((uint32_t)-v, 10, 0, width, pad, left);
            } else {
                put_number((uint32_t)v, 10, 0, width, pad, left);
            }
            break;
        }
        case 'u': put_number(va_arg(ap, uint32_t), 10, 0, width, pad, left); break;
        case 'x': put_number(va_arg(ap, uint32_t), 16, 0, width, pad, left); break;
        case 'X': put_number(va_arg(ap, uint32_t), 16, 1, width, pad, left); break;
        case 'p':
            console_write("0x");
            put_number((uint32_t)va_arg(ap, void *), 16, 0, 8, '0', 0);
            break;
        case 'c': console_putc((char)va_arg(ap, int)); break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            int len = (int)strlen(s);
            if (!left)
                for (; width > len; width--)
                    console_putc(' ');
            console_write(s);
            for (; width > len; width--)
                console_putc(' ');
            break;
        }
        case '%': console_putc('%'); break;
        default:  console_putc('?'); break;
        }
    }
}

void kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
}
