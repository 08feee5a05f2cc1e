"""What one `prepare` call created, so a failure halfway can take exactly that back.

Storage never leaves half a VMI's disks behind (DESIGN.md §7): each call keeps a `Journal` of
the files and directories it created, and on any failure removes them, newest first. Only
creations are recorded, never reuse, so a failing second call cannot touch what an earlier
successful call made.

Files are staged: written under a `.<name>.partial` sibling and renamed into place, so a file
at its final path is always complete (a crash mid-write leaves only the partial, which the next
attempt overwrites). That is what lets `prepare` trust an existing file and reuse it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from kvd import logs


class Journal:
    """Paths created by one call, in creation order. `new_directory` sets up (owner, mode) each
    directory `make_dirs` creates."""

    def __init__(self, new_directory: Callable[[Path], None] = lambda _: None) -> None:
        self._order: list[tuple[bool, Path]] = []  # (is_dir, path)
        self._new_directory = new_directory

    @property
    def created(self) -> tuple[Path, ...]:
        return tuple(path for _, path in self._order)

    def created_file(self, path: Path) -> None:
        self._order.append((False, path))

    def make_dirs(self, path: Path) -> None:
        """`mkdir -p`, recording each level this call created (and only those)."""
        missing: list[Path] = []
        for level in (path, *path.parents):
            if level.is_dir():
                break
            missing.append(level)
        for level in reversed(missing):
            try:
                level.mkdir()
            except FileExistsError:
                if not level.is_dir():
                    raise
                continue  # made concurrently by someone else: not ours to remove
            self._order.append((True, level))
            self._new_directory(level)

    @contextlib.contextmanager
    def staged(self, target: Path) -> Iterator[Path]:
        """Yield a partial path to write; on success rename it to `target` and record it.

        A target that already existed is replaced but not recorded: it was not created here.
        """
        partial = target.with_name(f".{target.name}.partial")
        try:
            yield partial
            existed = target.exists()
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if not existed:
            self.created_file(target)

    def rollback(self) -> None:
        """Remove what was created, newest first; directories only while empty.

        Best effort: a path that is already gone is fine, and a directory someone else has put
        files into is left alone rather than emptied.
        """
        for is_dir, path in reversed(self._order):
            try:
                if is_dir:
                    path.rmdir()
                else:
                    path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                # Rollback runs while another error propagates; that error is the one to raise,
                # but an orphan must still be visible to whoever reads the logs.
                if exc.errno != errno.ENOTEMPTY:
                    logs.get_logger(__name__).warning(
                        "storage_rollback_failed", path=str(path), error=str(exc)
                    )
        self._order.clear()
