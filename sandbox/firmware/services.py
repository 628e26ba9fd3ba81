"""The BIOS service table: (interrupt vector, AH) -> handler, with a teaching line each.

``service(vector, ah, "description")`` registers a handler; ``ah=None`` means "any AH".
The firmware looks calls up here and nowhere else (a table, not an if-chain).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from sandbox.firmware.bios import Firmware
    from sandbox.firmware.bios_call import BiosCall

Handler = Callable[["BiosCall", "Firmware"], None]


@dataclass(frozen=True)
class Service:
    vector: int
    ah: int | None
    description: str
    handler: Handler


SERVICES: dict[tuple[int, int | None], Service] = {}


def service(vector: int, ah: int | None, description: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        SERVICES[(vector, ah)] = Service(vector, ah, description, fn)
        return fn
    return register


def lookup(vector: int, ah: int) -> Service | None:
    return SERVICES.get((vector, ah)) or SERVICES.get((vector, None))
