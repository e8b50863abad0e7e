"""Where `wikisnap publish` puts files: one small interface, three transports.

    dest = destination_for("rsync://mirror:873/module/enterprise")   # or a path, or any fsspec URL
    dest.put(local_file, "runs/20241101/x.tar.gz")   # copy one file in (parents made as needed)
    dest.same(local_file, "runs/…", md5)              # already there with these bytes? (resume)
    dest.write_bytes("runs/…/dumpstatus.json", data)  # small files, each appearing whole
    dest.listdir("runs"), dest.delete_tree("runs/20240101"), dest.point_latest("runs/20241101")

Publishing is orchestration, not a pipeline (see STYLE): no Beam here. FsspecDestination covers
local folders and every fsspec URL (`file://`, `s3://`, `gs://`, `memory://` …); RsyncDestination
feeds an rsync daemon through the real `rsync` client, the way Wikimedia's mirrors are fed.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import tempfile

from wikisnap.pipelines.errors import EXIT_ENVIRONMENT, WikisnapError
from wikisnap.transforms.formats.fs import file_md5, fs_for
from wikisnap.transforms.formats.layout import scratch_prefix


class DestinationError(WikisnapError):
    """A destination that cannot be reached or written; the message names it (exit 1: run again).

    `explained`: the message already says what to do (a lasting error, or whether to run again).
    """

    exit_code = EXIT_ENVIRONMENT

    def __init__(self, message: str, explained: bool = False):
        super().__init__(message)
        self.explained = explained


class FsspecDestination:
    """A local folder or any fsspec URL. Locally, `latest` is also a relative symlink."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, root = fs_for(self.url)
        self.root = root.rstrip("/") or root
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.local = protocol in ("file", "local")

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def put(self, local: str, rel: str) -> None:
        """Copy a local file to `rel`; locally through a temp name and a rename, so it appears whole."""
        path = self._path(rel)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        if self.local:
            temp = f"{path}.partial"
            shutil.copyfile(local, temp)
            os.replace(temp, path)
        else:
            self.fs.put_file(local, path)

    def write_bytes(self, rel: str, data: bytes) -> None:
        path = self._path(rel)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        if self.local:
            temp = f"{path}.partial"
            with open(temp, "wb") as f:
                f.write(data)
            os.replace(temp, path)
        else:
            self.fs.pipe_file(path, data)

    def read_bytes(self, rel: str) -> bytes | None:
        path = self._path(rel)
        return self.fs.cat_file(path) if self.fs.exists(path) else None

    def same(self, local: str, rel: str, md5: str) -> bool:
        """True when `rel` exists with the size of `local` and md5 `md5` (its bytes are read)."""
        path = self._path(rel)
        if not self.fs.exists(path) or self.fs.size(path) != os.path.getsize(local):
            return False
        return file_md5(f"{self.url}/{rel}")[0] == md5

    def listdir(self, rel: str) -> list[str]:
        path = self._path(rel)
        if not self.fs.exists(path):
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(path, detail=False))

    def delete_tree(self, rel: str) -> None:
        path = self._path(rel)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def point_latest(self, target: str) -> None:
        """`latest.txt` names the newest complete run; locally `latest` is also a symlink to it."""
        self.write_bytes("latest.txt", (target + "\n").encode("utf-8"))
        if self.local:
            link = self._path("latest")
            temp = f"{link}.partial"
            if os.path.lexists(temp):
                os.unlink(temp)
            os.symlink(target, temp)
            os.replace(temp, link)  # atomic: readers follow the old run or the new one


_RSYNC_URL = re.compile(r"^rsync://(?P<host>[^/:]+)(:(?P<port>\d+))?/(?P<module>[^/]+)(?P<path>/.*)?$")


class RsyncDestination:
    """An rsync daemon module, written with the `rsync` client (`rsync://host[:port]/module/path`).

    An rsync daemon cannot rename or report an md5, so: each file is sent with `--checksum`
    (rsync compares whole-file checksums and skips files already there) and `--delay-updates`
    (a file appears whole, under its name, only once received); small files go the same way from
    a temp copy; `latest` is a symlink sent with `--links`, beside `latest.txt`.
    """

    def __init__(self, url: str):
        match = _RSYNC_URL.match(url.rstrip("/"))
        if not match:
            raise DestinationError(f"{url}: not an rsync URL (rsync://host[:port]/module[/path])")
        if shutil.which("rsync") is None:
            raise DestinationError(f"{url}: the rsync client is not installed (apt-get install rsync)")
        self.url = url.rstrip("/")
        self.base = f"rsync://{match['host']}{':' + match['port'] if match['port'] else ''}/{match['module']}"
        self.prefix = (match["path"] or "").strip("/")
        self.sent: list[str] = []  # files rsync actually transferred, for the resume report

    def _remote(self, rel: str) -> str:
        return "/".join(p for p in (self.base, self.prefix, rel) if p)

    def _rsync(self, *args: str) -> str:
        command = ["rsync", "--timeout=60", "--contimeout=10", *args]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise DestinationError(f"{self.url}: rsync failed ({done.returncode}): {done.stderr.strip()[-400:]}")
        return done.stdout

    def put(self, local: str, rel: str) -> None:
        out = self._rsync(
            "--checksum", "--times", "--mkpath", "--delay-updates", "--itemize-changes", local, self._remote(rel)
        )
        if any(line.startswith("<f") for line in out.splitlines()):
            self.sent.append(rel)

    def write_bytes(self, rel: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix=scratch_prefix("rsync")) as tmp:
            path = os.path.join(tmp, posixpath.basename(rel))
            with open(path, "wb") as f:
                f.write(data)
            self.put(path, rel)

    def read_bytes(self, rel: str) -> bytes | None:
        with tempfile.TemporaryDirectory(prefix=scratch_prefix("rsync")) as tmp:
            path = os.path.join(tmp, "file")
            done = subprocess.run(["rsync", "--timeout=60", self._remote(rel), path], capture_output=True)
            if done.returncode != 0:
                return None
            with open(path, "rb") as f:
                return f.read()

    def same(self, local: str, rel: str, md5: str) -> bool:
        """rsync decides on its own (`--checksum` in put); a dry run says whether it would send."""
        out = subprocess.run(
            ["rsync", "--timeout=60", "--checksum", "--dry-run", "--itemize-changes", local, self._remote(rel)],
            capture_output=True,
            text=True,
        )
        return out.returncode == 0 and not any(line.startswith("<f") for line in out.stdout.splitlines())

    def listdir(self, rel: str) -> list[str]:
        done = subprocess.run(
            ["rsync", "--timeout=60", "--list-only", self._remote(rel) + "/"], capture_output=True, text=True
        )
        if done.returncode != 0:
            return []
        names = [line.split(None, 4)[-1] for line in done.stdout.splitlines() if line.strip()]
        return sorted(n for n in names if n != ".")

    def delete_tree(self, rel: str) -> None:
        """rsync deletes only by mirroring: an empty folder over the parent, filtered to `rel`."""
        parent, name = posixpath.split(rel)
        with tempfile.TemporaryDirectory(prefix=scratch_prefix("rsync")) as empty:
            self._rsync(
                "--recursive",
                "--delete",
                f"--include=/{name}/***",
                "--exclude=*",
                empty + "/",
                self._remote(parent) + "/",
            )

    def point_latest(self, target: str) -> None:
        self.write_bytes("latest.txt", (target + "\n").encode("utf-8"))
        with tempfile.TemporaryDirectory(prefix=scratch_prefix("rsync")) as tmp:
            os.symlink(target, os.path.join(tmp, "latest"))
            # Sent as the content of a folder: naming …/latest as the target would copy *into* the
            # run it points at, since the receiver follows an existing symlink to a folder.
            self._rsync("--dirs", "--links", "--delay-updates", tmp + "/", self._remote("") + "/")


def destination_for(url: str) -> FsspecDestination | RsyncDestination:
    if url.startswith("rsync://"):
        return RsyncDestination(url)
    return FsspecDestination(url)
