/* hypercall.h - calling the sandbox's hypervisor from a guest.
 *
 * The sandbox answers a 32-bit IN from port 0x0D00 with 'SBX1'; on any other PC
 * (QEMU, real hardware) nothing answers and the read gives 0xFFFFFFFF. A call:
 * number in EAX, arguments in EBX and ECX, then OUT to the port; the result comes
 * back in EAX (and EDX). See docs/hypercalls.md and docs/memory.md.
 */
#ifndef SBX_HYPERCALL_H
#define SBX_HYPERCALL_H

#include <stdint.h>

#define SBX_PORT  0x0D00
#define SBX_MAGIC 0x53425831u           /* 'SBX1' */

enum {
    SBX_BALLOON_TARGET  = 0x10,         /* EAX <- target pages, EDX <- pages held */
    SBX_BALLOON_INFLATE = 0x11,         /* EBX = u32 frame numbers, ECX = count */
    SBX_BALLOON_DEFLATE = 0x12,
};

static inline int sbx_present(void)
{
    uint32_t value;
    __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"((uint16_t)SBX_PORT));
    return value == SBX_MAGIC;
}

static inline uint32_t sbx_call(uint32_t number, uint32_t ebx, uint32_t ecx, uint32_t *edx)
{
    uint32_t eax = number, dx = SBX_PORT;
    __asm__ volatile("outl %%eax, %%dx" : "+a"(eax), "+d"(dx) : "b"(ebx), "c"(ecx) : "memory");
    if (edx)
        *edx = dx;
    return eax;
}

#endif
