"""Lab 3 reference solution: the merge step of the page-sharing scanner."""


def merge(sharing, acct, gfn, hfn, shared):
    """Make guest frame ``gfn`` of the VM ``acct`` use the shared host frame ``shared``
    instead of its private frame ``hfn`` (both hold the same bytes)."""
    mm = sharing.mm
    memory = acct.memory
    memory.table[gfn] = shared
    memory.writable[gfn] = False        # a write faults: copy-on-write gives a private copy
    mm.pool.refcount[shared] += 1       # one more guest frame maps it
    mm.invalidate(acct)                 # no vCPU keeps the old translation
    mm.release(hfn)                     # our copy goes back to the host
