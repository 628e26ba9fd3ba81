/*
 * isr.S - the entry points of every interrupt, exception and system call.
 *
 * The CPU pushes EFLAGS, CS and EIP (and, coming from ring 3, SS and ESP
 * first, after switching to the kernel stack named in the TSS). Some
 * exceptions also push an error code; for the others we push a 0 so that
 * every frame has the same layout (struct trapframe in tinyos.h). Then one
 * common path saves all registers and calls the C dispatcher.
 *
 * Task switching happens here: interrupt_dispatch() returns the frame to
 * resume. If the scheduler picked another task, that is a frame on the other
 * task's kernel stack, so moving ESP to it switches tasks; the pops and IRET
 * below then restore the other task's registers.
 */

.macro STUB vector, has_error_code=0
    .text
isr\vector:
    .if \has_error_code == 0
    pushl   $0                  /* a dummy error code */
    .endif
    pushl   $\vector
    jmp     isr_common
    .data
    .long   isr\vector          /* an entry in isr_table */
.endm

    .data
    .globl  isr_table
isr_table:                      /* addresses of the stubs for vectors 0..47 */
    /* CPU exceptions 0-31: 8, 10-14, 17, 21, 29 and 30 push an error code. */
    STUB 0
    STUB 1
    STUB 2
    STUB 3
    STUB 4
    STUB 5
    STUB 6
    STUB 7
    STUB 8, 1
    STUB 9
    STUB 10, 1
    STUB 11, 1
    STUB 12, 1
    STUB 13, 1
    STUB 14, 1
    STUB 15
    STUB 16
    STUB 17, 1
    STUB 18
    STUB 19
    STUB 20
    STUB 21, 1
    STUB 22
    STUB 23
    STUB 24
    STUB 25
    STUB 26
    STUB 27
    STUB 28
    STUB 29, 1
    STUB 30, 1
    STUB 31
    /* Hardware interrupts IRQ 0-15, remapped to vectors 32-47. */
    STUB 32
    STUB 33
    STUB 34
    STUB 35
    STUB 36
    STUB 37
    STUB 38
    STUB 39
    STUB 40
    STUB 41
    STUB 42
    STUB 43
    STUB 44
    STUB 45
    STUB 46
    STUB 47
    .globl  isr_syscall         /* int 0x80: system calls */
    .set    isr_syscall, isr128
    STUB 128

    .text
isr_common:
    pushal                      /* EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI */
    pushl   %ds
    pushl   %es
    pushl   %fs
    pushl   %gs
    movw    $0x10, %ax          /* kernel data segment */
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    pushl   %esp                /* argument: the struct trapframe we just built */
    call    interrupt_dispatch
    movl    %eax, %esp          /* the frame to resume: maybe another task's */
    popl    %gs
    popl    %fs
    popl    %es
    popl    %ds
    popal
    addl    $8, %esp            /* drop the vector number and the error code */
    iret

/* load_gdt(descriptor): LGDT, then reload CS with a far jump and the data
 * segment registers, then load the task register with the TSS selector. */
    .globl  load_gdt
load_gdt:
    movl    4(%esp), %eax
    lgdt    (%eax)
    ljmp    $0x08, $1f
1:  movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    %ax, %ss
    movw    $0x28, %ax
    ltr     %ax
    ret
