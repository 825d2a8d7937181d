"""Operating-system limits that bound what a run may do at once, the largest seed and
the longest request timeout."""

from __future__ import annotations

#: The largest seed: a 64-bit signed integer, as the run's tables store it.
MAX_SEED = 2**63 - 1

#: The most tax years a run may hold (``--years``).
MAX_YEARS = 10_000

#: The longest a model request may take once sent, in seconds (``--timeout``).
MAX_TIMEOUT_S = 3600.0

#: File descriptors kept free for everything that is not a model request: the run
#: log, the Python runtime, imported libraries, the response cache, stdio.
RESERVED_FILES = 64

#: File descriptors one request in flight may hold (a socket, plus one spare for a
#: connection being replaced or a DNS lookup).
FILES_PER_REQUEST = 2

#: The cap when the limit is unknown (no ``resource`` module, e.g. on Windows).
UNKNOWN_LIMIT_CAP = 256

#: Treated as the open-file limit when the soft limit is "unlimited" (Linux's
#: default ``fs.nr_open``: the kernel refuses more descriptors per process anyway).
UNLIMITED_FILES = 1_048_576


def max_safe_concurrency() -> int:
    """Most requests in flight that stay below the process's open-file limit.

    ``(soft limit of RLIMIT_NOFILE - RESERVED_FILES) // FILES_PER_REQUEST``, at
    least 1. A soft limit of 1 024 (the usual default) gives 480.
    """
    try:
        import resource
    except ImportError:  # not a POSIX system
        return UNKNOWN_LIMIT_CAP
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return UNKNOWN_LIMIT_CAP
    if soft == resource.RLIM_INFINITY or soft < 0:
        soft = UNLIMITED_FILES
    return max(1, (int(soft) - RESERVED_FILES) // FILES_PER_REQUEST)
