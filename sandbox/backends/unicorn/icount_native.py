"""The native block hook: 83 bytes of x86-64 machine code that count guest instructions.

Unicorn calls a ``UC_HOOK_BLOCK`` callback each time a translation block (TB) starts
executing, with the C signature::

    void hook(uc_engine *uc, uint64_t address, uint32_t size, void *user_data)

A Python callback costs about 0.1 us per block (~10 guest MIPS). This one is a few
machine instructions, in C::

    void hook(uc_engine *uc, uint64_t address, uint32_t size, ClockState *state) {
        if (state->remaining <= 0) {            /* budget used up */
            state->expired = 1;
            return uc_emu_stop(uc);             /* this block will not run */
        }
        BlockEntry *set = &state->table[2 * ((address ^ (address >> 14)) & 0x3fff)];
        uint32_t n;
        if (set[0].address == address && set[0].size == size) n = set[0].icount;
        else if (set[1].address == address && set[1].size == size) n = set[1].icount;
        else n = state->miss(uc, address, size, state);   /* Python, once per block */
        state->remaining -= n;
    }

``uc_emu_stop`` works here because Unicorn places the block hook *before* the TB's
exit check: the block whose hook stopped the CPU does not run at all.

The System V AMD64 calling convention puts the four arguments in rdi, rsi, edx and
rcx; rax, rdx, rsi, rdi, rcx, r8-r11 may be clobbered; at a ``call`` the stack pointer
must be a multiple of 16. The code changes only rax (and the stack around its one
call), so the arguments are still in place when it calls ``miss`` (same four) or
jumps to ``uc_emu_stop`` (first argument ``uc``).

The code is written to an anonymous page that is writable, then made read+execute
(W^X: never writable and executable at once), once per process.
"""
from __future__ import annotations

import ctypes
import mmap
import platform
import sys

# --- the shared memory the hook works on (its ``user_data``) --------------------------

TABLE_SETS = 1 << 14          # 16,384 sets x 2 ways x 16 bytes = 512 KiB per clock
SET_MASK = TABLE_SETS - 1     # the "and eax, 0x3fff" immediate below
HASH_SHIFT = 14               # the "shr rax, 14" immediate below


class BlockEntry(ctypes.Structure):
    """One cached block: its key (address, size in bytes) and its instruction count.
    An all-zero entry is empty: Unicorn never reports a block of size 0."""
    _fields_ = [("address", ctypes.c_uint64),   # +0
                ("size", ctypes.c_uint32),      # +8
                ("icount", ctypes.c_uint32)]    # +12


class ClockState(ctypes.Structure):
    """The hook's ``user_data``; the offsets are the displacements in the machine code.
    Only ``remaining`` is written per block (one memory write: a second counter made
    the loop up to 30% slower on some runs); Python derives ``retired`` from it."""
    _fields_ = [("remaining", ctypes.c_int64),  # +0  budget left; <= 0 means stop
                ("expired", ctypes.c_uint64),   # +8  1 once the hook stopped the CPU
                ("emu_stop", ctypes.c_void_p),  # +16 address of uc_emu_stop()
                ("miss", ctypes.c_void_p),      # +24 Python: icount of a new block
                ("table", BlockEntry * (2 * TABLE_SETS))]  # +32: set s = entries 2s, 2s+1


HEADER = ClockState.table.offset          # 32: the "lea rax, [rcx+rax+0x20]" displacement

# miss(uc, address, size, state) -> instruction count of that block (uint32)
MISS_CFUNC = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint64,
                              ctypes.c_uint32, ctypes.c_void_p)


def set_index(address: int) -> int:
    """The hash the machine code computes: fold the high address bits onto the low ones."""
    return (address ^ (address >> HASH_SHIFT)) & SET_MASK


# --- the machine code, one instruction a row --------------------------------------------
# (offset, bytes, assembly as capstone prints it, label, what it does | how it is
# encoded). ModRM byte = mod(2 bits) reg(3) rm(3): mod 00 = [rm], 01 = [rm + disp8],
# 11 = the register rm itself. Register numbers: rax 0, rcx 1, rdx 2, rsi 6. The REX.W
# prefix 0x48 makes an operation 64-bit. A rel8 jump lands at (next instruction + rel8).
HOOK_CODE = [
    (0x00, "48 83 39 00", "cmp qword ptr [rcx], 0", "",
     "remaining <= 0 ? | 48 REX.W; 83 = ALU op r/m64, imm8; "
     "39 = ModRM 00 111 001 (/7 = CMP, [rcx]); 00 = imm8 0"),
    (0x04, "7e 39", "jle stop", "",
     "budget used up: stop before this block runs | 7E = JLE rel8; 0x06 + 0x39 = 0x3f"),
    (0x06, "48 89 f0", "mov rax, rsi", "",
     "rax = address | 89 = MOV r/m, r; F0 = 11 110 000 (rsi into rax)"),
    (0x09, "48 c1 e8 0e", "shr rax, 0xe", "",
     "rax = address >> 14 | C1 = shift r/m64 by imm8; E8 = 11 101 000 (/5 = SHR, rax); "
     "0E = 14"),
    (0x0d, "48 31 f0", "xor rax, rsi", "",
     "rax = address ^ (address >> 14) | 31 = XOR r/m, r; F0 = 11 110 000 (rsi into rax)"),
    (0x10, "25 ff 3f 00 00", "and eax, 0x3fff", "",
     "rax = set number (a 32-bit write clears rax's top half) | 25 = AND eax, imm32; "
     "FF 3F 00 00 = 0x3fff little-endian"),
    (0x15, "48 c1 e0 05", "shl rax, 5", "",
     "rax = set number * 32 bytes | C1; E0 = 11 100 000 (/4 = SHL, rax); 05 = 5"),
    (0x19, "48 8d 44 01 20", "lea rax, [rcx + rax + 0x20]", "",
     "rax = &table[2 * set] | 8D = LEA; 44 = 01 000 100 (disp8, into rax, SIB follows); "
     "01 = SIB 00 000 001 (scale 1, index rax, base rcx); 20 = header size 32"),
    (0x1e, "48 3b 30", "cmp rsi, qword ptr [rax]", "",
     "way 0 address == address ? | 3B = CMP r, r/m; 30 = 00 110 000 (rsi, [rax])"),
    (0x21, "75 0c", "jne second", "",
     "no: try way 1 | 75 = JNE rel8; 0x23 + 0x0c = 0x2f"),
    (0x23, "3b 50 08", "cmp edx, dword ptr [rax + 8]", "",
     "way 0 size == size ? (no REX: 32-bit) | 3B; 50 = 01 010 000 (disp8, edx, [rax]); 08"),
    (0x26, "75 07", "jne second", "",
     "no: try way 1 | 75; 0x28 + 0x07 = 0x2f"),
    (0x28, "8b 40 0c", "mov eax, dword ptr [rax + 0xc]", "",
     "hit: eax = icount (zero-extended into rax) | 8B = MOV r, r/m; 40 = 01 000 000; 0C"),
    (0x2b, "48 29 01", "sub qword ptr [rcx], rax", "count",
     "remaining -= icount | 29 = SUB r/m, r; 01 = 00 000 001 (rax from [rcx])"),
    (0x2e, "c3", "ret", "",
     "back to Unicorn, which runs the block | C3 = RET"),
    (0x2f, "48 3b 70 10", "cmp rsi, qword ptr [rax + 0x10]", "second",
     "way 1 address == address ? | 3B; 70 = 01 110 000 (disp8, rsi, [rax]); 10 = 16"),
    (0x33, "75 15", "jne miss", "",
     "no: ask Python | 75; 0x35 + 0x15 = 0x4a"),
    (0x35, "3b 50 18", "cmp edx, dword ptr [rax + 0x18]", "",
     "way 1 size == size ? | 3B; 50 = 01 010 000; 18 = 24"),
    (0x38, "75 10", "jne miss", "",
     "no: ask Python | 75; 0x3a + 0x10 = 0x4a"),
    (0x3a, "8b 40 1c", "mov eax, dword ptr [rax + 0x1c]", "",
     "hit: eax = icount of way 1 | 8B; 40 = 01 000 000; 1C = 28"),
    (0x3d, "eb ec", "jmp count", "",
     "go count it | EB = JMP rel8; EC = -20: 0x3f - 20 = 0x2b"),
    (0x3f, "48 c7 41 08 01 00 00 00", "mov qword ptr [rcx + 8], 1", "stop",
     "expired = 1 | C7 /0 = MOV r/m64, imm32; 41 = 01 000 001 (disp8, [rcx]); 08; "
     "01 00 00 00 = 1"),
    (0x47, "ff 61 10", "jmp qword ptr [rcx + 0x10]", "",
     "tail call uc_emu_stop(uc): rdi still holds uc; it returns straight to Unicorn | "
     "FF /4 = JMP r/m64; 61 = 01 100 001 (disp8, [rcx]); 10 = 16"),
    (0x4a, "51", "push rcx", "miss",
     "keep the state pointer; rsp was 16n+8 on entry, 16n now, as a call needs | "
     "50+1 = PUSH rcx"),
    (0x4b, "ff 51 18", "call qword ptr [rcx + 0x18]", "",
     "eax = miss(uc, address, size, state): the same four registers | FF /2 = CALL r/m64; "
     "51 = 01 010 001 (disp8, [rcx]); 18 = 24"),
    (0x4e, "59", "pop rcx", "",
     "restore the state pointer | 58+1 = POP rcx"),
    (0x4f, "89 c0", "mov eax, eax", "",
     "clear rax's top half (undefined after a uint32 return) | 89; C0 = 11 000 000"),
    (0x51, "eb d8", "jmp count", "",
     "go count it | EB; D8 = -40: 0x53 - 40 = 0x2b"),
]

HOOK_BYTES = b"".join(bytes.fromhex(row[1]) for row in HOOK_CODE)


def native_supported() -> bool:
    """The machine code is x86-64 System V (Linux), and the host must let this process
    map an executable page (a hardened kernel may refuse)."""
    if not (platform.machine().lower() in ("x86_64", "amd64")
            and sys.platform.startswith("linux")):
        return False
    try:
        hook_address()
    except OSError:
        return False
    return True


_libc = None
_code_address = None


def _libc_functions():
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                              ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _libc = libc
    return _libc


def hook_address() -> int:
    """Address of the hook's code, created on first use and shared by every clock
    (the code is read-only; each clock passes its own ``ClockState``)."""
    global _code_address
    if _code_address is None:
        libc = _libc_functions()
        page = mmap.PAGESIZE
        address = libc.mmap(None, page, mmap.PROT_READ | mmap.PROT_WRITE,
                            mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap of the icount hook page failed")
        ctypes.memmove(address, HOOK_BYTES, len(HOOK_BYTES))      # 1. write ...
        if libc.mprotect(address, page, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
            raise OSError(ctypes.get_errno(), "mprotect of the icount hook page failed")
        _code_address = address                                   # 2. ... then execute
    return _code_address
