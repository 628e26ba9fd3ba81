/* diskbench.h - what diskbench.c needs from machine.c. */
#ifndef DISKBENCH_H
#define DISKBENCH_H

#include <stdint.h>

struct params {
    uint32_t kib, block, ops, qd, seed, start, reports;
    char mode[12], wait[8];
};
extern struct params p;                 /* defaults, then the command line's key=value words */

void parse_params(const char *text);
extern int on_sandbox;                  /* the sandbox's hypercall port answered */
int hypervisor_present(void);
uint64_t now_ns(void);                  /* guest time (0 where there is no hypercall) */
uint32_t div64(uint64_t n, uint32_t d); /* the quotient must fit 32 bits */
void load_flat_gdt(void);               /* isr.S: our own flat GDT */
void setup_interrupts(void);            /* IDT, PIC, the 1 kHz PIT backstop, STI */
void sleep_until_interrupt(void);       /* HLT unless a virtio request is already done */

#endif
