"""Files through fsspec: open, read, write, move and hash local paths and bucket URLs alike.

Writes are atomic where it matters (`write_bytes_atomic`, `move_once`); readers that count or hash
the bytes they pass on (`CountingReader`, `HashingReader`) serve checksums and error offsets.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid

import fsspec
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from wikisnap.transforms.formats.offload import Offload


def fs_for(path: str):
    """`(filesystem, path within it)` for a local path or URL."""
    return fsspec.core.url_to_fs(path)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def makedirs(path: str) -> None:
    fs, p = fs_for(path)
    fs.makedirs(p, exist_ok=True)


def open_write(path: str):
    """Open `path` for binary writing, creating parent folders.

    An OSError while writing or closing names `path`: a full disk must say which file and disk.
    """
    fs, p = fs_for(path)
    parent = p.rsplit("/", 1)[0]
    try:
        if parent and parent != p:
            fs.makedirs(parent, exist_ok=True)
        return _NamedWriter(fs.open(p, "wb"), path)
    except OSError as exc:
        raise _named(exc, path) from None


def _named(exc: OSError, path: str) -> OSError:
    if exc.filename or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, path)


class _NamedWriter:
    """A writable file whose OSErrors carry its path (fsspec's local files leave it out)."""

    def __init__(self, f, path: str):
        self._f = f
        self.path = path

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as exc:
            raise _named(exc, self.path) from None

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as exc:
            raise _named(exc, self.path) from None

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_read(path: str):
    fs, p = fs_for(path)
    return fs.open(p, "rb")


def local_path(path: str) -> str | None:
    """The OS path of a local file (plain or `file://`), None for any other filesystem."""
    try:
        fs, fs_path = fsspec.core.url_to_fs(path)
    except (ValueError, ImportError):
        return None
    return fs_path if isinstance(fs, LocalFileSystem) else None


def open_read_arrow(path: str):
    """`open_read` for Arrow's readers (Parquet): a local file is opened by Arrow itself.

    On a Python file object Arrow calls back into Python, taking the GIL, for every read, so a
    shard read beside a busy thread (an update's md5 of its base, a touched member's line pass)
    queues behind it; Arrow's own file needs no GIL. Other filesystems go through fsspec.
    """
    local = local_path(path)
    return pa.OSFile(local, "rb") if local is not None else open_read(path)


def remove_tree(path: str) -> None:
    fs, p = fs_for(path)
    if fs.exists(p):
        fs.rm(p, recursive=True)


def remove_files(paths) -> None:
    """Remove files that are no longer needed (temp runs a step consumed); absent ones are fine."""
    for path in paths:
        fs, p = fs_for(path)
        try:
            fs.rm_file(p)
        except FileNotFoundError:
            pass


def remove_empty_dir(path: str) -> None:
    """Remove folder `path` if it exists and is empty (a shared temp root other runs may use)."""
    fs, p = fs_for(path)
    try:
        if fs.exists(p) and not fs.ls(p):
            fs.rmdir(p)
    except OSError:
        pass


def move(src: str, dst: str) -> None:
    fs, s = fs_for(src)
    _, d = fs_for(dst)
    parent = d.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    fs.mv(s, d)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write `path` through a uniquely named sibling and a rename, so a reader (or a retried or
    duplicate attempt writing the same file) never sees a half-written file."""
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.partial"
    write_bytes(tmp, data)
    move(tmp, path)


class ProgressFile:
    """A worker's numbers for the launcher's progress lines and ETA: one small JSON file rewritten
    whole (`write_bytes_atomic`: the launcher may read while a retried attempt rewrites) at most
    every `every` seconds and once at the end. Best effort: a file that cannot be written (a remote
    temp folder the worker cannot reach…) never fails the work it reports on. `path` None: no file.
    """

    def __init__(self, path: str | None, every: float):
        self.path = path
        self.every = every
        self.last = time.monotonic()

    def due(self, final: bool = False) -> bool:
        """Whether to report now (always when `final`); starts the next interval when it is."""
        now = time.monotonic()
        if not final and now - self.last < self.every:
            return False
        self.last = now
        return True

    def write(self, state: dict) -> None:
        """Leave `state` in the file (nothing without a path; errors swallowed, see above)."""
        if self.path is None:
            return
        try:
            write_bytes_atomic(self.path, json.dumps(state).encode())
        except OSError:
            pass


def move_once(src: str, dst: str) -> None:
    """Move `src` to `dst`; a retry that finds `src` gone and `dst` there finds the move done."""
    fs, s = fs_for(src)
    if fs.exists(s):
        move(src, dst)
        return
    _, d = fs_for(dst)
    if not fs.exists(d):
        raise FileNotFoundError(f"{src}: missing, and {dst} was not moved there by an earlier attempt")


class CountingReader(io.RawIOBase):
    """Counts the raw bytes read through it (offsets for error messages, sizes for checks)."""

    def __init__(self, raw):
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self.count += n
            self._seen(data)
        return n

    def _seen(self, data: bytes) -> None:
        """What a subclass does with the bytes as they pass (nothing here)."""

    def drain(self) -> None:
        """Read to the end (so counts and hashes cover the whole file)."""
        while self.read(1 << 20):  # 4 MB reads took fresh pages each time (system time)
            pass

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class HashingReader(CountingReader):
    """Counts and hashes (md5, and sha1 unless told not to) the bytes as they stream past: one pass.

    `beside=True` hashes on a helper thread (`Offload`, in read order) while the reader's thread
    works on the bytes, e.g. inflating them: a read-back's md5 then costs no time of its own.
    `md5` and `sha1` wait for the hashing to catch up.
    """

    def __init__(self, raw, sha1: bool = True, beside: bool = False):
        super().__init__(raw)
        self._md5 = hashlib.md5()
        self._sha1 = hashlib.sha1() if sha1 else None
        self._beside = Offload("hash", depth=4) if beside else None

    def _seen(self, data: bytes) -> None:
        if self._beside is None:
            self._hash(data)
        else:
            self._beside.submit(self._hash, data)  # bytes: nothing can change them meanwhile

    def _hash(self, data: bytes) -> None:
        self._md5.update(data)  # hashlib releases the GIL for pieces this size
        if self._sha1 is not None:
            self._sha1.update(data)

    def _caught_up(self) -> None:
        if self._beside is not None:
            self._beside.wait()

    @property
    def md5(self):
        self._caught_up()
        return self._md5

    @property
    def sha1(self):
        self._caught_up()
        return self._sha1

    def close(self) -> None:
        try:
            if self._beside is not None:
                self._beside.close()
        finally:
            super().close()


def file_digests(path: str, sha1: bool = False) -> tuple[str, str | None, int]:
    """(md5, sha1 or None, bytes) of a local file or URL, in one read."""
    with HashingReader(open_read(path), sha1=sha1) as reader:
        reader.drain()
    return reader.md5.hexdigest(), reader.sha1.hexdigest() if sha1 else None, reader.count


def file_size(path: str) -> int:
    """The bytes of the file at `path` on its storage."""
    fs, p = fs_for(path)
    return fs.size(p)


def file_md5(path: str) -> tuple[str, int]:
    md5, _sha1, size = file_digests(path)
    return md5, size


def write_bytes(path: str, data: bytes) -> None:
    with open_write(path) as out:
        out.write(data)


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()
