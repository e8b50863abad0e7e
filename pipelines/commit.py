"""The output folder's commit protocol: check, lock, stage, verify, publish — manifest last.

Every wikisnap job that writes into `--out` goes through an `OutputFolder`:

    folder = OutputFolder.open(out, command="build", base=None)   # checks, lock, recovery
    ... the Beam job writes every output under folder.staging ...
    folder.publish(manifest, files)    # verified files moved into place, manifest written last
    folder.close()                     # lock released (also on failure)

Layout of the control folder, which readers ignore:

    OUT/.wikisnap/lock                 who holds the folder (JSON), flock'ed while a run lives
    OUT/.wikisnap/staging/{run}/       the run's outputs, same relative paths as in OUT
    OUT/.wikisnap/tmp/{run}/           spill runs and member parts (default temp location)
    OUT/.wikisnap/commit.json          the publish journal: present only while files move

A reader that finds `OUT/manifest.json` finds exactly the files it lists, with those sizes and
md5s. Publishing is: write the journal (the commit point), remove the old manifest, move the
staged files into place, remove the previous run's files the new manifest does not list, write
the manifest atomically, drop the journal. A run killed before the journal leaves OUT's files as
they were; one killed after it is rolled forward by the next run on that folder (which logs it).

Why a control folder inside OUT and not beside it: staging must sit on OUT's filesystem so that
publishing is a rename, and OUT may be a mount point or a bucket prefix with no writable parent.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import logging
import os
import posixpath
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field

from wikisnap import faults
from wikisnap.pipelines.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_LOCKED, WikisnapError  # noqa: F401 - the exit codes' old home
from wikisnap.transforms.formats.fs import fs_for
from wikisnap.transforms.formats.layout import (
    CONTROL,
    JOURNAL,
    LEFTOVER_AREAS,
    LOCK,
    MANIFEST,
    OWNED_FILE,
    OWNED_FOLDERS,
    PREVIOUS,
    RUN_AREAS,
    STAGING,
    TMP,
    PathEscape,
    control_path,
    scratch_owner,
    scratch_prefix,
    within,
)

log = logging.getLogger("wikisnap")

# What wikisnap owns inside OUT (layout.OWNED_*): a file matching these and not listed by the new
# manifest is the previous run's and is removed at publish time. Anything else is the user's and is kept.


class OutputError(WikisnapError):
    """`--out` (or `--base`) cannot be used as given; the message says what to change (exit 2)."""


class EnvironmentFailure(WikisnapError):
    """The machine stopped the run: disk full, no permission, read-only folder… (exit 1)."""

    exit_code = EXIT_ENVIRONMENT


class LockHeld(WikisnapError):
    """Another live run holds the output folder (exit 75: try again later)."""

    exit_code = EXIT_LOCKED


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def local_path(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def resolved(path: str) -> str:
    """A comparable form of a folder: symlinks resolved for local paths, the URL otherwise."""
    return os.path.realpath(local_path(path)) if is_local(path) else path.rstrip("/")


def environment_message(exc: OSError, path: str | None = None, action: str = "writing") -> str:
    """One line for an OSError the user must fix outside wikisnap."""
    where = exc.filename or path or "?"
    hints = {
        errno.ENOSPC: "free space on that disk, or point --out or --temp-location to a larger one",
        errno.EDQUOT: "the disk quota is used up; free space or use another --out",
        errno.EACCES: "give a folder you can write to",
        errno.EPERM: "give a folder you can write to",
        errno.EROFS: "the filesystem is read-only; give a writable --out",
    }
    hint = hints.get(exc.errno, "check the disk and the folder's permissions")
    return f"{action} {where}: {exc.strerror or exc} ({hint})"


class FileLock:
    """A `flock` on `path`, whose text says who holds it (`holder`, a JSON object per line).

    Exclusive for a run that writes the folder; `shared` for one that only reads it (an update's
    `--base`): readers hold it together and keep writers out, a writer keeps everyone out. Each
    reader appends its line; the last reader to leave, or the next writer, empties the file.
    The flock dies with its process, so a lock whose holder was killed is free at once and is
    taken over with a warning; the file is never unlinked (that would let two runs lock two
    different inodes). Used by the output folders, the update's base and `wikisnap sync`'s work folder.
    """

    def __init__(self, path: str, holder: dict, shared: bool = False):
        self.path = path
        self.holder = holder
        self.shared = shared
        self._fd: int | None = None

    def acquire(self, held: str, stale: str) -> None:
        """Take the lock, or raise LockHeld(`held`); `held`/`stale` name the holder as `{holder}`."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockHeld(held.format(holder=describe_holder(holder))) from None
        line = (json.dumps(self.holder) + "\n").encode("utf-8")
        if self.shared:
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, line)  # one short write: readers' lines do not interleave
            self._fd = fd
            return
        previous = _read_holder(fd)
        if previous:
            log.warning(stale.format(holder=describe_holder(previous)))
        os.ftruncate(fd, 0)
        os.pwrite(fd, line, 0)
        self._fd = fd

    def release(self) -> None:
        """Empty the file (a reader: only when it is the last one) and unlock (idempotent)."""
        if self._fd is not None:
            if not self.shared:
                os.ftruncate(self._fd, 0)
            else:
                try:  # the last reader out (no other holder) leaves the file empty for the next writer
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    os.ftruncate(self._fd, 0)
                except BlockingIOError:
                    pass  # other readers still hold it
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_for_reading(folder: str, command: str) -> FileLock | None:
    """A shared lock on a local wikisnap output that a run reads (an update's `--base`).

    LockHeld (exit 75) while a run writes it; while held, a build or update into it gets LockHeld.
    None for a folder that is not local, is not a wikisnap output (no manifest, no control folder:
    nothing is created in it) or that this user cannot write a lock into (a read-only mirror,
    which no run of ours can write either): reading it then takes no lock.
    """
    if not is_local(folder):
        return None
    root = local_path(folder).rstrip("/") or "/"
    path = control_path(root, LOCK)
    if not os.path.isdir(os.path.dirname(path)) and not os.path.isfile(os.path.join(root, MANIFEST)):
        return None
    lock = FileLock(path, holder_info(command) | {"reading": True}, shared=True)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)  # a copied output may lack its control folder
        lock.acquire(held=f"--base {folder} is being written by another run: {{holder}}", stale="")
    except OSError as exc:
        log.info("--base %s: no read lock taken (%s)", folder, exc.strerror or exc)
        return None
    return lock


def holder_info(command: str, run: str | None = None) -> dict:
    """Who takes a lock: pid, host, user, command (and run), since when."""
    info = {"pid": os.getpid(), "host": socket.gethostname(), "user": _user(), "command": command}
    if run:
        info["run"] = run
    return info | {"since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


@dataclass
class OutputFolder:
    """An output folder held by one run: its staging area, temp area and lock."""

    out: str
    command: str
    run_id: str
    fs: object = field(repr=False)
    root: str = ""
    _file_lock: FileLock | None = field(default=None, repr=False)
    _lock_remote: bool = False
    # What this run created, so that a run that fails before staging anything leaves no trace.
    _created_root: bool = False
    _created_control: bool = False
    _keep: bool = False

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, out: str, command: str, base: str | None = None, break_lock: bool = False) -> OutputFolder:
        """Check `out`, take its lock, finish or clear what earlier runs left; before any input is read.

        Raises OutputError (not an output folder, the same as `base`), EnvironmentFailure (not
        writable) or LockHeld (another run is writing it).
        """
        if base is not None and resolved(out) == resolved(base):
            raise OutputError(
                f"--out {out} is the same folder as --base {base} (after resolving links): the base is read "
                "while the output is written; give a new folder"
            )
        fs, root = fs_for(out)
        folder = cls(out=out, command=command, run_id=uuid.uuid4().hex[:12], fs=fs, root=root.rstrip("/") or root)
        folder._created_root = not fs.exists(folder.root)
        folder._created_control = not fs.exists(folder.control())
        folder._check_kind()
        folder._check_writable()
        folder._lock(break_lock)
        try:
            folder._recover()
        except BaseException:
            folder.close()
            raise
        return folder

    def _check_kind(self) -> None:
        """OUT must be new, empty, or a previous wikisnap output (it has our manifest)."""
        fs, root = self.fs, self.root
        try:
            if not fs.exists(root):
                return
            if not fs.isdir(root):
                raise OutputError(f"--out {self.out} is a file, not a folder")
            names = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False))
        except PermissionError as exc:
            raise EnvironmentFailure(environment_message(exc, self.out, "reading")) from None
        names = [n for n in names if n != CONTROL]
        if not names:
            return
        if MANIFEST in names:
            try:
                with fs.open(f"{root}/{MANIFEST}", "rb") as f:
                    manifest = json.loads(f.read())
            except (OSError, ValueError):
                manifest = {}
            if isinstance(manifest, dict) and manifest.get("tool", {}).get("name") == "wikisnap":
                return
        if fs.exists(f"{root}/{CONTROL}/{JOURNAL}"):
            return  # a killed publish: the manifest is on its way, _recover finishes it
        shown = ", ".join(names[:3]) + (" …" if len(names) > 3 else "")
        raise OutputError(
            f"--out {self.out} holds files that are not a wikisnap output ({shown}); give a new or empty "
            "folder, or a previous wikisnap output (one with its manifest.json)"
        )

    def _check_writable(self) -> None:
        probe = self.control(f"probe-{self.run_id}")
        try:
            self.fs.makedirs(self.control(), exist_ok=True)
            with self.fs.open(probe, "wb") as f:
                f.write(b"wikisnap")
            self.fs.rm(probe)
        except OSError as exc:
            raise EnvironmentFailure(
                environment_message(exc, self.out, "cannot write to --out") + "; nothing was read or written"
            ) from None

    # -- paths -----------------------------------------------------------------------------

    def control(self, *parts: str) -> str:
        return control_path(self.root, *parts)

    def url(self, path_in_fs: str) -> str:
        """A path inside this folder's filesystem as the kind of string the user gave (URL or path)."""
        if is_local(self.out):
            return path_in_fs
        protocol = self.out.split("://", 1)[0]
        return f"{protocol}://{path_in_fs}"

    @property
    def staging(self) -> str:
        """Where this run writes every output (same relative paths as in OUT)."""
        return self.url(self.control(STAGING, self.run_id))

    @property
    def temp(self) -> str:
        """The default temp location of this run (spill runs, member parts)."""
        return self.url(self.control(TMP, self.run_id))

    # -- lock ------------------------------------------------------------------------------

    def _lock(self, break_lock: bool) -> None:
        path = self.control(LOCK)
        holder = holder_info(self.command, self.run_id)
        if is_local(self.out):
            lock = FileLock(path, holder)
            lock.acquire(
                held=f"--out {self.out} is held by another run: {{holder}}",
                stale=f"taking over a stale lock on {self.out}: {{holder}}, which is gone",
            )
            self._file_lock = lock
            return
        # Object stores have no locks: a lock object says who writes. Best effort: two runs that
        # start within the same second may both see it absent (docs/outputs.md says so).
        fs = self.fs
        if fs.exists(path) and not break_lock:
            with fs.open(path, "rb") as f:
                holder = json.loads(f.read() or b"{}")
            if holder and not _gone(holder):
                raise LockHeld(
                    f"--out {self.out} is being written by another run: {describe_holder(holder)}; "
                    "if that run is dead, pass --break-lock"
                )
            log.warning("taking over a stale lock on %s: %s", self.out, describe_holder(holder))
        with fs.open(path, "wb") as f:
            f.write((json.dumps(holder) + "\n").encode("utf-8"))
        self._lock_remote = True

    def close(self) -> None:
        """Release the lock (idempotent); empty staging and temp folders go with it.

        A run that published nothing and kept nothing removes what it created: the folder itself
        if it was new, else the control folder if it was new.
        """
        if is_local(self.out):
            for area in RUN_AREAS:
                try:
                    os.rmdir(local_path(self.control(area)))
                except OSError:
                    pass  # absent, or holds a failed run's report
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None
        if self._lock_remote:
            try:
                self.fs.rm(self.control(LOCK))
            except OSError:
                pass
            self._lock_remote = False
        if not self._keep and not self.fs.exists(f"{self.root}/{MANIFEST}"):
            try:
                if self._created_root and self._only_control_left():
                    self.fs.rm(self.root, recursive=True)
                elif self._created_control:
                    self.fs.rm(self.control(), recursive=True)
            except OSError:
                pass
            self._created_root = self._created_control = False

    def _only_control_left(self) -> bool:
        names = [posixpath.basename(p.rstrip("/")) for p in self.fs.ls(self.root, detail=False)]
        return all(n == CONTROL for n in names)

    # -- recovery --------------------------------------------------------------------------

    def _recover(self) -> None:
        """Finish a publish a killed run began; remove staging and temp folders of dead runs."""
        fs = self.fs
        journal_path = self.control(JOURNAL)
        if fs.exists(journal_path):
            with fs.open(journal_path, "rb") as f:
                journal = json.loads(f.read())
            self._recover_publish(journal)
        for area in LEFTOVER_AREAS:
            folder = self.control(area)
            if not fs.exists(folder):
                continue
            for path in sorted(fs.ls(folder, detail=False)):
                log.warning("%s: removing what an earlier run left in %s", self.out, path)
                fs.rm(path, recursive=True)

    # -- publishing ------------------------------------------------------------------------

    def staged_files(self) -> list[str]:
        """Relative paths of every file under this run's staging folder."""
        fs, base = self.fs, self.control(STAGING, self.run_id)
        if not fs.exists(base):
            return []
        return sorted(p[len(base) + 1 :] for p in fs.find(base))

    def publish(self, manifest: dict, files: list[dict]) -> None:
        """Move the staged `files` ({path, bytes, md5}, relative to OUT) into OUT; the manifest last.

        Steps, each safe to interrupt: (1) the journal names the new files and the files they
        displace — same-named files, files of the previous run the new manifest does not list,
        and the old manifest; (2) displaced files move to `.wikisnap/previous/{run}`; (3) staged
        files move into place; (4) the manifest is written atomically: the commit point;
        (5) journal, displaced files and staging are removed. A run killed before (4) is rolled
        back by the next run on the folder, restoring every displaced file.
        """
        fs = self.fs
        staging = self.control(STAGING, self.run_id)
        for f in files:  # a name from the data that slipped past every check still lands under OUT
            within(self.root, f"{self.root}/{f['path']}")
            within(staging, f"{staging}/{f['path']}")
        staged = set(self.staged_files())
        missing = [f["path"] for f in files if f["path"] not in staged]
        if missing:
            raise EnvironmentFailure(f"staged outputs vanished before publishing: {', '.join(missing[:5])}")
        for f in files:
            size = fs.size(self.control(STAGING, self.run_id, f["path"]))
            if size != f["bytes"]:
                raise EnvironmentFailure(f"staged {f['path']} has {size:,} bytes, the run wrote {f['bytes']:,}")
        listed = {f["path"] for f in files}
        stale = (set(self._previous_files()) | set(self._owned_files())) - listed
        # The old manifest goes aside first: no moment shows a manifest listing a file that is gone.
        displaced = sorted(
            (p for p in listed | stale | {MANIFEST} if fs.exists(f"{self.root}/{p}")), key=_manifest_first
        )
        manifest = {**manifest, "run": {"id": self.run_id}}
        journal = {"run": self.run_id, "command": self.command, "files": sorted(listed), "displaced": displaced}
        faults.point("publish:before-journal")
        write_atomically(fs, self.control(JOURNAL), json_bytes(journal), self.control(f"{JOURNAL}.{self.run_id}"))
        previous = self.control(PREVIOUS, self.run_id)
        for rel in displaced:
            if rel not in listed:
                log.info("%s: removing %s, which the new manifest does not list", self.out, rel)
            _replace(fs, f"{self.root}/{rel}", f"{previous}/{rel}")
        write_atomically(fs, self.control(f"displaced.{self.run_id}"), b"", self.control(f"displaced.{self.run_id}.t"))
        for rel in sorted(listed):
            _replace(fs, f"{staging}/{rel}", f"{self.root}/{rel}")
            faults.point("publish:moved-file")
        self._remove_empty_owned_folders()
        faults.point("publish:before-manifest")
        write_atomically(fs, f"{self.root}/{MANIFEST}", json_bytes(manifest, indent=1), f"{staging}/{MANIFEST}")
        faults.point("publish:after-manifest")
        self._finish(self.run_id)

    def _finish(self, run: str) -> None:
        """After the commit point: drop the journal, the displaced files and the staging folder."""
        fs = self.fs
        fs.rm(self.control(JOURNAL))
        for path in (self.control(f"displaced.{run}"), self.control(PREVIOUS, run), self.control(STAGING, run)):
            if fs.exists(path):
                fs.rm(path, recursive=True)
        if is_local(self.out):
            try:
                os.rmdir(local_path(self.control(PREVIOUS)))
            except OSError:
                pass

    def _recover_publish(self, journal: dict) -> None:
        """Finish (committed) or roll back (not committed) the publish a killed run began."""
        fs, run = self.fs, journal["run"]
        committed = False
        try:
            with fs.open(f"{self.root}/{MANIFEST}", "rb") as f:
                committed = json.loads(f.read()).get("run", {}).get("id") == run
        except (OSError, ValueError, AttributeError):
            committed = False
        if committed:
            log.warning("%s: run %s was killed after publishing; cleaning up after it", self.out, run)
            self._finish(run)
            return
        log.warning("%s: run %s was killed while publishing; restoring the previous output", self.out, run)
        previous = self.control(PREVIOUS, run)
        if fs.exists(self.control(f"displaced.{run}")):
            # Every displaced file had moved aside, so what stands under a new name is the new run's.
            for rel in journal["files"]:
                if fs.exists(f"{self.root}/{rel}"):
                    fs.rm(f"{self.root}/{rel}")
        for rel in journal["displaced"]:
            saved = f"{previous}/{rel}"
            if not fs.exists(saved):
                continue  # never moved aside: still in place
            if fs.exists(f"{self.root}/{rel}"):
                fs.rm(saved)  # an interrupted copy (object stores): the original is still in place
            else:
                _replace(fs, saved, f"{self.root}/{rel}")
        self._remove_empty_owned_folders()
        self._finish(run)

    def _previous_files(self) -> list[str]:
        path = f"{self.root}/{MANIFEST}"
        if not self.fs.exists(path):
            return []
        try:
            with self.fs.open(path, "rb") as f:
                manifest = json.loads(f.read())
            paths = sorted(o["path"] for o in manifest.get("outputs", []))
        except (OSError, ValueError, KeyError, TypeError):
            return []
        inside = [p for p in paths if _is_within(self.root, f"{self.root}/{p}")]
        for p in sorted(set(paths) - set(inside)):
            log.warning("%s: its manifest lists %r, outside the folder: left alone", self.out, p)
        return inside

    def _owned_files(self) -> list[str]:
        return owned_files(self.fs, self.root)

    def _remove_empty_owned_folders(self) -> None:
        if not is_local(self.out):
            return  # object stores have no empty folders
        for name in OWNED_FOLDERS:
            top = os.path.join(local_path(self.root), name)
            for dirpath, _dirs, _files in sorted(os.walk(top, topdown=False), reverse=True):
                try:
                    os.rmdir(dirpath)  # only succeeds when empty
                except OSError:
                    pass

    def discard(self) -> None:
        """Remove this run's staging folder (a crashed run's partial outputs), best effort."""
        staging = self.control(STAGING, self.run_id)
        try:
            if self.fs.exists(staging):
                self.fs.rm(staging, recursive=True)
        except OSError as exc:
            log.warning("could not remove %s: %s", staging, exc)

    def keep_failed(self, report: dict) -> str:
        """Leave a failed run's report beside its staged outputs (dead letters…); returns the folder."""
        staging = self.control(STAGING, self.run_id)
        self._keep = True
        try:
            self.fs.makedirs(staging, exist_ok=True)
            with self.fs.open(f"{staging}/report.json", "wb") as f:
                f.write(json_bytes(report, indent=1))
        except OSError as exc:
            log.warning("could not write the failed run's report: %s", exc)
        return self.url(staging)


# -- helpers ---------------------------------------------------------------------------------


def owned_files(fs, root: str) -> list[str]:
    """Relative paths of files in `root` that wikisnap owns (see OWNED_*), whoever wrote them."""
    found = []
    for path in fs.ls(root, detail=False):
        name = posixpath.basename(path.rstrip("/"))
        if name in OWNED_FOLDERS and fs.isdir(path):
            found.extend(p[len(root) + 1 :] for p in fs.find(path))
        elif OWNED_FILE.match(name):
            found.append(name)
    return sorted(found)


def scratch_dir(kind: str) -> str:
    """A new scratch folder in the system temp for `kind` (publish, hf…), named after this process.

    The name carries the pid (`layout.scratch_prefix`), so `remove_dead_scratch` can tell the
    folders of killed runs from those of live ones."""
    remove_dead_scratch()
    return tempfile.mkdtemp(prefix=scratch_prefix(kind))


def remove_dead_scratch(temp: str | None = None) -> list[str]:
    """Remove the scratch folders (`scratch_dir`) of processes of this host that are gone; their paths."""
    temp = temp or tempfile.gettempdir()
    removed = []
    try:
        names = sorted(os.listdir(temp))
    except OSError:
        return removed
    for name in names:
        pid = scratch_owner(name)
        if pid is None or pid == os.getpid() or not _gone({"host": socket.gethostname(), "pid": pid}):
            continue
        path = os.path.join(temp, name)
        if os.path.isdir(path) and not os.path.islink(path):
            log.info("removing %s, left by a run that is gone (pid %d)", path, pid)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _manifest_first(rel: str) -> tuple[bool, str]:
    return (rel != MANIFEST, rel)


def _is_within(root: str, path: str) -> bool:
    try:
        within(root, path)
    except PathEscape:
        return False
    return True


def json_bytes(obj: dict, indent: int | None = None) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=indent) + "\n").encode("utf-8")


def _replace(fs, src: str, dst: str) -> None:
    """Move a file into place: an atomic rename locally (after fsync), a copy + delete elsewhere."""
    parent = posixpath.dirname(dst)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if _fs_is_local(fs):
        fd = os.open(src, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(src, dst)
    else:
        fs.mv(src, dst)


def write_atomically(fs, path: str, data: bytes, temp: str) -> None:
    """`data` to `path` so that a reader sees the old file or the new one, never a part."""
    parent = posixpath.dirname(temp)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if _fs_is_local(fs):
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        dfd = os.open(posixpath.dirname(path) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    else:
        # One PUT: object stores make a single object appear whole.
        with fs.open(path, "wb") as f:
            f.write(data)


def _fs_is_local(fs) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def _read_holder(fd: int) -> dict:
    """The holder named by a lock file: its (last) line, `others` counting the readers before it."""
    try:
        lines = [line for line in os.pread(fd, 1 << 16, 0).splitlines() if line.strip()]
        if not lines:
            return {}
        holder = json.loads(lines[-1])
        return holder | ({"others": len(lines) - 1} if len(lines) > 1 else {})
    except (OSError, ValueError, TypeError):
        return {"unreadable": True}


def _gone(holder: dict) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    if holder.get("host") != socket.gethostname() or not holder.get("pid"):
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def describe_holder(holder: dict) -> str:
    if not holder or holder.get("unreadable"):
        return "an unknown process"
    what = (
        f"wikisnap {holder.get('command', '?')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
        f"user {holder.get('user', '?')}, since {holder.get('since', '?')})"
    )
    if holder.get("reading"):
        what += " reading it as its --base" + (
            f", with {holder['others']} other reader(s)" if holder.get("others") else ""
        )
    return what


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
