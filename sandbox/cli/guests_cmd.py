"""``sandbox guests build``: rebuild the shipped guest images from guests/src."""
from __future__ import annotations

import argparse

from sandbox import guestbuild


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="guests_action", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="assemble and link the guests (GNU as, gcc, ld)")
    guestbuild.add_arguments(build)


def run(args: argparse.Namespace) -> int:
    return guestbuild.main(args)
