"""Nothing read or written through a run directory may resolve outside it: a link that leads out of the
directory (file or folder, dangling or not) is refused, naming it, before a command reads or writes
anything. Links that stay inside the directory are allowed."""

from __future__ import annotations

import os
from pathlib import Path

from nasrun.errors import RunDirError


def within(path: str, root: str) -> bool:
    """Whether the (resolved) `path` is `root` or lies under it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def link_out(root: str | Path) -> tuple[Path, str] | None:
    """The first link under `root` (in sorted order, folders followed only when they are not links)
    that resolves outside `root`, with where it leads; None when there is none."""
    real_root = os.path.realpath(root)
    folders = [str(root)]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:  # an unreadable folder: reading a file in it reports that
            continue
        for entry in entries:
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if not within(target, real_root):
                    return Path(entry.path), target
            elif entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
    return None


def check_links(root: str | Path, what: str = "run directory") -> None:
    """Refuse `root` when a link in it leads outside it (RunDirError naming the link)."""
    found = link_out(root)
    if found is not None:
        link, target = found
        raise RunDirError(f"{link} is a link to {target}, outside the {what} {root}; nasrun reads and writes "
                          f"nothing outside a {what} (replace the link by a copy of what it points to)")
