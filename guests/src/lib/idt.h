/* idt.h - the interrupt descriptor table of the small guests (see idt.c). */
#ifndef IDT_H
#define IDT_H

void idt_install(void);                              /* exceptions + ignored IRQs, then lidt */
void idt_set_gate(int vector, void (*handler)(void)); /* a ring-0 32-bit interrupt gate */

#endif
