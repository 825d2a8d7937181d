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


def usable_cpus(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """The cores this process may use: those it may run on (``taskset``, a cpuset),
    fewer when a cgroup's CPU quota allows less (a container given 2 CPUs on a 64-core
    host, where ``os.cpu_count()`` says 64; ``cpu_max``: the cgroup v2 file that says
    so); at least 1."""
    import math
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:  # cgroup v2: "<quota> <period>" in µs, or "max <period>" without a quota
        with open(cpu_max, encoding="ascii") as limit:
            quota, period = limit.read().split()[:2]
        if quota != "max" and float(period) > 0:
            cores = min(cores, math.ceil(float(quota) / float(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)
