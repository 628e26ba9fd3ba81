"""A switch's state as text: the port table, the MAC table (with ages and VLANs) and
the decision counts, as ``sandbox switch show`` prints them."""
from __future__ import annotations

from typing import Any


def _drops(drops: dict[str, int]) -> str:
    total = sum(drops.values())
    if not total:
        return "0"
    return f"{total} (" + ", ".join(f"{reason}: {n}" for reason, n in sorted(drops.items())) + ")"


def format_switch(state: dict[str, Any]) -> list[str]:
    mirror = f", mirror to {state['mirror_to']}" if state.get("mirror_to") else ""
    lines = [f"switch {state['name']}: {len(state['port_list'])} of {state['ports']} ports in use, "
             f"ageing {state['ageing_s']:g} s, latency {state['latency_us']:g} us{mirror} "
             f"(at {state['time_seconds']:.6f} s of guest time)",
             "",
             f"{'PORT':>4}  {'NAME':<12} {'VLAN':<18} {'RX FRAMES':>9} {'RX BYTES':>9} "
             f"{'TX FRAMES':>9} {'TX BYTES':>9}  DROPS"]
    for p in state["port_list"]:
        limit = f" [limit {p['rate_limit']['rate_mbit']:g} Mbit/s]" if p.get("rate_limit") else ""
        down = "" if p["up"] else " [down]"
        lines.append(f"{p['port']:>4}  {p['name']:<12} {p['vlan']:<18} {p['rx_frames']:>9} {p['rx_bytes']:>9} "
                     f"{p['tx_frames']:>9} {p['tx_bytes']:>9}  {_drops(p['drops'])}{limit}{down}")
    lines += ["", f"MAC table ({len(state['mac_table'])} entries, {state['aged_out']} aged out):",
              f"  {'MAC':<17}  {'VLAN':>4}  {'PORT':>4}  {'NAME':<12} {'AGE':>10}"]
    for row in state["mac_table"]:
        lines.append(f"  {row['mac']:<17}  {row['vlan']:>4}  {row['port']:>4}  {row.get('port_name') or '':<12} "
                     f"{row['age_s']:>8.3f} s")
    decisions = ", ".join(f"{k} {v}" for k, v in state["decisions"].items()) or "no frames yet"
    lines += ["", f"frames: {decisions}"]
    return lines
