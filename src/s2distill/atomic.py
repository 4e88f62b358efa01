"""The one atomic-write helper: write into a temporary sibling, then rename it onto the destination,
so a reader (or a rerun after a kill) never sees a half-written file or directory."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def remove(path: Path) -> None:
    """Delete a file, a link or a directory tree; nothing there is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


@contextmanager
def staged(dest: str | Path, tmp_name: str | None = None, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``dest`` (nothing exists there yet) to write a file or a directory
    into; when the block ends without an error it is renamed onto ``dest``, otherwise it is removed.

    ``tmp_name``: the temporary file's name (default ``.<name>.<pid>.partial``). ``replace=False``: a
    ``dest`` that appeared meanwhile (another process finished first) is kept and the new copy dropped.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(tmp_name or f".{dest.name}.{os.getpid()}.partial")
    remove(tmp)
    try:
        yield tmp
        if dest.exists() or dest.is_symlink():
            if not replace:
                return
            if dest.is_dir() and not dest.is_symlink() or tmp.is_dir():
                remove(dest)  # os.replace does not put a directory over a directory (or a file over one)
        os.replace(tmp, dest)
    finally:
        remove(tmp)


__all__ = ["remove", "staged"]
