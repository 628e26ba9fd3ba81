/* serial.h - the PC's first serial port, COM1: a 16550 UART at I/O port 0x3F8, IRQ 4. */
#ifndef GUEST_SERIAL_H
#define GUEST_SERIAL_H

#define COM1 0x3F8

/* Program 115200 baud, 8 data bits, no parity, 1 stop bit, FIFOs on.
 * With rx_interrupts != 0 the UART raises IRQ 4 whenever a byte arrives. */
void serial_init(int rx_interrupts);
void serial_putc(char c);          /* wait until the transmitter is free, then send */
int serial_rx_ready(void);         /* 1 if a received byte is waiting */
char serial_rx_byte(void);         /* read the received byte (check ready first) */

#endif
