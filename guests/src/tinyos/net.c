/*
 * net.c - a tiny IPv4 stack (see net.h).
 *
 * Receive path, all in the NIC's interrupt handler:
 *   net_input    Ethernet: strip an 802.1Q tag, keep frames for our MAC or broadcast
 *   arp_input    answer "who has <our IP>?", remember who asked (RFC 826)
 *   ip_input     check the header; ours: ICMP or UDP; not ours: forward (router only)
 *   icmp_input   echo request -> echo reply; echo reply -> the ping command
 *   udp_input    port 7: send the datagram back (the echo service)
 * Send path: ip_send finds the interface and next hop (route), the next hop's MAC
 * (the ARP cache; a packet waits in `pending` while an ARP request is out) and
 * hands the frame to the driver. Everything runs with interrupts off, so one
 * static buffer of each kind is enough.
 */
#include "console.h"
#include "io.h"
#include "net.h"
#include "string.h"
#include "virtio_net.h"

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define ETHERTYPE_VLAN 0x8100
#define PROTO_ICMP 1
#define PROTO_UDP 17
#define ICMP_ECHO_REPLY 0
#define ICMP_ECHO_REQUEST 8
#define ARP_REQUEST 1
#define ARP_REPLY 2
#define ARP_ENTRIES 16
#define PENDING 4

struct iface { uint16_t vlan; uint32_t ip, mask, prefix; };
struct arp_entry { uint32_t ip; uint8_t mac[6]; uint8_t iface, valid; };
struct pending { uint32_t next_hop, len; int iface, used; uint8_t data[VNET_MTU]; };

static struct iface ifs[NET_MAX_IFS];
static int nifs;
static uint8_t our_mac[6];
static uint32_t gateway;
static int forwarding, logging;
static uint16_t ident;
static struct net_stats stats;
static net_echo_reply_fn echo_reply_fn;
static struct arp_entry arp_cache[ARP_ENTRIES];
static int arp_victim;                      /* round-robin replacement when the cache is full */
static struct pending pending[PENDING];
static uint8_t frame_out[VNET_FRAME_MAX];
static uint8_t packet[VNET_MTU];
static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t zero_mac[6];

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xFF; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xFFFF); }

/* The Internet checksum (RFC 1071): one's complement sum of 16-bit words. A
 * correct header or message, checksum field included, sums to 0. */
static uint16_t checksum(const uint8_t *data, uint32_t len)
{
    uint32_t sum = 0;
    for (uint32_t i = 0; i + 1 < len; i += 2)
        sum += get16(data + i);
    if (len & 1)
        sum += (uint32_t)data[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

/* ---- configuration ----------------------------------------------------------- */

void net_init(const uint8_t mac[6]) { memcpy(our_mac, mac, 6); }
void net_set_gateway(uint32_t gw) { gateway = gw; }
void net_set_forwarding(int on) { forwarding = on; }
void net_set_log(int on) { logging = on; }
int net_interfaces(void) { return nifs; }
const struct net_stats *net_stats(void) { return &stats; }
void net_on_echo_reply(net_echo_reply_fn fn) { echo_reply_fn = fn; }

int net_add_interface(uint16_t vlan, uint32_t ip, uint32_t prefix_len)
{
    if (nifs == NET_MAX_IFS || prefix_len > 32)
        return -1;
    uint32_t mask = prefix_len ? 0xFFFFFFFFu << (32 - prefix_len) : 0;
    ifs[nifs] = (struct iface){ vlan, ip, mask, prefix_len };
    return nifs++;
}

void net_print_ip(uint32_t ip)
{
    kprintf("%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xFF, (ip >> 8) & 0xFF, ip & 0xFF);
}

void net_print_interfaces(void)
{
    for (int i = 0; i < nifs; i++) {
        kprintf("  ");
        if (ifs[i].vlan)
            kprintf("vlan %u: ", ifs[i].vlan);
        net_print_ip(ifs[i].ip);
        kprintf("/%u\n", ifs[i].prefix);
    }
}

/* ---- Ethernet and ARP --------------------------------------------------------- */

static void eth_send(int iface, const uint8_t *dst, uint16_t type, const uint8_t *payload, uint32_t len)
{
    uint8_t *p = frame_out;
    memcpy(p, dst, 6);
    memcpy(p + 6, our_mac, 6);
    p += 12;
    if (ifs[iface].vlan) {                  /* 802.1Q: TPID 0x8100, then priority 0 and the VID */
        put16(p, ETHERTYPE_VLAN);
        put16(p + 2, ifs[iface].vlan);
        p += 4;
    }
    put16(p, type);
    p += 2;
    memcpy(p, payload, len);
    if (vnet_send(frame_out, (uint32_t)(p - frame_out) + len) == 0)
        stats.tx_frames++;
    else
        stats.dropped++;
}

static void arp_send(int iface, uint16_t op, const uint8_t *eth_dst, const uint8_t *target_mac, uint32_t target_ip)
{
    uint8_t a[28];
    put16(a, 1);                            /* hardware: Ethernet */
    put16(a + 2, ETHERTYPE_IPV4);           /* protocol: IPv4 */
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, our_mac, 6);
    put32(a + 14, ifs[iface].ip);
    memcpy(a + 18, target_mac, 6);
    put32(a + 24, target_ip);
    eth_send(iface, eth_dst, ETHERTYPE_ARP, a, sizeof(a));
}

static struct arp_entry *arp_find(uint32_t ip, int iface)
{
    for (int i = 0; i < ARP_ENTRIES; i++)
        if (arp_cache[i].valid && arp_cache[i].ip == ip && arp_cache[i].iface == iface)
            return &arp_cache[i];
    return 0;
}

/* A next hop's MAC is known: remember it and send what was waiting for it. */
static void arp_learn(uint32_t ip, const uint8_t *mac, int iface)
{
    struct arp_entry *e = arp_find(ip, iface);
    if (!e) {
        e = &arp_cache[arp_victim];
        for (int i = 0; i < ARP_ENTRIES; i++)
            if (!arp_cache[i].valid) {
                e = &arp_cache[i];
                break;
            }
        if (e == &arp_cache[arp_victim])
            arp_victim = (arp_victim + 1) % ARP_ENTRIES;
    }
    *e = (struct arp_entry){ ip, { 0 }, (uint8_t)iface, 1 };
    memcpy(e->mac, mac, 6);
    for (int i = 0; i < PENDING; i++)
        if (pending[i].used && pending[i].next_hop == ip && pending[i].iface == iface) {
            pending[i].used = 0;
            eth_send(iface, mac, ETHERTYPE_IPV4, pending[i].data, pending[i].len);
        }
}

static void arp_input(int iface, const uint8_t *p, uint32_t len)
{
    if (len < 28 || get16(p) != 1 || get16(p + 2) != ETHERTYPE_IPV4 || p[4] != 6 || p[5] != 4) {
        stats.dropped++;
        return;
    }
    uint16_t op = get16(p + 6);
    uint32_t sender_ip = get32(p + 14), target_ip = get32(p + 24);
    if (target_ip == ifs[iface].ip) {
        arp_learn(sender_ip, p + 8, iface);             /* whoever asks will talk to us */
        if (op == ARP_REQUEST) {
            stats.arp_requests++;
            arp_send(iface, ARP_REPLY, p + 8, p + 8, sender_ip);
        } else if (op == ARP_REPLY) {
            stats.arp_replies++;
        }
    } else if (arp_find(sender_ip, iface)) {
        arp_learn(sender_ip, p + 8, iface);             /* RFC 826: refresh what we know */
    }
}

/* ---- IPv4 --------------------------------------------------------------------- */

/* Which interface reaches `dst`, and through which next hop? */
static int route(uint32_t dst, uint32_t *next_hop)
{
    for (int i = 0; i < nifs; i++)
        if ((dst & ifs[i].mask) == (ifs[i].ip & ifs[i].mask)) {
            *next_hop = dst;
            return i;
        }
    for (int i = 0; gateway && i < nifs; i++)
        if ((gateway & ifs[i].mask) == (ifs[i].ip & ifs[i].mask)) {
            *next_hop = gateway;
            return i;
        }
    return -1;
}

/* Send a complete IPv4 packet. 0: sent, 1: waiting for ARP, -1: no route. */
static int ip_send(const uint8_t *pkt, uint32_t len)
{
    uint32_t hop;
    int i = route(get32(pkt + 16), &hop);
    if (i < 0) {
        stats.dropped++;
        return -1;
    }
    struct arp_entry *e = arp_find(hop, i);
    if (e) {
        eth_send(i, e->mac, ETHERTYPE_IPV4, pkt, len);
        return 0;
    }
    int slot = 0;
    for (int k = 0; k < PENDING; k++)
        if (!pending[k].used) {
            slot = k;
            break;
        }
    if (pending[slot].used)
        stats.dropped++;                                /* every slot busy: drop the oldest */
    pending[slot].next_hop = hop;
    pending[slot].len = len;
    pending[slot].iface = i;
    pending[slot].used = 1;
    memcpy(pending[slot].data, pkt, len);
    arp_send(i, ARP_REQUEST, broadcast, zero_mac, hop);
    return 1;
}

int net_arp_retry(void)
{
    uint32_t flags = irq_save();
    int waiting = 0;
    for (int k = 0; k < PENDING; k++)
        if (pending[k].used) {
            waiting++;
            arp_send(pending[k].iface, ARP_REQUEST, broadcast, zero_mac, pending[k].next_hop);
        }
    irq_restore(flags);
    return waiting;
}

static void ip_header(uint8_t *p, uint32_t src, uint32_t dst, uint8_t proto, uint32_t payload_len)
{
    p[0] = 0x45;                            /* version 4, header of 5 words */
    p[1] = 0;
    put16(p + 2, (uint16_t)(20 + payload_len));
    put16(p + 4, ident++);
    put16(p + 6, 0);                        /* not fragmented */
    p[8] = 64;                              /* TTL */
    p[9] = proto;
    put16(p + 10, 0);
    put32(p + 12, src);
    put32(p + 16, dst);
    put16(p + 10, checksum(p, 20));
}

static int is_ours(uint32_t ip)
{
    for (int i = 0; i < nifs; i++)
        if (ifs[i].ip == ip)
            return 1;
    return 0;
}

static void icmp_input(const uint8_t *ip, uint32_t ihl, uint32_t total)
{
    const uint8_t *m = ip + ihl;
    uint32_t len = total - ihl;
    if (len < 8 || checksum(m, len) != 0) {
        stats.dropped++;
        return;
    }
    if (m[0] == ICMP_ECHO_REQUEST) {
        stats.icmp_echo_in++;
        memcpy(packet + 20, m, len);        /* the same identifier, sequence and data ... */
        packet[20] = ICMP_ECHO_REPLY;       /* ... as a reply, from us back to the sender */
        put16(packet + 22, 0);
        put16(packet + 22, checksum(packet + 20, len));
        ip_header(packet, get32(ip + 16), get32(ip + 12), PROTO_ICMP, len);
        if (ip_send(packet, 20 + len) >= 0)
            stats.icmp_replies_out++;
    } else if (m[0] == ICMP_ECHO_REPLY && echo_reply_fn) {
        echo_reply_fn(get32(ip + 12), get16(m + 4), get16(m + 6), ip[8], len - 8);
    }
}

static void udp_input(const uint8_t *ip, uint32_t ihl, uint32_t total)
{
    const uint8_t *u = ip + ihl;
    uint32_t len = total - ihl;
    if (len < 8 || get16(u + 4) < 8 || get16(u + 4) > len || get16(u + 2) != NET_ECHO_PORT) {
        stats.dropped++;
        return;
    }
    len = get16(u + 4);
    memcpy(packet + 20, u, len);
    put16(packet + 20, NET_ECHO_PORT);      /* from port 7 ... */
    put16(packet + 22, get16(u));           /* ... back to the sender's port */
    put16(packet + 26, 0);                  /* no UDP checksum (allowed over IPv4) */
    ip_header(packet, get32(ip + 16), get32(ip + 12), PROTO_UDP, len);
    if (ip_send(packet, 20 + len) >= 0)
        stats.udp_echoed++;
}

/* A router's job: one hop closer, one less TTL, a new checksum, out again. */
static void ip_forward(int in, const uint8_t *ip, uint32_t ihl, uint32_t total)
{
    if (ip[8] <= 1) {                       /* TTL expired (a full router sends ICMP time exceeded) */
        stats.dropped++;
        return;
    }
    memcpy(packet, ip, total);
    packet[8]--;
    put16(packet + 10, 0);
    put16(packet + 10, checksum(packet, ihl));
    uint32_t hop;
    int out = route(get32(packet + 16), &hop);
    if (logging) {
        kprintf("router: ");
        net_print_ip(get32(ip + 12));
        kprintf(" > ");
        net_print_ip(get32(ip + 16));
        kprintf(" vlan %u -> vlan %u, ttl %u\n", ifs[in].vlan, out >= 0 ? ifs[out].vlan : 0, packet[8]);
    }
    if (ip_send(packet, total) >= 0)
        stats.forwarded++;
}

static void ip_input(int iface, const uint8_t *p, uint32_t len)
{
    if (len < 20 || (p[0] >> 4) != 4) {
        stats.dropped++;
        return;
    }
    uint32_t ihl = (p[0] & 0xF) * 4u, total = get16(p + 2);
    if (ihl < 20 || total < ihl || total > len || checksum(p, ihl) != 0) {
        stats.dropped++;
        return;
    }
    uint32_t dst = get32(p + 16);
    if (is_ours(dst)) {
        if (p[9] == PROTO_ICMP)
            icmp_input(p, ihl, total);
        else if (p[9] == PROTO_UDP)
            udp_input(p, ihl, total);
        else
            stats.dropped++;
    } else if (forwarding && dst != 0xFFFFFFFFu) {
        ip_forward(iface, p, ihl, total);
    } else {
        stats.dropped++;
    }
}

void net_input(const uint8_t *f, uint32_t len)
{
    stats.rx_frames++;
    if (len < 14) {
        stats.dropped++;
        return;
    }
    uint16_t type = get16(f + 12), vlan = 0;
    uint32_t off = 14;
    if (type == ETHERTYPE_VLAN) {
        if (len < 18) {
            stats.dropped++;
            return;
        }
        vlan = get16(f + 14) & 0xFFF;
        type = get16(f + 16);
        off = 18;
    }
    /* A NIC's address filter: our MAC, or a group address (broadcast, multicast). The
     * switch floods unknown unicast, so frames for others do reach us. */
    int iface = -1;
    for (int i = 0; i < nifs; i++)
        if (ifs[i].vlan == vlan)
            iface = i;
    if (iface < 0 || (memcmp(f, our_mac, 6) != 0 && !(f[0] & 1))) {
        stats.dropped++;
        return;
    }
    if (type == ETHERTYPE_ARP)
        arp_input(iface, f + off, len - off);
    else if (type == ETHERTYPE_IPV4)
        ip_input(iface, f + off, len - off);
    else
        stats.dropped++;
}

/* ---- ping ------------------------------------------------------------------------- */

int net_ping(uint32_t dst, uint16_t id, uint16_t seq, uint32_t size)
{
    uint32_t flags = irq_save();
    uint32_t hop;
    int i = route(dst, &hop);
    if (i < 0) {
        irq_restore(flags);
        return -1;
    }
    if (size > VNET_MTU - 28)
        size = VNET_MTU - 28;
    uint8_t *m = packet + 20;
    m[0] = ICMP_ECHO_REQUEST;
    m[1] = 0;
    put16(m + 2, 0);
    put16(m + 4, id);
    put16(m + 6, seq);
    for (uint32_t k = 0; k < size; k++)
        m[8 + k] = (uint8_t)k;
    put16(m + 2, checksum(m, 8 + size));
    ip_header(packet, ifs[i].ip, dst, PROTO_ICMP, 8 + size);
    int result = ip_send(packet, 28 + size);
    irq_restore(flags);
    return result;
}

/* ---- addresses as text -------------------------------------------------------------- */

static const char *number(const char *s, uint32_t *value)
{
    if (*s < '0' || *s > '9')
        return 0;
    uint32_t v = 0;
    while (*s >= '0' && *s <= '9' && v < 1000)
        v = v * 10 + (uint32_t)(*s++ - '0');
    *value = v;
    return s;
}

int net_parse_ip(const char *text, uint32_t *ip, const char **end)
{
    uint32_t result = 0, octet;
    for (int i = 0; i < 4; i++) {
        if (i && *text++ != '.')
            return -1;
        text = number(text, &octet);
        if (!text || octet > 255)
            return -1;
        result = result << 8 | octet;
    }
    *ip = result;
    if (end)
        *end = text;
    return 0;
}

int net_parse_cidr(const char *text, uint32_t *ip, uint32_t *prefix_len)
{
    const char *end;
    if (net_parse_ip(text, ip, &end) != 0 || *end != '/')
        return -1;
    end = number(end + 1, prefix_len);
    return end && *prefix_len <= 32 && (*end == 0 || *end == ' ') ? 0 : -1;
}
