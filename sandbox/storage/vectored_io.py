"""Zero-copy DMA between a disk image and guest memory: what makes virtio-blk fast.

A guest buffer is contiguous in guest-physical memory but its pages live in host
frames anywhere in the frame pool. ``guest_views`` turns it into a list of views of
those frames (neighbouring frames merged), and ``read_into``/``write_from`` move the
data between the image file and those views with one ``preadv``/``pwritev`` system
call: the kernel copies straight into the guest's RAM, as a real hypervisor's
vectored I/O does. Images that are not raw files go through ``read``/``write``.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sandbox.host.ram import PAGE, PAGE_SHIFT
from sandbox.storage.raw import RawImage
from sandbox.vm.memory import NOT_PRESENT

if TYPE_CHECKING:
    from sandbox.storage.base import BlockImage
    from sandbox.vm.memory import GuestMemory

IOV_MAX = 1024                 # the most buffers one preadv/pwritev takes (Linux's UIO_MAXIOV)


def guest_views(memory: "GuestMemory", addr: int, length: int, write: bool) -> list[memoryview] | None:
    """The host memory behind guest-physical ``addr``..``addr + length``, faulting pages
    in (and breaking copy-on-write when the device will write them). None when part of
    the range is not RAM (the caller then uses GuestMemory.read/write)."""
    views: list[memoryview] = []
    view = memory.pool.view
    run_start = run_end = -1
    while length > 0:
        gpa = memory.mask(addr)
        offset = gpa & (PAGE - 1)
        n = min(length, PAGE - offset)
        hfn = memory.frame_for(gpa >> PAGE_SHIFT, write) if memory.is_ram(gpa) else NOT_PRESENT
        if hfn == NOT_PRESENT:
            return None
        start = hfn * PAGE + offset
        if start == run_end:
            run_end += n                               # the next host frame: one longer view
        else:
            if run_start >= 0:
                views.append(view[run_start:run_end])
            run_start, run_end = start, start + n
        addr += n
        length -= n
    if run_start >= 0:
        views.append(view[run_start:run_end])
    return views


def _chunks(views: list[memoryview]) -> list[list[memoryview]]:
    return [views[i:i + IOV_MAX] for i in range(0, len(views), IOV_MAX)] or [[]]


def read_into(image: "BlockImage", offset: int, views: list[memoryview]) -> None:
    """Fill ``views`` from the image at byte ``offset`` (past the end reads zeros)."""
    fd = getattr(image, "_fd", -1) if isinstance(image, RawImage) else -1
    if fd < 0:
        data = memoryview(image.read(offset, sum(len(v) for v in views)))
        pos = 0
        for v in views:
            v[:] = data[pos:pos + len(v)]
            pos += len(v)
        return
    for group in _chunks(views):
        want = sum(len(v) for v in group)
        got = os.preadv(fd, group, offset)
        if got < want:                                 # past the end of the file: zeros
            skip = got
            for v in group:
                if skip >= len(v):
                    skip -= len(v)
                    continue
                v[skip:] = bytes(len(v) - skip)
                skip = 0
        offset += want


def write_from(image: "BlockImage", offset: int, views: list[memoryview]) -> None:
    """Write ``views`` to the image at byte ``offset`` (the caller checked the range)."""
    fd = getattr(image, "_fd", -1) if isinstance(image, RawImage) else -1
    if fd < 0 or image.readonly:
        image.write(offset, b"".join(views))
        return
    for group in _chunks(views):
        want = sum(len(v) for v in group)
        done = 0
        while done < want:                             # pwritev may write less: go on
            done += os.pwritev(fd, _tail(group, done), offset + done)
        offset += want


def _tail(views: list[memoryview], skip: int) -> list[memoryview]:
    out = []
    for v in views:
        if skip >= len(v):
            skip -= len(v)
            continue
        out.append(v[skip:])
        skip = 0
    return out
