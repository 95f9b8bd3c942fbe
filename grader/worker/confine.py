"""The worker confines itself before it imports any student code.

Three kernel mechanisms, each applied only when the grader asks for it (the grader, not this file,
proves afterwards with `grader selfcheck` that they hold):
- `no_new_privs`: nothing the worker executes can gain a privilege (setuid binaries, file
  capabilities), and it is what an unprivileged process needs before Landlock or seccomp;
- Landlock (Linux >= 5.13): the file system is reduced to the directories the grader names:
  read-only for the system, the Python installation and the worker's own code, read-write for the
  scratch directory only; from its ABI 6 on, signals and abstract UNIX sockets are confined to the
  worker's own processes too. A Landlock domain also forbids ptrace of any process outside it;
- seccomp (through libseccomp): no network socket (only AF_UNIX, for local pipes), none of the
  system calls a sandbox escape starts with (io_uring, which bypasses seccomp's socket rules, user
  namespaces, mounts, ptrace, handles to inodes, keyrings, BPF, kernel modules), no change of
  the CPU cores it was started on, and no SIGKILL (nor another signal the grader reads as sent from
  outside) to itself.

Landlock is called through ctypes here: the Python bindings available cover its file rules only,
not its network rules or scopes, and the whole interface is three system calls and two structures.
seccomp is built with pyseccomp, a ctypes binding of libseccomp with the API of libseccomp's own
Python module, because a BPF program written by hand would have to handle every architecture's
system-call table itself.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from typing import Iterable

_PR_SET_NO_NEW_PRIVS = 38

# System-call numbers of Landlock, the same on every architecture (they come after the unified table).
_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

# Rights on files and directories, with the ABI version that introduced them.
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_REMOVE_DIR, _REMOVE_FILE, _MAKE_CHAR, _MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
_MAKE_REG, _MAKE_SOCK, _MAKE_FIFO, _MAKE_BLOCK, _MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV  # those a rule on a file may hold
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1                             # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1                  # ABI 6

READ = _EXECUTE | _READ_FILE | _READ_DIR
DEVICES = READ | _WRITE_FILE | _IOCTL_DEV | _TRUNCATE
WRITE = -1  # every right the ABI knows


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class ConfinementError(RuntimeError):
    """A confinement the grader asked for could not be applied; the worker stops before any student
    code runs."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def set_no_new_privs() -> None:
    if _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise ConfinementError(f"prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}")


def landlock_abi() -> int:
    """The Landlock ABI version of the running kernel, 0 where it has none (or it is disabled)."""
    if platform.system() != "Linux":
        return 0
    version = _libc().syscall(_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                              ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def apply_landlock(readable: Iterable[str], writable: Iterable[str], devices: Iterable[str],
                   listable: Iterable[str] = ()) -> int:
    """Restricts this process (and all it starts) to reading `readable`, listing `listable` (folders
    whose files are not all readable), using `devices` (read, write, ioctl) and doing anything in
    `writable`; returns the ABI version used."""
    abi = landlock_abi()
    if abi < 1:
        raise ConfinementError("this kernel has no Landlock (Linux >= 5.13 with landlock in its LSM list)")
    handled_fs = _FS_RIGHTS_BY_ABI.get(abi, (1 << 16) - 1)
    attr = _RulesetAttr(handled_access_fs=handled_fs,
                        handled_access_net=(_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0,
                        scoped=(_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    libc = _libc()
    ruleset = libc.syscall(_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise ConfinementError(f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}")
    try:
        for paths, rights in ((readable, READ), (listable, _READ_DIR), (devices, DEVICES), (writable, handled_fs)):
            for path in paths:
                _allow(libc, ruleset, path, rights & handled_fs)
        set_no_new_privs()
        if libc.syscall(_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise ConfinementError(f"landlock_restrict_self failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)
    return abi


def _allow(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path this machine does not have (e.g. /lib32) needs no rule
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
        rule = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        if libc.syscall(_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                        ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            raise ConfinementError(f"landlock_add_rule({path}) failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


# System calls that no honest submission needs and that sandbox escapes start with. Each fails with
# EPERM, so code that probes for them sees an ordinary error.
_DENIED_SYSCALLS = (
    "io_uring_setup", "io_uring_enter", "io_uring_register",   # would bypass the socket rules below
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsmount", "fsconfig", "fspick", "mount_setattr",
    "open_by_handle_at", "name_to_handle_at",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "swapon", "swapoff", "reboot", "acct", "quotactl", "sethostname", "setdomainname",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "syslog", "vhangup",
    # A training is pinned to cores no other training of the grader uses (grader.batch.local): the
    # worker may not move itself onto the cores the checks or another training run on.
    "sched_setaffinity",
)
_AF_UNIX = 1
_CLONE_NEWUSER = 0x10000000
# The signals the grader reads as sent from outside the worker (an operator, the out-of-memory
# killer: grader.sandbox.worker_process), after which it grades again and blames no one. The worker
# may not send them to itself or its process group, nor make the kernel send one (a CPU-time limit
# lowered below its use), so that a submission cannot pass off its own exit as the machine's fault
# and buy a second try. Its own children it may still stop (a data loader's workers).
_OUTSIDE_SIGNALS = (9, 15, 2, 1, 3)   # SIGKILL, SIGTERM, SIGINT, SIGHUP, SIGQUIT
_RLIMIT_CPU = 0
_LOW_32_BITS = 0xFFFFFFFF


def _deny_signals_to_itself(seccomp, rules, pid: int, group: int) -> None:
    """pid and group as the worker sees them (its PID namespace's numbers)."""
    def target(argument: int, value: int):
        # pid_t is 32 bits: compare those, whatever the register's upper half holds.
        return seccomp.Arg(argument, seccomp.MASKED_EQ, _LOW_32_BITS, value & _LOW_32_BITS)

    denied = seccomp.ERRNO(errno.EPERM)
    for signal_number in _OUTSIDE_SIGNALS:
        for whom in sorted({pid, -group, 0, -1}):   # itself, its group, its own group, all it may signal
            rules.add_rule(denied, "kill", target(0, whom), seccomp.Arg(1, seccomp.EQ, signal_number))
        rules.add_rule(denied, "tkill", target(0, pid), seccomp.Arg(1, seccomp.EQ, signal_number))
        rules.add_rule(denied, "tgkill", target(0, pid), seccomp.Arg(2, seccomp.EQ, signal_number))
        rules.add_rule(denied, "rt_sigqueueinfo", target(0, pid), seccomp.Arg(1, seccomp.EQ, signal_number))
        rules.add_rule(denied, "rt_tgsigqueueinfo", target(0, pid), seccomp.Arg(2, seccomp.EQ, signal_number))
        # A pidfd may be the worker's own, which the filter cannot tell.
        rules.add_rule(denied, "pidfd_send_signal", seccomp.Arg(1, seccomp.EQ, signal_number))
    rules.add_rule(denied, "setrlimit", seccomp.Arg(0, seccomp.EQ, _RLIMIT_CPU))
    rules.add_rule(denied, "prlimit64", seccomp.Arg(1, seccomp.EQ, _RLIMIT_CPU), seccomp.Arg(2, seccomp.NE, 0))


def apply_seccomp() -> None:
    """No socket but AF_UNIX, no user namespace, none of `_DENIED_SYSCALLS` (among them moving to
    other CPU cores), no signal the grader reads as sent from outside to the worker itself."""
    try:
        import pyseccomp as seccomp
    except ImportError as exc:  # the grader checks this before it asks
        raise ConfinementError(f"pyseccomp is not installed ({exc})") from None
    try:
        rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        rules.add_rule(seccomp.ERRNO(errno.EACCES), "socket", seccomp.Arg(0, seccomp.NE, _AF_UNIX))
        rules.add_rule(seccomp.ERRNO(errno.EACCES), "socketpair", seccomp.Arg(0, seccomp.NE, _AF_UNIX))
        # clone with CLONE_NEWUSER makes a user namespace; clone3 passes its flags in memory that a
        # filter cannot read, so it answers ENOSYS and the C library falls back to clone.
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone",
                       seccomp.Arg(0, seccomp.MASKED_EQ, _CLONE_NEWUSER, _CLONE_NEWUSER))
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        for name in _DENIED_SYSCALLS:
            try:
                rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
            except (ValueError, RuntimeError, OSError):
                pass  # a system call this architecture does not have
        _deny_signals_to_itself(seccomp, rules, os.getpid(), os.getpgrp())
        rules.load()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfinementError(f"the seccomp filter could not be loaded: {exc}") from None


def confine(settings: dict) -> None:
    """Applies what `settings["confine"]` asks for; raises ConfinementError if any part fails."""
    asked = settings.get("confine") or {}
    if asked.get("no_new_privs"):
        set_no_new_privs()
    if asked.get("seccomp"):
        apply_seccomp()
    landlock = asked.get("landlock")
    if landlock:
        apply_landlock(landlock["readable"], landlock["writable"], landlock["devices"], landlock.get("listable", ()))
