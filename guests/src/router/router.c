/*
 * router.c - a "router on a stick": one network card on an 802.1Q trunk port,
 * one IPv4 interface per VLAN, and IPv4 forwarded between them.
 *
 * Hosts on two access VLANs of the same switch cannot reach each other: the
 * switch never moves a frame from one VLAN to another. This guest can, because
 * its trunk port receives both VLANs (tagged) and it sends each packet back out
 * on the other one: one hop, TTL minus one, a new Ethernet header and tag.
 *
 * Command line: vlan10=10.0.10.1/24 vlan20=10.0.20.1/24 [log=1]
 * The stack (ARP, IPv4, ICMP, forwarding) and the driver are tinyos's net.c and
 * virtio_net.c. There is no timer and no shell: the router sleeps in HLT until
 * its card interrupts. Without a card (QEMU's PC) it says so and powers off.
 */
#include "console.h"
#include "io.h"
#include "multiboot.h"
#include "../tinyos/net.h"
#include "idt.h"
#include "pc.h"
#include "string.h"
#include "../tinyos/virtio_net.h"

void load_flat_gdt(void);               /* lib/flat_gdt.S */
void router_nic_entry(void);
void ignore_interrupt(void);
void exception_interrupt(void);

static char cmdline[256];


void guest_exception(void)
{
    kprintf("router: unexpected CPU exception, halting\n");
    halt_forever();
}

void router_nic_interrupt(void)
{
    vnet_interrupt();
    pic_eoi(vnet_irq());
}

/* Every "vlanN=ADDR/PREFIX" word becomes an interface on VLAN N. */
static void configure(void)
{
    for (const char *p = cmdline; *p; p++) {
        if ((p != cmdline && p[-1] != ' ') || strncmp(p, "vlan", 4) != 0)
            continue;
        uint32_t vlan = 0, ip, prefix;
        const char *q = p + 4;
        while (*q >= '0' && *q <= '9' && vlan < 4096)
            vlan = vlan * 10 + (uint32_t)(*q++ - '0');
        if (*q != '=' || vlan < 1 || vlan > 4094 || net_parse_cidr(q + 1, &ip, &prefix) != 0) {
            kprintf("router: cannot read '%s'\n", p);
            continue;
        }
        if (net_add_interface((uint16_t)vlan, ip, prefix) < 0)
            kprintf("router: too many interfaces\n");
    }
    const char *log = cmdline;
    for (; *log; log++)
        if ((log == cmdline || log[-1] == ' ') && strncmp(log, "log=1", 5) == 0)
            net_set_log(1);
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    load_flat_gdt();
    console_init(0);
    if (magic == MULTIBOOT_BOOT_MAGIC && (mbi->flags & MB_INFO_CMDLINE)) {
        const char *s = (const char *)mbi->cmdline;
        for (uint32_t i = 0; s[i] && i + 1 < sizeof(cmdline); i++)
            cmdline[i] = s[i];
    }
    idt_install();
    pic_remap();                        /* every IRQ masked but the cascade */

    if (!vnet_probe()) {
        kprintf("router: no network card (virtio-net in slot %d), powering off\n", VNET_SLOT);
        poweroff();
    }
    const uint8_t *mac = vnet_mac();
    kprintf("router: virtio-net, irq %d, mac %02x:%02x:%02x:%02x:%02x:%02x\n", vnet_irq(),
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    net_init(mac);
    configure();
    net_print_interfaces();
    if (net_interfaces() == 0)
        kprintf("router: no interfaces (put vlanN=ADDR/PREFIX on the command line)\n");
    net_set_forwarding(1);
    vnet_set_receiver(net_input);
    idt_set_gate(IRQ_BASE + vnet_irq(), router_nic_entry);
    pic_unmask(vnet_irq());
    kprintf("router: forwarding IPv4 between %d interfaces\n", net_interfaces());
    for (;;)
        sti_hlt();                      /* every packet arrives with an interrupt */
}
