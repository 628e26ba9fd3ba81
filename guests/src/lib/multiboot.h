/* multiboot.h - the Multiboot v1 boot protocol (what GRUB and `qemu -kernel` speak).
 *
 * A kernel puts a header with the magic 0x1BADB002 in its first 8 KiB. The
 * boot loader loads it, switches to 32-bit protected mode, and jumps to the
 * entry point with EAX = 0x2BADB002 and EBX = the address of the info
 * structure below. Only the fields whose `flags` bit is set are valid.
 */
#ifndef GUEST_MULTIBOOT_H
#define GUEST_MULTIBOOT_H

#include <stdint.h>

#define MULTIBOOT_HEADER_MAGIC 0x1BADB002
#define MULTIBOOT_BOOT_MAGIC   0x2BADB002

#define MB_INFO_MEMORY      (1u << 0)   /* mem_lower / mem_upper */
#define MB_INFO_BOOTDEV     (1u << 1)   /* boot_device */
#define MB_INFO_CMDLINE     (1u << 2)   /* cmdline */
#define MB_INFO_MMAP        (1u << 6)   /* mmap_length / mmap_addr */
#define MB_INFO_LOADER_NAME (1u << 9)   /* boot_loader_name */

struct multiboot_info {
    uint32_t flags;
    uint32_t mem_lower;         /* KiB of memory below 1 MiB */
    uint32_t mem_upper;         /* KiB of memory from 1 MiB to the first hole */
    uint32_t boot_device;       /* BIOS drive number in the top byte */
    uint32_t cmdline;           /* physical address of a NUL-terminated string */
    uint32_t mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr;
    uint32_t drives_length, drives_addr;
    uint32_t config_table;
    uint32_t boot_loader_name;  /* physical address of a NUL-terminated string */
} __attribute__((packed));

/* One BIOS E820 memory-map entry, preceded by its own size (usually 20). */
struct multiboot_mmap_entry {
    uint32_t size;              /* size of the rest of the entry */
    uint64_t base;
    uint64_t length;
    uint32_t type;              /* 1 = usable RAM, 2 = reserved, 3 = ACPI, ... */
} __attribute__((packed));

#endif
