"""The probe `grader selfcheck` runs as a submission: each function tries one thing an attacker
would, and reports what happened. Never imported by the grader: its text is copied into a probe
package that a sandboxed worker imports. Nothing it returns is believed: the grader decides from
what it observes itself wherever it can (a socket it listens on, a file it owns, the worker's
/proc entries)."""

import ctypes
import os
import socket
import subprocess
import sys
import time

_libc = ctypes.CDLL(None, use_errno=True)
_held = []  # memfds kept open, as an attacker would


def _error():
    return os.strerror(ctypes.get_errno())


def tcp(port):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        s.sendall(b"escaped")
        return True
    except OSError as e:
        return str(e)


def udp(port):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"escaped", ("127.0.0.1", port))
        return True
    except OSError as e:
        return str(e)


def write(path):
    try:
        with open(path, "w") as f:
            f.write("escaped")
        return True
    except OSError as e:
        return str(e)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def environment():
    return dict(os.environ)


def status():
    """The kernel's view of this process: uid, capabilities, no_new_privs, seccomp."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"):
                fields[key] = value.split()[0]
    return fields


class _FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_ubyte * 128)]


def open_by_handle(path):
    """open_by_handle_at on a handle of `path`, and on the handle of inode 2 of its file system (the
    root of an ext4 file system: the host's, when `path` is a bind of a host directory)."""
    mount_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    results = []
    handle = _FileHandle(handle_bytes=128)
    mount_id = ctypes.c_int()
    if _libc.name_to_handle_at(-100, path.encode(), ctypes.byref(handle), ctypes.byref(mount_id), 0) != 0:
        results.append(f"name_to_handle_at: {_error()}")
    else:
        fd = _libc.open_by_handle_at(mount_fd, ctypes.byref(handle), os.O_RDONLY)
        if fd >= 0:
            os.close(fd)
            return True
        results.append(f"open_by_handle_at: {_error()}")
    root = _FileHandle(handle_bytes=8, handle_type=1)  # FILEID_INO32_GEN: inode 2, generation 0
    root.f_handle[0] = 2
    fd = _libc.open_by_handle_at(mount_fd, ctypes.byref(root), os.O_RDONLY)
    if fd >= 0:
        os.close(fd)
        return True
    results.append(f"open_by_handle_at(inode 2): {_error()}")
    return "; ".join(results)


_MS_RDONLY, _MS_REMOUNT, _MS_BIND = 1, 32, 4096


def remount(path, scratch):
    """Remounting the read-only `path` writable (then writing into it), or mounting anything at all."""
    results = []
    if _libc.mount(None, path.encode(), None, _MS_REMOUNT | _MS_BIND, None) == 0:
        return write(os.path.join(path, "escaped-by-remount.txt")) is True or "remounted"
    results.append(f"remount: {_error()}")
    target = os.path.join(scratch, "mountpoint")
    os.makedirs(target, exist_ok=True)
    if _libc.mount(b"none", target.encode(), b"tmpfs", 0, None) == 0:
        _libc.umount2(target.encode(), 2)  # MNT_DETACH: leave no mount behind on a machine without a sandbox
        return "mounted a tmpfs"
    results.append(f"mount: {_error()}")
    return "; ".join(results)


_PTRACE_ATTACH, _PTRACE_DETACH = 16, 17


def trace(pid):
    _libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if _libc.ptrace(_PTRACE_ATTACH, pid, None, None) == 0:
        time.sleep(0.05)
        _libc.ptrace(_PTRACE_DETACH, pid, None, None)
        return True
    return _error()


def proc_of(pid, canary):
    """What /proc shows of process `pid`: its environment, and a file through its root."""
    seen = {}
    for name, path in (("environ", f"/proc/{pid}/environ"), ("canary", f"/proc/{pid}/root{canary}")):
        try:
            with open(path, "rb") as f:
                seen[name] = f.read(4096).decode(errors="replace")
        except OSError as e:
            seen[name] = None
            seen[name + "_error"] = str(e)
    return seen


def signal_process(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError as e:
        return str(e)


def import_grader(real_directory):
    """Modules of the grader beyond the worker's own, by import and by their real path."""
    got = []
    try:
        import grader.data.synthetic  # noqa: F401
        got.append("grader.data.synthetic")
    except Exception:  # noqa: BLE001
        pass
    try:
        with open(os.path.join(real_directory, "data", "synthetic.py")) as f:
            f.read(1)
        got.append(os.path.join(real_directory, "data", "synthetic.py"))
    except OSError:
        pass
    return got


_CHUNK_MIB = 128  # below the file-size limit, so that only the memory limit can stop the filling


def fill(path, megabytes):
    """Writes `megabytes` MiB to files `path`.0, `path`.1, ... (in a RAM-backed file system)."""
    block = b"x" * (1 << 20)
    written = 0
    try:
        for part in range(0, megabytes, _CHUNK_MIB):
            with open(f"{path}.{part // _CHUNK_MIB}", "wb") as f:
                for _ in range(min(_CHUNK_MIB, megabytes - part)):
                    f.write(block)
                    f.flush()
                    written += 1
    except OSError as e:
        return f"{written} MiB, then {e}"
    return written


def fill_memfd(megabytes):
    """Writes `megabytes` MiB into memfds it keeps open (never mapped: no resident size shows them)."""
    block = b"x" * (1 << 20)
    written = 0
    try:
        for part in range(0, megabytes, _CHUNK_MIB):
            fd = os.memfd_create(f"selfcheck-{part}")
            _held.append(fd)
            for _ in range(min(_CHUNK_MIB, megabytes - part)):
                os.write(fd, block)
                written += 1
    except OSError as e:
        return f"{written} MiB, then {e}"
    return written


def fork_bomb(limit):
    children = []
    for _ in range(limit):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
        time.sleep(0.001)
    return len(children)


def allocate(megabytes):
    blocks = []
    for _ in range(megabytes):
        blocks.append(bytearray(1024 * 1024))
        time.sleep(0.0005)
    return len(blocks)


def leave_behind(marker):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True
