/*
 * netcmd.c - tinyos on the network: bring up the NIC, and the `ping` and `net`
 * shell commands.
 *
 * The address comes from the kernel command line, as Linux's ip= parameter
 * gives it (the sandbox writes it there from the VM's nic.ip):
 *     ip=10.0.0.1/24 gw=10.0.0.254
 * Round-trip times are guest time: the PIT's tick count plus how far its
 * counter has run down since the last tick (0.838 us per PIT clock).
 */
#include "console.h"
#include "io.h"
#include "net.h"
#include "pc.h"
#include "string.h"
#include "tinyos.h"
#include "virtio_net.h"

#define PING_ID 0x7470                  /* "tp": our echo requests */
#define PING_DATA 56                    /* as Linux's ping: 64 bytes of ICMP */
#define PING_TIMEOUT_TICKS 100          /* 1 s */
#define PING_INTERVAL_TICKS 10          /* 0.1 s between requests (Linux: 1 s) */
#define ARP_RETRY_TICKS 10              /* repeat an unanswered ARP request every 0.1 s */

static char cmdline[128];
static int nic_up;
static uint32_t gateway;

static volatile int reply_seen;
static volatile uint32_t reply_us, reply_ttl, reply_size;
static uint32_t ping_dst;
static uint16_t ping_seq;

void net_boot_options(uint32_t magic, const struct multiboot_info *info)
{
    if (magic != MULTIBOOT_BOOT_MAGIC || !(info->flags & MB_INFO_CMDLINE))
        return;
    const char *s = (const char *)info->cmdline;
    for (uint32_t i = 0; s[i] && i + 1 < sizeof(cmdline); i++)
        cmdline[i] = s[i];
}

/* The text after "key=" on the command line, or 0. */
static const char *option(const char *key)
{
    uint32_t n = strlen(key);
    for (const char *p = cmdline; *p; p++)
        if ((p == cmdline || p[-1] == ' ') && !strncmp(p, key, n) && p[n] == '=')
            return p + n + 1;
    return 0;
}

/* Microseconds of guest time since boot. */
static uint32_t now_us(void)
{
    static uint32_t last_us;
    uint32_t flags = irq_save();
    outb(0x43, 0x00);                   /* latch channel 0's count */
    uint32_t count = inb(0x40);
    count |= (uint32_t)inb(0x40) << 8;
    uint32_t t = ticks;
    outb(0x20, 0x0A);                   /* OCW3: read the master PIC's request register */
    int tick_pending = inb(0x20) & 1;
    uint32_t divisor = PIT_HZ / TICK_HZ;
    uint32_t run = count <= divisor ? divisor - count : 0;
    if (tick_pending && run < divisor / 2)
        t++;                            /* the counter wrapped; the tick is not counted yet */
    uint32_t us = t * (1000000 / TICK_HZ) + run * 838 / 1000;
    /* A tick whose interrupt came late (a VM kept off the CPU in fast mode: "lost
     * ticks", the classic VM timekeeping problem) must not make time run backwards. */
    if ((int32_t)(us - last_us) < 0)
        us = last_us;
    last_us = us;
    irq_restore(flags);
    return us;
}

static void on_echo_reply(uint32_t from, uint16_t id, uint16_t seq, uint8_t ttl, uint32_t size)
{
    if (id != PING_ID || from != ping_dst || seq != ping_seq || reply_seen)
        return;
    reply_us = now_us();
    reply_ttl = ttl;
    reply_size = size;
    reply_seen = 1;
}

void net_start(void)
{
    if (!vnet_probe())
        return;                         /* no network card: say nothing (QEMU's PC has none here) */
    nic_up = 1;
    const uint8_t *mac = vnet_mac();
    net_init(mac);
    vnet_set_receiver(net_input);
    net_on_echo_reply(on_echo_reply);
    irq_register(vnet_irq(), vnet_interrupt);
    kprintf("net0: virtio-net, irq %d, mac %02x:%02x:%02x:%02x:%02x:%02x", vnet_irq(),
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    uint32_t ip, prefix;
    const char *text = option("ip");
    if (text && net_parse_cidr(text, &ip, &prefix) == 0 && net_add_interface(0, ip, prefix) == 0) {
        kprintf(", ");
        net_print_ip(ip);
        kprintf("/%u", prefix);
    } else {
        kprintf(", no address (ip=ADDR/PREFIX on the command line)");
    }
    text = option("gw");
    if (text && net_parse_ip(text, &gateway, 0) == 0) {
        net_set_gateway(gateway);
        kprintf(", gateway ");
        net_print_ip(gateway);
    }
    kprintf("\n");
}

static void print_ms(uint32_t us)
{
    kprintf("%u.%03u", us / 1000, us % 1000);
}

/* Wait for the reply to the request sent at `sent_tick`, or the timeout. The shell
 * is a ring-0 task, so it may halt the CPU itself: "cli; check; sti; hlt" sleeps
 * until the next interrupt (the NIC's, or the timer's) with no wake-up lost. */
static int wait_for_reply(uint32_t sent_tick)
{
    uint32_t next_arp = sent_tick + ARP_RETRY_TICKS;
    for (;;) {
        cli();
        if (reply_seen || ticks - sent_tick >= PING_TIMEOUT_TICKS) {
            sti();
            return reply_seen;
        }
        sti_hlt();
        if ((int32_t)(ticks - next_arp) >= 0) {
            next_arp += ARP_RETRY_TICKS;
            net_arp_retry();            /* still no answer to "who has ...?": ask again */
        }
    }
}

static void usage(void)
{
    kprintf("usage: ping [-f] ADDRESS [COUNT]   (-f: flood, the next request as soon as a reply arrives)\n");
}

void cmd_ping(const char *args)
{
    uint32_t dst, count = 4, flood = 0;
    const char *end;
    if (!nic_up) {
        kprintf("ping: no network card\n");
        return;
    }
    if (args[0] == '-' && args[1] == 'f' && args[2] == ' ') {
        flood = 1;
        count = 100;
        for (args += 3; *args == ' '; args++)
            ;
    }
    if (net_parse_ip(args, &dst, &end) != 0) {
        usage();
        return;
    }
    while (*end == ' ')
        end++;
    if (*end) {
        count = 0;
        while (*end >= '0' && *end <= '9' && count < 100000)
            count = count * 10 + (uint32_t)(*end++ - '0');
        if (count == 0 || *end) {
            usage();
            return;
        }
    }
    kprintf("PING ");
    net_print_ip(dst);
    kprintf(": %u data bytes\n", PING_DATA);
    uint32_t received = 0, min = 0xFFFFFFFFu, max = 0;
    uint32_t total = 0;             /* microseconds: room for over an hour of round trips */
    for (uint32_t seq = 1; seq <= count; seq++) {
        uint32_t sent_tick = ticks;
        ping_dst = dst;
        ping_seq = (uint16_t)seq;
        reply_seen = 0;
        uint32_t t0 = now_us();
        if (net_ping(dst, PING_ID, (uint16_t)seq, PING_DATA) < 0) {
            kprintf("ping: no route to ");
            net_print_ip(dst);
            kprintf("\n");
            return;
        }
        if (wait_for_reply(sent_tick)) {
            uint32_t rtt = reply_us - t0;
            received++;
            total += rtt;
            min = rtt < min ? rtt : min;
            max = rtt > max ? rtt : max;
            if (!flood) {
                kprintf("%u bytes from ", reply_size + 8);
                net_print_ip(dst);
                kprintf(": icmp_seq=%u ttl=%u time=", seq, reply_ttl);
                print_ms(rtt);
                kprintf(" ms\n");
            }
        } else if (!flood) {
            kprintf("no reply for icmp_seq=%u\n", seq);
        }
        while (!flood && seq < count && ticks - sent_tick < PING_INTERVAL_TICKS)
            task_sleep(1);
    }
    kprintf("--- ");
    net_print_ip(dst);
    kprintf(" ping statistics ---\n%u packets transmitted, %u received, %u%% packet loss\n",
            count, received, (count - received) * 100 / count);
    if (received) {
        kprintf("rtt min/avg/max = ");
        print_ms(min);
        kprintf("/");
        print_ms(total / received);
        kprintf("/");
        print_ms(max);
        kprintf(" ms\n");
    }
}

void cmd_net(const char *args)
{
    (void)args;
    if (!nic_up) {
        kprintf("net: no network card (virtio-net in virtio-MMIO slot %d)\n", VNET_SLOT);
        return;
    }
    const uint8_t *mac = vnet_mac();
    const struct net_stats *s = net_stats();
    const struct vnet_stats *v = vnet_stats();
    kprintf("net0: virtio-net, irq %d, mac %02x:%02x:%02x:%02x:%02x:%02x\n", vnet_irq(),
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    net_print_interfaces();
    kprintf("frames: %u received, %u sent, %u interrupts\n", v->rx_frames, v->tx_frames, v->interrupts);
    kprintf("arp: %u requests answered; icmp: %u echo requests answered\n", s->arp_requests,
            s->icmp_replies_out);
    kprintf("udp echo service (port %u): %u datagrams echoed; %u dropped\n", NET_ECHO_PORT,
            s->udp_echoed, s->dropped);
}
