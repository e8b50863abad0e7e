"""NDJSON lines of a (gzip'd) tarball, read as a stream, with truncation told apart from the end.

Python's `tarfile` in stream mode ends quietly when the data stops exactly between two members
(no end-of-archive blocks): a tarball cut at a gzip member boundary would look complete. The
readers here count the bytes tarfile consumed and raise `TarCutOff` when the two zero blocks
that close every tar archive never came. Callers (diff and base readers) turn any error into a
message naming their file, the member being read and the byte offset of the raw file.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

from wikisnap.transforms.files import CountingReader


class TarCutOff(ValueError):
    """The tar stream ended without its end-of-archive blocks: the file is truncated."""


class TarLines:
    """Iterate the lines of every regular member of the tar stream `stream` (decompressed bytes).

    `member` names the member being read (None before the first), for error messages. Raises
    tarfile/zlib/EOF errors as they come and `TarCutOff` when the archive has no end blocks.
    """

    def __init__(self, stream):
        self._stream = CountingReader(stream)
        self.member: str | None = None
        self.lines = 0

    def __iter__(self) -> Iterator[bytes]:
        with tarfile.open(fileobj=self._stream, mode="r|") as tar:
            for info in tar:
                self.member = info.name
                if not info.isfile():
                    continue
                data = tar.extractfile(info)
                if data is None:
                    continue
                for line in io.BufferedReader(data):
                    self.lines += 1
                    yield line
            # tarfile stopped: on the zero block that ends an archive (read past `tar.offset`),
            # or because the data ended right at a header position (a file cut between members).
            if self._stream.count < tar.offset + tarfile.BLOCKSIZE:
                self.member = None
                raise TarCutOff(f"no end-of-archive block after member {info_name(tar)}: the tarball is cut off")


def info_name(tar: tarfile.TarFile) -> str:
    last = tar.members[-1].name if tar.members else None
    return repr(last) if last else "(none)"
