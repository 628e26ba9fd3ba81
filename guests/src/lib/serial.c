/* serial.c - a polled 16550 UART driver (receive may be interrupt driven).
 *
 * Register offsets from the base port (0x3F8 for COM1):
 *   +0 THR/RBR  transmit / receive buffer (DLL, divisor low, when DLAB=1)
 *   +1 IER      interrupt enable         (DLM, divisor high, when DLAB=1)
 *   +2 FCR      FIFO control (write)
 *   +3 LCR      line control; bit 7 is DLAB, the divisor latch access bit
 *   +4 MCR      modem control; OUT2 (bit 3) connects the IRQ line on a PC
 *   +5 LSR      line status; bit 0 = data ready, bit 5 = transmitter empty
 *
 * We leave the 16-byte FIFOs off (16450 mode): the UART then holds exactly
 * one received byte, and the sender (QEMU's or the sandbox's serial backend)
 * waits until we have read it. Nothing typed before the guest was ready is
 * lost, whereas enabling the FIFOs would flush a byte already waiting.
 */
#include "io.h"
#include "serial.h"

enum { THR = 0, RBR = 0, DLL = 0, IER = 1, DLM = 1, FCR = 2, LCR = 3, MCR = 4, LSR = 5 };
enum { LSR_DATA_READY = 0x01, LSR_THR_EMPTY = 0x20 };

void serial_init(int rx_interrupts)
{
    outb(COM1 + IER, 0x00);   /* no interrupts while we reprogram it      */
    outb(COM1 + LCR, 0x80);   /* DLAB=1: ports +0/+1 become the divisor   */
    outb(COM1 + DLL, 0x01);   /* divisor 1 = 115200 baud (1.8432 MHz/16)  */
    outb(COM1 + DLM, 0x00);
    outb(COM1 + LCR, 0x03);   /* DLAB=0, 8 data bits, no parity, 1 stop   */
    outb(COM1 + FCR, 0x00);   /* FIFOs off: see below                     */
    outb(COM1 + MCR, 0x0B);   /* DTR, RTS, OUT2 (OUT2 gates IRQ 4 on PCs) */
    if (rx_interrupts)
        outb(COM1 + IER, 0x01);   /* interrupt when received data is available */
}

void serial_putc(char c)
{
    while (!(inb(COM1 + LSR) & LSR_THR_EMPTY))
        ;
    outb(COM1 + THR, (unsigned char)c);
}

int serial_rx_ready(void)
{
    return inb(COM1 + LSR) & LSR_DATA_READY;
}

char serial_rx_byte(void)
{
    return (char)inb(COM1 + RBR);
}
