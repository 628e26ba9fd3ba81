/* pc.c - PIC remapping, PIT programming and ACPI power-off. */
#include "io.h"
#include "pc.h"

#define PIC1_CMD 0x20
#define PIC1_DATA 0x21
#define PIC2_CMD 0xA0
#define PIC2_DATA 0xA1

void pic_remap(void)
{
    /* ICW1: start initialisation, ICW4 follows. */
    outb(PIC1_CMD, 0x11);
    outb(PIC2_CMD, 0x11);
    /* ICW2: vector offsets. */
    outb(PIC1_DATA, IRQ_BASE);
    outb(PIC2_DATA, IRQ_BASE + 8);
    /* ICW3: the slave hangs off the master's IRQ 2. */
    outb(PIC1_DATA, 0x04);
    outb(PIC2_DATA, 0x02);
    /* ICW4: 8086 mode. */
    outb(PIC1_DATA, 0x01);
    outb(PIC2_DATA, 0x01);
    /* Mask everything except the cascade line; drivers unmask what they use. */
    outb(PIC1_DATA, 0xFB);
    outb(PIC2_DATA, 0xFF);
}

void pic_unmask(int irq)
{
    uint16_t port = irq < 8 ? PIC1_DATA : PIC2_DATA;
    outb(port, inb(port) & ~(1u << (irq & 7)));
}

void pic_eoi(int irq)
{
    if (irq >= 8)
        outb(PIC2_CMD, 0x20);
    outb(PIC1_CMD, 0x20);
}

void pit_set_frequency(uint32_t hz)
{
    uint32_t divisor = PIT_HZ / hz;
    outb(0x43, 0x34);                   /* channel 0, lo/hi byte, mode 2 (rate generator) */
    outb(0x40, divisor & 0xFF);
    outb(0x40, divisor >> 8);
}

void halt_forever(void)
{
    for (;;)
        __asm__ volatile("cli; hlt");
}

void poweroff(void)
{
    outw(0x604, 0x2000);                /* ACPI: SLP_EN with sleep type 0 = soft off */
    halt_forever();                     /* the machine turns off a moment later */
}
