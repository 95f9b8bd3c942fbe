"""Runs a program as if the kernel had no Landlock, for the tests of the sandbox's refusal.

    python tests/no_landlock.py PROGRAM [ARGUMENT...]

A seccomp filter makes Landlock's three system calls fail with ENOSYS, the answer of a kernel built
without them (before 5.13), then the program is executed in this process; the filter holds for it
and for everything it starts. Everything else is allowed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

# landlock_create_ruleset, landlock_add_rule, landlock_restrict_self: new system calls share one
# numbering on every architecture.
LANDLOCK_SYSCALLS = (444, 445, 446)
_LANDLOCK_CREATE_RULESET_VERSION = 1


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers to this process; 0 where it has none."""
    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(LANDLOCK_SYSCALLS[0], None, ctypes.c_size_t(0),
                           ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return max(version, 0)


def hide_landlock() -> None:
    import pyseccomp as seccomp

    syscall_filter = seccomp.SyscallFilter(seccomp.ALLOW)
    for number in LANDLOCK_SYSCALLS:
        syscall_filter.add_rule(seccomp.ERRNO(errno.ENOSYS), number)
    if os.geteuid() == 0:
        # Root may load a filter without no_new_privs; leaving it unset changes nothing else about
        # the programs run, as on a real old kernel.
        syscall_filter.set_attr(seccomp.Attr.CTL_NNP, 0)
    syscall_filter.load()


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: no_landlock.py PROGRAM [ARGUMENT...]")
    hide_landlock()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
