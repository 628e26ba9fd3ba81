"""Network virtualization: virtual switches with VLANs, and every frame visible.

    frames.py     Ethernet, 802.1Q, ARP, IPv4, ICMP, UDP: build, parse, describe in one line
    vlan.py       a port's VLANs: which VLAN a frame joins, how it leaves (tagged or not)
    switch.py     the switching function (learn, forward, flood, filter) and the MAC table
    vswitch.py    a switch with ports: counters, rate limits, mirror port, captures, events
    rate_limit.py the token bucket
    pcap.py       packet captures Wireshark opens
    network.py    the host's switches, and plugging VM NICs into them
    netconfig.py  checks across the config ([[switch]] and each VM's nic) and ip= for the guest
    net_report.py, show.py   the report's "net" and "switches", and ``sandbox switch show``
    net_bench.py  ``sandbox bench --only network``

The NIC itself is ``sandbox/devices/virtio/net.py``; the guests' side is tinyos's
``virtio_net.c``/``net.c`` and the router guest. See docs/network.md.
"""
