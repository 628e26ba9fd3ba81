"""``sandbox disk``: the qemu-img verbs a user already knows, on the same formats.

    sandbox disk create tinyos-overlay.qcow2 --backing guests/images/tinyos.img
    sandbox disk create scratch.qcow2 --size 64M
    sandbox disk info tinyos-overlay.qcow2 [--json]
    sandbox disk snapshot tinyos-overlay.qcow2 create|list|apply|delete [NAME]
    sandbox disk convert tinyos-overlay.qcow2 flat.img --format raw
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys

from sandbox.errors import ImageError, SandboxError
from sandbox.storage.convert import convert_image
from sandbox.storage.create import CREATORS, DEFAULT_CLUSTER_SIZE, create_image, parse_size
from sandbox.storage.info import format_info, human_size, image_info
from sandbox.storage.qcow2 import Qcow2Image, probe_format


# -- create --------------------------------------------------------------------------
def _add_create(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="the new image")
    p.add_argument("--size", type=str, help="virtual size, e.g. 64M or 1G "
                   "(default: the backing file's size)")
    p.add_argument("--backing", metavar="FILE", help="base image for a copy-on-write overlay "
                   "(relative to the current directory; stored relative to the new image)")
    p.add_argument("--format", choices=sorted(CREATORS), default="qcow2")
    p.add_argument("--cluster-size", type=str, default=str(DEFAULT_CLUSTER_SIZE),
                   help="qcow2 cluster size (512 to 2M, default 64K)")
    p.add_argument("--qcow2-version", type=int, choices=(2, 3), default=3)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")


def _run_create(args) -> int:
    size = parse_size(args.size) if args.size is not None else None
    create_image(args.file, args.format, size=size, backing=args.backing,
                 cluster_size=parse_size(args.cluster_size), version=args.qcow2_version,
                 force=args.force)
    info = image_info(args.file)
    line = f"Created {args.file}: {info['format']}, {human_size(info['virtual_size'])}"
    if info.get("backing_file"):
        line += f", backing {info['backing_file']} ({info['backing_format']})"
    print(line)
    return 0


# -- info ----------------------------------------------------------------------------
def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _run_info(args) -> int:
    info = image_info(args.file)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


# -- snapshot ------------------------------------------------------------------------
def _snapshot_list(img, name) -> None:
    print(f"{'ID':<6}{'TAG':<20}{'DATE':<21}DISK SIZE")
    for sn in img.snapshots:
        date = datetime.datetime.fromtimestamp(sn.date_sec).strftime("%Y-%m-%d %H:%M:%S")
        size = human_size(sn.disk_size) if sn.disk_size is not None else "-"
        print(f"{sn.id:<6}{sn.name:<20}{date:<21}{size}")


def _snapshot_create(img, name) -> None:
    sn = img.create_snapshot(name)
    print(f"Created snapshot '{sn.name}' (id {sn.id}) of {img.path}")


def _snapshot_apply(img, name) -> None:
    img.apply_snapshot(name)
    print(f"{img.path} now shows snapshot '{name}'")


def _snapshot_delete(img, name) -> None:
    img.delete_snapshot(name)
    print(f"Deleted snapshot '{name}' from {img.path}")


# action -> (handler, needs a name, opens read-only, one-line description)
SNAPSHOT_ACTIONS = {
    "list": (_snapshot_list, False, True, "show the snapshot table"),
    "create": (_snapshot_create, True, False,
               "save the current disk state: copy the L1 table, share every cluster"),
    "apply": (_snapshot_apply, True, False,
              "make the disk show a snapshot again (later writes are discarded)"),
    "delete": (_snapshot_delete, True, False, "forget a snapshot and free what only it used"),
}


def _add_snapshot(p: argparse.ArgumentParser) -> None:
    p.add_argument("file")
    p.add_argument("action", choices=list(SNAPSHOT_ACTIONS),
                   help="; ".join(f"{k}: {v[3]}" for k, v in SNAPSHOT_ACTIONS.items()))
    p.add_argument("name", nargs="?", help="snapshot name (or ID for apply/delete)")


def _run_snapshot(args) -> int:
    handler, needs_name, readonly, _ = SNAPSHOT_ACTIONS[args.action]
    if needs_name and not args.name:
        raise ImageError(f"snapshot {args.action} needs a NAME")
    fmt = probe_format(args.file)
    if fmt != "qcow2":
        raise ImageError(f"{args.file}: {fmt} images have no snapshots (use qcow2)")
    # Snapshots are metadata only: the backing file is not needed (nor opened).
    img = Qcow2Image(args.file, readonly=readonly, open_backing=False)
    try:
        handler(img, args.name)
    finally:
        img.close()
    return 0


# -- convert -------------------------------------------------------------------------
def _add_convert(p: argparse.ArgumentParser) -> None:
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--format", choices=sorted(CREATORS),
                   help="output format (default: from the suffix, .qcow2 or raw)")
    p.add_argument("--cluster-size", type=str, default=str(DEFAULT_CLUSTER_SIZE))
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")


def _run_convert(args) -> int:
    result = convert_image(args.input, args.output, args.format,
                           cluster_size=parse_size(args.cluster_size), force=args.force)
    print(f"Converted {args.input} -> {args.output} ({result['format']}, "
          f"{human_size(result['size'])}, {human_size(result['written'])} of data)")
    return 0


# verb -> (add arguments, run, one-line description)
VERBS = {
    "create": (_add_create, _run_create,
               "make a raw or qcow2 image, or a copy-on-write overlay on a backing file"),
    "info": (_add_info, _run_info,
             "format, sizes, clusters, backing chain and snapshots of an image"),
    "snapshot": (_add_snapshot, _run_snapshot,
                 "list, create, apply or delete internal qcow2 snapshots"),
    "convert": (_add_convert, _run_convert,
                "copy an image (backing chain flattened) into a new raw or qcow2 file"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="disk_verb", metavar="VERB", required=True)
    for name, (add, _run, description) in VERBS.items():
        add(verbs.add_parser(name, help=description, description=description))


def run(args) -> int:
    try:
        return VERBS[args.disk_verb][1](args)
    except SandboxError as e:
        print(f"sandbox disk: {e}", file=sys.stderr)
        return 2
