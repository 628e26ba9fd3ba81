"""Reading every register of a Unicorn vCPU in one C call.

The Python binding's ``reg_read`` costs ~4 us per register (the wrapper, not the
engine); the BIOS and interrupt delivery read the whole register file often. One
``uc_reg_read_batch`` call into preallocated buffers costs a few microseconds.
"""
from __future__ import annotations

import ctypes

from unicorn import Uc
from unicorn.unicorn_py3.unicorn import uclib


class RegisterFile:
    def __init__(self, uc: Uc, names: dict[str, int]) -> None:
        self._uc = uc
        self.names = tuple(names)
        n = len(names)
        self._ids = (ctypes.c_int * n)(*names.values())
        self._values = (ctypes.c_uint64 * n)()
        self._ptrs = (ctypes.c_void_p * n)(*(ctypes.addressof(self._values) + 8 * i for i in range(n)))
        self._count = n
        self._read = uclib.uc_reg_read_batch
        self._read.argtypes = None     # the binding declares other types; call with raw ctypes

    def read(self) -> dict[str, int]:
        ctypes.memset(self._values, 0, 8 * self._count)
        err = self._read(self._uc._uch, self._ids, self._ptrs, ctypes.c_int(self._count))
        if err:
            return {name: self._uc.reg_read(reg) for name, reg in zip(self.names, self._ids)}
        return dict(zip(self.names, self._values))
