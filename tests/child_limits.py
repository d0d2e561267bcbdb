"""Limits a test puts on a CLI process before the command runs (conftest.run_cli(limits=...), applied in
the forked child of tests/cli_zygote.py or before a fresh script starts):

    cpu_seconds   RLIMIT_CPU: a command that would hang is killed (SIGXCPU) instead
    memory_mb     RLIMIT_AS: address space beyond what the process has already mapped (torch maps a lot)
    file_size     RLIMIT_FSIZE: no file may grow past this many bytes (a full disk, for the writer: EFBIG;
                  Python ignores SIGXFSZ)
    read_only     folders the process sees read-only: its own user and mount namespace with read-only bind
                  mounts (for root, whom file modes do not stop); the tests chmod instead when not root
"""

from __future__ import annotations

import ctypes
import os
import resource

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18


def mapped_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def apply(limits: dict) -> None:
    if "read_only" in limits:
        read_only(limits["read_only"])
    if "cpu_seconds" in limits:
        resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"]))
    if "memory_mb" in limits:
        ceiling = mapped_bytes() + limits["memory_mb"] * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
    if "file_size" in limits:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_size"], limits["file_size"]))


def _check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), f"{what} failed")


def read_only(paths: list[str]) -> None:
    """See `paths` read-only from now on (this process and its children only). Needs one thread."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")
    for path in paths:
        raw = os.fsencode(path)
        _check(libc.mount(raw, raw, None, MS_BIND | MS_REC, None), f"bind-mounting {path}")
        _check(libc.mount(None, raw, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None), f"remounting {path} read-only")
