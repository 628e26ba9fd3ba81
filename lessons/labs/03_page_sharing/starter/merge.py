"""Lab 3: the merge step of the page-sharing scanner."""


def merge(sharing, acct, gfn, hfn, shared):
    """Make guest frame ``gfn`` of the VM ``acct`` use the shared host frame ``shared``
    instead of its private frame ``hfn`` (both hold the same bytes)."""
    memory = acct.memory
    memory.table[gfn] = shared          # a start: the guest now reads the shared frame...
    # TODO: ...but it must not be able to write it directly,
    # TODO: the shared frame has one more user,
    # TODO: the vCPUs may still have the old translation cached,
    # TODO: and nobody uses hfn any more.
