"""The local worker processes of `--workers N`, forked from the launcher instead of started afresh.

A worker started as a new interpreter (`python -m wikisnap.pipelines.worker`) spends about
1.5 CPU-seconds importing Beam, pyarrow, lxml and wikisnap before its first element; with two
workers on the benchmark corpus that start-up was most of the +27% CPU a second worker cost.
The launcher has imported all of it already, so it forks its workers instead:

- `ForkPool.start(n)` forks `n` processes just before the runner starts (no gRPC channel, server
  or Beam thread exists yet, so the children start clean). Each waits on a pipe.
- The runner starts a worker for the `ForkedEnvironment` through `ForkedWorkerHandler`: it
  hands one waiting child the addresses Beam would have put in a new process's environment
  (control, logging, pipeline options, worker id) and waits for it to exit, as Beam's
  `SubprocessSdkWorker` waits for its subprocess.
- A child reads nothing but its own pipe: on end-of-file (the launcher finished without it, or
  died) it exits. It closes every other inherited descriptor first (the output folder's lock
  among them), like a new process started with `close_fds`.

In: the worker count and wikisnap's log level. Out: worker processes that run Beam's SDK
harness, log as `pipelines/worker.py` does, and exit with its status. Linux only, and only
before gRPC has started in the process; elsewhere `available()` is False and the launcher starts
workers as new processes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading

log = logging.getLogger("wikisnap")

FORKED_URN = "wikisnap:env:forked_sdk_worker:v1"


# gRPC core's own threads (timer, event engine), by the names Linux shows; any of them means
# gRPC started in this process (the timer thread alone may have ended after a while)
_GRPC_THREADS = ("grpc", "event_engine", "lifeguard", "default-executo", "resolver-execu", "timer_manager")
_grpc_started = False


def note_grpc() -> None:
    """Record that this process starts gRPC (a multi-worker or portable run): no fork after it."""
    global _grpc_started
    _grpc_started = True


def available() -> bool:
    """Whether workers can be forked from this process now.

    Linux only (elsewhere system libraries do not all survive a fork), and only while gRPC's
    core has not started in this process: a process that already ran a multi-worker pipeline
    (the Python API called twice, a test session) keeps gRPC's state, and a child forked from it
    hangs on its first channel. Such a run starts its workers as new processes. wikisnap's own
    runs say so (`note_grpc`); gRPC started by anything else shows in its threads' names.
    """
    if _grpc_started or not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return False
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                if f.read().startswith(_GRPC_THREADS):
                    return False
        except OSError:
            continue  # a thread that ended meanwhile
    return True


def _stdio_handlers() -> list[logging.Handler]:
    """Every logging handler of the loggers wikisnap and Beam log through."""
    loggers = [logging.getLogger(), logging.getLogger("wikisnap"), logging.getLogger("apache_beam")]
    return [h for lg in loggers for h in lg.handlers]


class ForkPool:
    """Children forked now, each handed its worker's addresses later (`take().run(env)`)."""

    _current: ForkPool | None = None  # the pool of the run in progress (one per launcher process)

    def __init__(self):
        self._waiting: list[_Child] = []
        self._lock = threading.Lock()

    @classmethod
    def start(cls, n: int, level: str, verbose: bool) -> ForkPool:
        """Fork `n` waiting workers; they log at wikisnap's `level` (Beam's lines too if `verbose`)."""
        # Beam's worker modules are imported here, once, so no child imports them
        from apache_beam.runners.worker import sdk_worker_main  # noqa: F401

        pool = cls()
        sys.stdout.flush()
        sys.stderr.flush()
        # Another thread (the progress reporter) may be writing a log line: holding every handler's
        # lock across the fork means no child starts with a stream lock taken mid-write.
        handlers = _stdio_handlers()
        for handler in handlers:
            handler.acquire()
        try:
            launcher = os.getpid()
            for _ in range(n):
                read_fd, write_fd = os.pipe()
                pid = os.fork()
                if pid == 0:  # the child: never returns
                    _child_main(read_fd, level, verbose, launcher)
                os.close(read_fd)
                pool._waiting.append(_Child(pid, write_fd))
        finally:
            for handler in handlers:
                handler.release()
        cls._current = pool
        log.debug("%d worker process(es) forked from the launcher: %s", n, ", ".join(str(c.pid) for c in pool._waiting))
        return pool

    def take(self) -> _Child | None:
        """A waiting child, or None when all were handed out."""
        with self._lock:
            return self._waiting.pop(0) if self._waiting else None

    def close(self) -> None:
        """Release the children never handed out: they read end-of-file and exit; reaped here."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for child in waiting:
            child.release()
        if ForkPool._current is self:
            ForkPool._current = None

    @classmethod
    def current(cls) -> ForkPool | None:
        return cls._current


class _Child:
    """One forked, waiting worker as the launcher sees it: its pid and the pipe it reads."""

    def __init__(self, pid: int, write_fd: int):
        self.pid = pid
        self._fd = write_fd

    def run(self, env: dict[str, str]) -> int:
        """Hand the worker its environment; wait for it to exit; its exit code (-N: killed by signal N)."""
        try:
            os.write(self._fd, json.dumps(env).encode() + b"\n")
        finally:
            os.close(self._fd)
            self._fd = -1
        try:
            _, status = os.waitpid(self.pid, 0)
        except BaseException:
            self.kill()
            raise
        return os.waitstatus_to_exitcode(status) if status else 0

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _die_with_launcher(launcher: int) -> None:
    """Have the kernel kill this child when the launcher dies (Linux's parent-death signal).

    A killed launcher closes the children's pipes and gRPC streams, but a worker that was handed
    its addresses and is still connecting would wait out gRPC's connect timeout (a minute) first.
    The signal comes when the forking thread ends, which is the thread that runs the pipeline.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no glibc: the pipe and the streams still end the worker
        return
    if os.getppid() != launcher:  # the launcher died before the signal was asked for
        os._exit(1)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _child_main(read_fd: int, level: str, verbose: bool, launcher: int) -> None:
    """The forked child: wait for the worker's environment, run Beam's SDK harness, exit."""
    code = 1
    try:
        _die_with_launcher(launcher)
        # a fresh process's signal dispositions (the launcher's Ctrl-C handler raises its own error)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _close_inherited(read_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            line = pipe.readline()
        if not line:  # the launcher finished without this worker, or died
            code = 0
            return
        os.environ.update(json.loads(line))
        from wikisnap.pipelines.worker import install_logging

        install_logging(level, verbose, replace=True)
        sys.argv = ["wikisnap-worker"]
        from apache_beam.runners.worker import sdk_worker_main

        sdk_worker_main.main(sys.argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the harness logged it; the status says it failed
        logging.getLogger("wikisnap").exception("worker %d failed", os.getpid())
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)  # never the launcher's atexit handlers, temp clean-up or finally blocks


def _close_inherited(keep: int) -> None:
    """Close every descriptor but stdio and `keep`: the launcher's lock, files and pipes to others."""
    try:
        fds = sorted(int(name) for name in os.listdir(f"/proc/{os.getpid()}/fd"))
    except OSError:
        fds = list(range(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024))
    for fd in fds:
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass


def forked_environment(level: str, verbose: bool):
    """The Beam environment whose workers are taken from the run's `ForkPool`."""
    return _beam_classes()[0](json.dumps({"level": level, "verbose": verbose}))


_CLASSES: tuple | None = None


def _beam_classes():
    """`ForkedEnvironment` and `ForkedWorkerHandler`, defined (and registered with Beam) on first use."""
    global _CLASSES
    if _CLASSES is not None:
        return _CLASSES
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc, endpoints_pb2
    from apache_beam.runners.portability.fn_api_runner.worker_handlers import GrpcWorkerHandler, WorkerHandler
    from apache_beam.runners.portability.local_job_service import BeamFnLoggingServicer
    from apache_beam.runners.worker.channel_factory import GRPCChannelFactory  # noqa: F401 - Beam's own import order
    from apache_beam.transforms.environments import Environment
    from apache_beam.utils import thread_pool_executor
    from google.protobuf import json_format, text_format

    @Environment.register_urn(FORKED_URN, bytes)
    class ForkedEnvironment(Environment):
        """Workers forked from the launcher; the payload is their log settings (JSON)."""

        def __init__(self, settings: str, capabilities=(), artifacts=(), resource_hints=None):
            super().__init__(capabilities, artifacts, resource_hints)
            self.settings = settings

        def __eq__(self, other):
            return super().__eq__(other) and self.settings == other.settings

        def __hash__(self):
            return hash((super().__hash__(), self.settings))

        def to_runner_api_parameter(self, context):
            return FORKED_URN, self.settings.encode()

        @staticmethod
        def from_runner_api_parameter(payload, capabilities, artifacts, resource_hints, context):
            return ForkedEnvironment(payload.decode(), capabilities, artifacts, resource_hints)

    @WorkerHandler.register_environment(FORKED_URN, bytes)
    class ForkedWorkerHandler(GrpcWorkerHandler):
        """Beam's `SubprocessSdkWorkerHandler`, with a forked child where it starts a subprocess."""

        def __init__(self, payload, state, provision_info, grpc_server):
            super().__init__(state, provision_info, grpc_server)
            self._settings = json.loads(payload)

        def start_worker(self):
            self.worker_thread = threading.Thread(name="run_worker", target=self._run_worker)
            self.worker_thread.start()

        def stop_worker(self):
            self.worker_thread.join()

        def _run_worker(self):
            pool = ForkPool.current()
            child = pool.take() if pool is not None else None
            if child is None:  # more workers asked for than forked: cannot fork safely any more
                raise RuntimeError("no forked worker left for the runner (it asked for more than --workers)")
            # the logging service Beam gives each subprocess worker (its records reach the launcher)
            server = grpc.server(
                thread_pool_executor.shared_unbounded_instance(),
                options=[("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)],
            )
            port = server.add_insecure_port("localhost:0")
            server.start()
            beam_fn_api_pb2_grpc.add_BeamFnLoggingServicer_to_server(BeamFnLoggingServicer(), server)
            env = {
                "CONTROL_API_SERVICE_DESCRIPTOR": text_format.MessageToString(
                    endpoints_pb2.ApiServiceDescriptor(url=self.control_address)
                ),
                "LOGGING_API_SERVICE_DESCRIPTOR": text_format.MessageToString(
                    endpoints_pb2.ApiServiceDescriptor(url=f"localhost:{port}")
                ),
                "PIPELINE_OPTIONS": json_format.MessageToJson(self.provision_info.provision_info.pipeline_options),
            }
            if self.worker_id:
                env["WORKER_ID"] = self.worker_id
            try:
                code = child.run(env)
                if code:
                    raise RuntimeError(f"Worker subprocess exited with return code {code}")
            finally:
                server.stop(0)

    _CLASSES = (ForkedEnvironment, ForkedWorkerHandler)
    return _CLASSES
