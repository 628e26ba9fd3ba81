/* net.h - a tiny IPv4 stack: Ethernet, 802.1Q, ARP, IPv4, ICMP echo, UDP echo.
 *
 * Shared by tinyos (one untagged interface) and the router guest (one interface
 * per VLAN on an 802.1Q trunk, with forwarding on). Addresses are uint32_t in host
 * byte order (10.0.0.1 is 0x0A000001); on the wire everything is big-endian.
 * Frames come in through net_input() (from the driver's interrupt handler) and
 * go out through vnet_send().
 */
#ifndef NET_H
#define NET_H

#include <stdint.h>

#define NET_MAX_IFS 4
#define NET_ECHO_PORT 7                 /* the UDP echo service (RFC 862) */

struct net_stats {
    uint32_t rx_frames, tx_frames;
    uint32_t arp_requests, arp_replies;
    uint32_t icmp_echo_in, icmp_replies_out, udp_echoed;
    uint32_t forwarded, dropped;
};

void net_init(const uint8_t mac[6]);
/* An interface: untagged (vlan 0) or on an 802.1Q VLAN. Returns its index or -1. */
int net_add_interface(uint16_t vlan, uint32_t ip, uint32_t prefix_len);
void net_set_gateway(uint32_t gateway);
void net_set_forwarding(int on);        /* be a router: pass IPv4 between interfaces */
void net_set_log(int on);               /* print each forwarded packet */
int net_interfaces(void);
void net_print_interfaces(void);        /* "eth0 vlan 10 10.0.10.1/24" lines */
const struct net_stats *net_stats(void);

void net_input(const uint8_t *frame, uint32_t len);     /* give to vnet_set_receiver */

/* Send an ICMP echo request with `size` data bytes. 0: sent; 1: queued until ARP
 * finds the next hop; -1: no route to `dst`. */
int net_ping(uint32_t dst, uint16_t id, uint16_t seq, uint32_t size);
/* Ask again for the next hops of packets still waiting for ARP (an ARP request
 * sent before the other machine was up is lost). Returns how many are waiting. */
int net_arp_retry(void);
/* Called (from the interrupt handler) for each echo reply that arrives. */
typedef void (*net_echo_reply_fn)(uint32_t from, uint16_t id, uint16_t seq, uint8_t ttl, uint32_t size);
void net_on_echo_reply(net_echo_reply_fn fn);

/* Parsing and printing addresses: "10.0.0.1", "10.0.0.1/24". 0 on success. */
int net_parse_ip(const char *text, uint32_t *ip, const char **end);
int net_parse_cidr(const char *text, uint32_t *ip, uint32_t *prefix_len);
void net_print_ip(uint32_t ip);

#endif
