/*
 * tty.c - interrupt-driven serial input.
 *
 * When a byte arrives, the UART raises IRQ 4. The handler moves every waiting
 * byte into a ring buffer and wakes the task blocked in tty_getc(). So a task
 * waiting for input costs no CPU at all: it is not even scheduled.
 */
#include "io.h"
#include "serial.h"
#include "tinyos.h"

#define RX_SIZE 256                         /* a power of two: indexes wrap with & */

static volatile char rx_buffer[RX_SIZE];
static volatile uint32_t rx_head, rx_tail;  /* written by the IRQ / by the reader */
static struct task *waiting;                /* the task blocked in tty_getc, if any */

static void serial_interrupt(void)
{
    while (serial_rx_ready()) {
        char c = serial_rx_byte();
        if (rx_head - rx_tail < RX_SIZE)    /* full: drop the byte */
            rx_buffer[rx_head++ % RX_SIZE] = c;
    }
    task_wake(waiting);
}

void tty_init(void)
{
    irq_register(4, serial_interrupt);      /* COM1 is IRQ 4 on every PC */
}

char tty_getc(void)
{
    for (;;) {
        uint32_t flags = irq_save();        /* no IRQ between the check and the block */
        if (rx_head != rx_tail) {
            char c = rx_buffer[rx_tail++ % RX_SIZE];
            irq_restore(flags);
            return c;
        }
        waiting = current;
        task_block();
        waiting = 0;
        irq_restore(flags);
    }
}
