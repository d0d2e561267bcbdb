"""Bounded reads of a run directory's files: only regular files (never a device, a FIFO or a socket, which
could hang or never end), each kind of file under a size cap, and YAML without aliases (a config nasrun
saved never has one, and nested aliases expand exponentially). Every problem is one CheckpointError line
naming the file."""

from __future__ import annotations

import json
import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from nasrun.errors import CheckpointError

MiB = 1 << 20
# The most nasrun reads of one file of each kind (far above what a run writes: a config is a few KiB,
# a JSON file at most some MiB, a trial a few hundred bytes). OmegaConf builds a config at about
# 30 KiB/s, so a config's cap also bounds the time it takes.
LIMITS = {"config": 256 << 10, "json": 64 * MiB, "jsonl": 1024 * MiB, "checkpoint": 8192 * MiB}
MAX_YAML_DEPTH = 100


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} bytes"


@contextmanager
def open_bounded(path: str | Path, kind: str, what: str = "file") -> Iterator[BinaryIO]:
    """`path` opened for reading, once it is known to be a regular file within the size cap of `kind`.
    A missing file raises FileNotFoundError (the caller knows whether that is an error)."""
    limit = LIMITS[kind]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block the open
    except FileNotFoundError:
        raise
    except OSError as err:
        raise CheckpointError(f"{what} {path} cannot be read ({err.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(f"{what} {path} is not a regular file; nasrun reads only plain files")
        if info.st_size > limit:
            raise CheckpointError(f"{what} {path} is {_size(info.st_size)}, over the {_size(limit)} that nasrun "
                                  f"reads from a {kind} file")
        yield handle


def read_bytes(path: str | Path, kind: str, what: str = "file") -> bytes:
    """The whole file, read in chunks (never a buffer of the cap's size), up to the cap of `kind`."""
    data = bytearray()
    with open_bounded(path, kind, what) as handle:
        while chunk := handle.read(MiB):
            data += chunk
            if len(data) > LIMITS[kind]:  # it grew while being read
                raise CheckpointError(f"{what} {path} is over the {_size(LIMITS[kind])} that nasrun reads from "
                                      f"a {kind} file")
    return bytes(data)


def read_text(path: str | Path, kind: str, what: str = "file") -> str:
    data = read_bytes(path, kind, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{what} {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def corrupt(path: str | Path, what: str, err: BaseException) -> CheckpointError:
    if isinstance(err, RecursionError):
        return CheckpointError(f"{what} {path} nests too deeply to be read")
    detail = str(err).splitlines()[0][:120] if str(err) else ""
    return CheckpointError(f"{what} {path} is corrupt or truncated ({type(err).__name__}: {detail})")


def read_json(path: str | Path, what: str = "file") -> Any:
    """A JSON file, or a one-line CheckpointError naming it when it is missing, too big or corrupt."""
    try:
        text = read_text(path, "json", what)
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} not found") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise corrupt(path, what, err) from None


def read_json_object(path: str | Path, what: str = "file", keys: tuple[str, ...] = ()) -> dict:
    """A JSON file holding an object with (at least) `keys`; anything else is a one-line CheckpointError."""
    record = read_json(path, what)
    if not isinstance(record, dict) or not set(keys) <= set(record):
        needs = f" with {', '.join(keys)}" if keys else ""
        raise CheckpointError(f"{what} {path} is not a JSON object{needs}: not a nasrun {what}")
    return record


def flow_depth(text: str) -> int:
    """The deepest nesting of brackets and braces in `text` (quoting ignored: an upper bound)."""
    depth = deepest = 0
    for bracket in re.sub(r"[^\[\]{}]", "", text):
        depth = depth + 1 if bracket in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """A YAML file read as an OmegaConf config; aliases, tags that build objects, excessive nesting and
    files over the config cap are refused (CheckpointError)."""
    import yaml
    from omegaconf import OmegaConf

    try:
        text = read_text(path, "config", what)
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} not found") from None
    depth = flow_depth(text)
    if depth > MAX_YAML_DEPTH:  # PyYAML's parser takes minutes on a few thousand nested brackets
        raise CheckpointError(f"{what} {path} nests {depth} levels of [ ] or {{ }}, more than the "
                              f"{MAX_YAML_DEPTH} nasrun reads (a config it saves has a few)")
    try:
        events = yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if any(isinstance(event, yaml.AliasEvent) for event in events):
            raise CheckpointError(f"{what} {path} uses YAML aliases (*name), which nasrun does not expand in a "
                                  "file it reads from a run directory (a config it saves has none)")
        return OmegaConf.create(text)
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - YAML syntax, nesting past the recursion limit, OmegaConf's errors
        raise corrupt(path, what, err) from None
