"""What ``sandbox disk info`` reports about an image (as ``qemu-img info`` does)."""
from __future__ import annotations

import datetime
import os

from sandbox.errors import ImageError
from sandbox.storage import open_image
from sandbox.storage.qcow2 import Qcow2Image


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"


def _qcow2_details(img) -> dict:
    h = img.header
    clusters = img.allocated_clusters()
    return {
        "qcow2_version": h.version,
        "cluster_size": img.cluster_size,
        "refcount_bits": 1 << h.refcount_order,
        "backing_file": h.backing_file,
        "backing_format": h.backing_format,
        "allocated_clusters": clusters,
        "allocated_bytes": clusters * img.cluster_size,
        "dirty": bool(h.incompatible_features & 1),
        "corrupt": bool(h.incompatible_features & 2),
        "snapshots": [sn.as_dict() for sn in img.snapshots],
    }


# Extra facts per format; raw has none beyond size.
DETAILS = {"qcow2": _qcow2_details, "raw": lambda img: {}}


def _open_for_info(path: str):
    """Open read-only; a qcow2 image whose backing chain is broken still opens, so
    info can show where it points. Returns (image, error with the chain or None)."""
    try:
        return open_image(path, readonly=True), None
    except ImageError as e:
        try:
            return Qcow2Image(path, readonly=True, open_backing=False), str(e)
        except ImageError:
            raise e from None


def image_info(path: str) -> dict:
    """Everything ``info`` shows, as a JSON-ready dict."""
    img, chain_error = _open_for_info(path)
    try:
        st = os.stat(path)
        info = {"path": str(path), "format": img.format, "virtual_size": img.size(),
                "file_size": st.st_size, "disk_usage": st.st_blocks * 512}
        info.update(DETAILS.get(img.format, lambda _: {})(img))
        chain = []
        link = getattr(img, "backing", None)
        while link is not None:
            chain.append({"path": link.path, "format": link.format, "virtual_size": link.size()})
            link = getattr(link, "backing", None)
        info["backing_chain"] = chain
        if chain_error:
            info["backing_error"] = chain_error
        return info
    finally:
        img.close()


def _snapshot_lines(snapshots: list) -> list[str]:
    lines = [f"  {'ID':<6}{'TAG':<20}{'DATE':<21}DISK SIZE"]
    for sn in snapshots:
        date = datetime.datetime.fromtimestamp(sn["date"]).strftime("%Y-%m-%d %H:%M:%S")
        disk = human_size(sn["disk_size"]) if sn["disk_size"] is not None else "-"
        lines.append(f"  {sn['id']:<6}{sn['name']:<20}{date:<21}{disk}")
    return lines


# (label, key, how to show it from the whole info dict): a row appears when its key is set.
ROWS = [
    ("image", "path", lambda i: i["path"]),
    ("file format", "format", lambda i: i["format"]),
    ("virtual size", "virtual_size",
     lambda i: f"{human_size(i['virtual_size'])} ({i['virtual_size']} bytes)"),
    ("disk size", "disk_usage", lambda i: human_size(i["disk_usage"])),
    ("cluster size", "cluster_size", lambda i: str(i["cluster_size"])),
    ("qcow2 version", "qcow2_version", lambda i: str(i["qcow2_version"])),
    ("refcount bits", "refcount_bits", lambda i: str(i["refcount_bits"])),
    ("backing file", "backing_file", lambda i: i["backing_file"]),
    ("backing format", "backing_format", lambda i: i["backing_format"]),
    ("backing chain", "backing_chain",
     lambda i: " -> ".join(f"{b['path']} ({b['format']})" for b in i["backing_chain"])),
    ("backing problem", "backing_error", lambda i: i["backing_error"]),
    ("allocated", "allocated_clusters",
     lambda i: f"{i['allocated_clusters']} clusters ({human_size(i['allocated_bytes'])})"),
    ("dirty", "dirty", lambda i: "yes" if i["dirty"] else "no"),
    ("corrupt", "corrupt", lambda i: "yes" if i["corrupt"] else "no"),
]


def format_info(info: dict) -> str:
    lines = [f"{label}: {show(info)}" for label, key, show in ROWS
             if info.get(key) not in (None, [])]
    if info.get("snapshots"):
        lines.append("snapshots:")
        lines.extend(_snapshot_lines(info["snapshots"]))
    return "\n".join(lines)
