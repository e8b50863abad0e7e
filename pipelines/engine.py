"""Which Beam engine a job runs on, and the checks a cluster run needs before it starts.

Locally the FnApiRunner is pinned (never a Prism download), in-process or with worker
processes; any other runner gets its flags unchanged, after three checks: a temp folder every
worker reaches, a job-server jar and a Prism binary that Beam would otherwise download at run time.
"""

from __future__ import annotations

import logging
import os
import re
import types
import weakref
from dataclasses import dataclass

import apache_beam as beam
import fsspec
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    PrismRunnerOptions,
    StandardOptions,
    TypeOptions,
)

from wikisnap.pipelines import forkworkers
from wikisnap.pipelines.errors import UsageError
from wikisnap.pipelines.options import LOCAL_RUNNER_NAMES, RunOptions, flag_value
from wikisnap.transforms.formats.codecs import default_bz2_threads

log = logging.getLogger("wikisnap")

LOCAL_RUNNERS = {None, *LOCAL_RUNNER_NAMES}
# Runners whose workers all run on the launching machine (Beam's in-process and local runners):
# any temp folder works for them. Every other runner may put workers on other machines.
SINGLE_MACHINE_RUNNERS = LOCAL_RUNNERS | {"bundlebaseddirectrunner", "switchingdirectrunner", "prismrunner"}
# fsspec protocols whose files only the writing machine (or process) sees
LOCAL_PROTOCOLS = {"file", "local", "memory"}


def without_type_check(options: PipelineOptions, args: list[str]) -> PipelineOptions:
    """`options` with Beam's construction-time type check off, unless `args` ask for it.

    The check compares the type hints of a graph's steps while it is built: it finds mistakes in
    the graph, which is wikisnap's and fixed (the tests build every graph with the check on),
    never in a user's input. It took 0.15 s of every run's start-up here, a twentieth of an
    update. `--pipeline_type_check` turns it back on.
    """
    if not any(a.startswith(("--pipeline_type_check", "--no_pipeline_type_check")) for a in args):
        options.view_as(TypeOptions).pipeline_type_check = False
    return options


# Beam's bundle processors time their steps with a sampler thread that sleeps up to 200 ms between
# samples, and ending a bundle joins that thread ("may have to wait up to sampling_period_ms"):
# each bundle of a second or more ended 0-200 ms late, 0.2-0.4 s of an update's wall time here.
# In-process runs sample every 20 ms instead (waking 50 times a second costs nothing measurable).
IN_PROCESS_SAMPLING_MS = 20


def prompt_state_sampler(period_ms: int = IN_PROCESS_SAMPLING_MS) -> None:
    """Make this process's Beam bundle processors sample step state every `period_ms`.

    Beam builds each bundle's sampler as `statesampler.StateSampler(prefix, counters)`; the class
    is swapped for one whose default period is `period_ms` (once: later calls keep the first).
    Only in-process runs need it; a worker process elsewhere keeps Beam's default.
    """
    from apache_beam.runners.worker import statesampler

    if getattr(statesampler.StateSampler, "wikisnap_period_ms", None) is not None:
        return

    class PromptStateSampler(statesampler.StateSampler):
        wikisnap_period_ms = period_ms

        def __init__(self, prefix, counter_factory, sampling_period_ms=period_ms):
            super().__init__(prefix, counter_factory, sampling_period_ms)

    statesampler.StateSampler = PromptStateSampler


def kept_option_views() -> None:
    """Make `PipelineOptions.view_as` hand out one view per options object and class.

    Beam makes a new view at each call (a parser of that class's flags, built and run over the
    flags again), and building a graph asks for one twice per step only to read the type-check
    flag: 230 views, 0.07 s of an update here. A view holds no value of its own (they live in the
    options' `_all_options`, shared by every view), so the first view of each class is kept
    beside the options object and handed out again while it shares that dict. Once per process, for
    local runs (`pipeline_options`); a cluster's launcher keeps Beam's own.
    """
    if getattr(PipelineOptions.view_as, "wikisnap_kept", False):
        return
    if "_all_options" not in PipelineOptions([]).__dict__:
        return  # a Beam that keeps the values elsewhere: its views are left as they are
    make_view = PipelineOptions.view_as
    # beside the options, not in them: their state is what pickling and deep copies take, and a
    # view's own copy would ask for views again (no end)
    kept: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def view_as(self, cls):
        views = kept.setdefault(self, {})
        view = views.get(cls)
        if view is None or view.__dict__.get("_all_options") is not self._all_options:
            view = views[cls] = make_view(self, cls)
        return view

    view_as.wikisnap_kept = True
    view_as.__doc__ = make_view.__doc__
    PipelineOptions.view_as = view_as


def cached_dofn_specs() -> None:
    """Make Beam look up a DoFn class's state and timer specs once per process, not per call.

    Beam's `userstate.get_dofn_specs` wraps every method of a DoFn (some 30, DoFn's own among
    them) and takes each one's signature; the graph's construction asks it about 5 times per
    ParDo and each bundle's processor 3 times per DoFn: 390 calls and 0.18 s of an update here.
    It reads only the attributes that are bound methods, and their parameter defaults: those of
    the class, but for the names an instance sets itself (a plain function there, as the `process`
    of `beam.Map`'s wrapper, is passed over). So its answer is kept per class and set of such
    names; a DoFn holding a bound method of its own (`beam.Map(obj.method)`) is asked each time
    as before. The answer is handed out as fresh sets, as Beam makes them. Once per process; a
    worker process elsewhere keeps Beam's own.
    """
    from apache_beam.transforms import userstate

    specs_of = getattr(userstate, "get_dofn_specs", None)
    if specs_of is None or getattr(specs_of, "wikisnap_cached", False):
        return  # (None: a Beam without it, left as it is)
    known: dict[tuple[type, frozenset], tuple[frozenset, frozenset]] = {}

    def get_dofn_specs(dofn):
        own = getattr(dofn, "__dict__", None)
        if own is None or any(isinstance(value, types.MethodType) for value in own.values()):
            return specs_of(dofn)
        key = (type(dofn), frozenset(name for name in own if hasattr(type(dofn), name)))
        found = known.get(key)
        if found is None:
            states, timers = specs_of(dofn)
            found = known[key] = (frozenset(states), frozenset(timers))
        return set(found[0]), set(found[1])

    get_dofn_specs.wikisnap_cached = True
    get_dofn_specs.beams = specs_of  # (for the tests: Beam's own, asked every time)
    # userstate's own is_stateful_dofn and validate_stateful_dofn, and Beam's callers, look the
    # function up in the module at each call
    userstate.get_dofn_specs = get_dofn_specs


# Local worker processes per core at most: more only add start-up time and memory (each is a
# Python interpreter with Beam imported), never throughput.
WORKERS_PER_CORE = 4


def local_workers(config: RunOptions, units: int | None = None, say: bool = True) -> int:
    """The local worker processes a run uses: `--workers`, capped, with a log line when capped.

    In: the config (`workers`, `beam_args`) and, once the inputs are split, the number of read
    units. Out: at most WORKERS_PER_CORE × this machine's cores, and not more than the units
    when they are more than the cores (stages after the read use the cores). A remote runner's
    workers are its own business: `--workers` is returned unchanged there. `say`: log the cap.
    """
    if not runs_on_this_machine(config):
        return config.workers
    cores = machine_cores()
    bound = WORKERS_PER_CORE * cores
    why = f"{WORKERS_PER_CORE} × {cores} core(s)"
    if units is not None and max(units, cores) < bound:
        bound = max(units, cores)
        why = f"{units} work unit(s) and {cores} core(s)"
    if config.workers <= bound:
        return config.workers
    if say:
        log.warning("--workers %d capped to %d: more processes than %s only cost memory", config.workers, bound, why)
    return bound


def machine_cores() -> int:
    """This machine's cores (one place, so tests can pretend another machine)."""
    return os.cpu_count() or 1


def _machine_type_cores(machine_type: str | None) -> int | None:
    """vCPUs of a Compute Engine machine type: `custom-8-32768` → 8, `n2-standard-4` → 4,
    `c3-standard-22-lssd` → 22; None when its name holds no number (`e2-medium`) or none is given."""
    if not machine_type:
        return None
    match = re.search(r"custom-(\d+)-\d+", machine_type) or re.search(r"-(\d+)(?:-[a-z]+)?$", machine_type)
    return int(match.group(1)) if match else None


def _spark_local_cores(master: str | None) -> int | None:
    """Spark's `local` master → 1, `local[N]`/`local[N,F]` → N, `local[*]` → this machine's cores; None else."""
    match = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", (master or "").strip())
    if match is None:
        return None
    count = match.group(1)
    return 1 if count is None else machine_cores() if count == "*" else max(1, int(count))


def parallelism(config) -> tuple[int, str]:
    """How many bundles the run's engine works on side by side, and where that number comes from.

    In: a build or update config (`workers`, `beam_args`). Out: `(workers ≥ 1, why)`, `why` a
    phrase for the log ("--workers 4", "--parallelism 16", …). Work units and join partitions are
    sized by it. The rule, first match wins:

    - the local engine (FnApiRunner/DirectRunner): `--workers`, capped as `local_workers` caps it
      (Beam's `--direct_num_workers` is refused there: `--workers` sets it);
    - `--parallelism N` (Flink's option; any other runner given it takes it as the user's word): N;
    - PrismRunner: this machine's cores (Prism runs a stage's bundles side by side);
    - DataflowRunner: `--max_num_workers` (else `--num_workers`) × the vCPUs of
      `--machine_type`/`--worker_machine_type` (Dataflow runs one Python SDK process per vCPU;
      1 when the type is not given or its name holds no number);
    - SparkRunner with `--spark_master_url local[N]`: N (`local[*]`: this machine's cores);
    - anything else (a Flink or Spark cluster, a job service, whose size the flags do not tell): 1,
      said as unknown; pass `--parallelism N` to size the work for N workers.
    """
    args = config.beam_args
    runner = (flag_value(args, "--runner") or "").lower()
    if runner in LOCAL_RUNNERS:
        workers = local_workers(config, say=False)
        return workers, f"--workers {workers}"
    given = _positive(flag_value(args, "--parallelism"))
    if given:
        return given, f"--parallelism {given}"
    if runner == "prismrunner":
        cores = machine_cores()
        return cores, f"Prism on {cores} core(s)"
    if runner == "dataflowrunner":
        for flag in ("--max_num_workers", "--num_workers"):
            machines = _positive(flag_value(args, flag))
            if machines:
                machine_type = flag_value(args, "--machine_type") or flag_value(args, "--worker_machine_type")
                cores = _machine_type_cores(machine_type) or 1
                return machines * cores, f"{flag} {machines} × {cores} vCPU(s)"
    if runner == "sparkrunner":
        cores = _spark_local_cores(flag_value(args, "--spark_master_url"))
        if cores:
            return cores, f"--spark_master_url {flag_value(args, '--spark_master_url')}"
    return 1, f"unknown for --runner {flag_value(args, '--runner')} (pass --parallelism N)"


def _positive(text: str | None) -> int | None:
    try:
        value = int(text) if text is not None else 0
    except ValueError:
        return None
    return value if value > 0 else None


def pipeline_options(config: RunOptions) -> tuple[PipelineOptions, object, str]:
    """Beam options, the runner object to use, and a one-line description of the engine.

    The local engine is pinned to the FnApiRunner: recent Beam's DirectRunner first tries to
    download the Prism binary and silently falls back, so machines would differ. Beam's
    construction-time type check is off unless asked for (`without_type_check`), and its DoFn
    specs are looked up once per class (`cached_dofn_specs`); locally, an options view is made
    once per class (`kept_option_views`).
    """
    cached_dofn_specs()
    args = list(config.beam_args)
    mode = flag_value(args, "--direct_running_mode")
    if mode == "multi_threading":
        raise UsageError(
            "--direct_running_mode multi_threading is refused: Beam's threaded local mode shares one "
            "interpreter between workers and has corrupted data at scale; use --workers N, which runs N "
            "worker processes (multi_processing)"
        )
    runner = flag_value(args, "--runner")
    if runner is None or runner.lower() in LOCAL_RUNNERS:
        if flag_value(args, "--direct_num_workers") is not None:
            raise UsageError(
                "--direct_num_workers is refused with the local engine: wikisnap sets it from --workers, "
                "which also sizes the work units; use --workers N"
            )
        kept_option_views()
        workers = local_workers(config)
        args = [a for a in args if not (a.startswith("--runner") or a in ("DirectRunner", "FnApiRunner"))]
        options = without_type_check(PipelineOptions(args), args)
        direct = options.view_as(DirectOptions)
        if workers > 1:
            direct.direct_num_workers = workers
            direct.direct_running_mode = "multi_processing"
            engine = f"Beam FnApiRunner, {workers} worker processes (multi_processing)"
        else:
            direct.direct_num_workers = 1
            direct.direct_running_mode = "in_memory"
            engine = "Beam FnApiRunner, in-process (1 worker)"
            prompt_state_sampler()
        return options, worker_runner()(provision_info=_worker_provision_info()), engine
    forkworkers.note_grpc()  # every other runner talks to its workers over gRPC
    options = without_type_check(PipelineOptions(args), args)
    if runner.lower() == "prismrunner" and flag_value(args, "--prism_log_level") is None:
        options.view_as(PrismRunnerOptions).prism_log_level = "warn"  # Prism's INFO lines drown the progress lines
    return options, options.view_as(StandardOptions).runner, f"Beam {runner}"


def runs_on_this_machine(config) -> bool:
    """Whether every worker of the run is a process on this machine (local runners)."""
    runner = flag_value(config.beam_args, "--runner")
    return runner is None or runner.lower() in SINGLE_MACHINE_RUNNERS


def never_retries(config) -> bool:
    """Whether a failed bundle fails the run instead of being retried: Beam's FnApiRunner, pinned
    for local runs, has no bundle retry (every other runner may run a bundle again)."""
    runner = flag_value(config.beam_args, "--runner")
    return runner is None or runner.lower() in LOCAL_RUNNERS


def bz2_threads_for(config) -> int:
    """`--bz2-threads`, or by default the cores this machine leaves each local worker (1 elsewhere,
    on purpose: a cluster runs one SDK worker per core already, each with bundles of its own, so
    helper threads would compete with them; and the threads read local files only, so inputs on
    https/gs/s3 are decoded in the reading thread whatever this says). See docs/cluster.md."""
    if config.bz2_threads:
        return config.bz2_threads
    return default_bz2_threads(config.workers) if runs_on_this_machine(config) else 1


def check_shared_temp(config, temp_root: str) -> None:
    """Refuse a runner that may run workers on other machines with a temp folder only this one sees.

    In: a build or update config (`beam_args`, `shared_temp`) and the temp folder the run would use.
    Spill runs and member parts written by one worker are read by another, so on a cluster they
    must live on storage every worker reaches; a local path would fail late (files not found) or,
    worse, on a shared-nothing cluster whose workers happen to share a path name.
    """
    runner = flag_value(config.beam_args, "--runner")
    if runner is None or runner.lower() in SINGLE_MACHINE_RUNNERS or config.shared_temp:
        return
    if runner.lower() == "portablerunner" and flag_value(config.beam_args, "--job_endpoint") == "embed":
        return  # Beam's embedded job service runs the work on this machine
    # by the URL's scheme alone: a bucket's filesystem package need not be installed on the launcher
    if (fsspec.core.split_protocol(temp_root)[0] or "file") not in LOCAL_PROTOCOLS:
        return
    raise UsageError(
        f"--runner {runner} may run workers on other machines, but the temp folder {temp_root} (spill runs and "
        "member parts that workers hand to each other) is on this machine only. Pass --temp-location on storage "
        "every worker reaches (gs://…, s3://…, hdfs://…), or add --shared-temp if that folder is shared (a "
        "network mount, or all workers run on this machine)"
    )


FETCH_JARS = "bash tests/engines/fetch-job-servers.sh"
INSTALL_PRISM = ".ci/install-prism"


@dataclass(frozen=True)
class _LocalBinary:
    """What a runner needs as a local file, lest Beam download it at run time."""

    option: str  # the Beam option that names the file
    what: str  # the file, for people
    get: str  # how to get it, said in the "needs" error
    fix: str  # how to get it, said in the "not a local file" error
    service: str  # what --job_endpoint would name instead


# Beam's job-server runners and Prism: without the file (or a running service at --job_endpoint)
# Beam would download a jar from Maven Central, or `go install` Prism, at run time.
LOCAL_BINARIES = {
    "flinkrunner": _LocalBinary(
        "--flink_job_server_jar", "the Beam job server jar", f"fetch it once with `{FETCH_JARS}`",
        f"fetch the job server jars with `{FETCH_JARS}`", "job service",
    ),
    "sparkrunner": _LocalBinary(
        "--spark_job_server_jar", "the Beam job server jar", f"fetch it once with `{FETCH_JARS}`",
        f"fetch the job server jars with `{FETCH_JARS}`", "job service",
    ),
    "prismrunner": _LocalBinary(
        "--prism_location", "the Prism binary", f"build it once with `{INSTALL_PRISM}`, which writes .venv/bin/prism",
        f"build Prism with `{INSTALL_PRISM}`", "Prism",
    ),
}  # fmt: skip


def check_job_server(config) -> None:
    """Refuse a Flink, Spark or Prism run that would make Beam download its job server at run time.

    In: a build or update config (`beam_args`). The file `LOCAL_BINARIES` names for the runner
    must be given and be a local file (a jar fetched beforehand with the documented Maven
    command; Prism built once with `.ci/install-prism` at the venv's Beam version), or a job
    service must already run at `--job_endpoint`.
    """
    runner = flag_value(config.beam_args, "--runner") or ""
    need = LOCAL_BINARIES.get(runner.lower())
    if need is None or flag_value(config.beam_args, "--job_endpoint"):
        return
    path = flag_value(config.beam_args, need.option)
    if path is None:
        raise UsageError(
            f"--runner {runner} needs {need.option} FILE: {need.what} of Beam {beam.__version__} ({need.get}), or "
            f"--job_endpoint HOST:PORT of a running {need.service}; wikisnap does not let Beam download it at run time"
        )
    if "://" in path or not os.path.isfile(path):
        raise UsageError(f"{need.option} {path}: not a local file ({need.fix})")


def check_cluster_run(config, temp_root: str) -> None:
    """The checks a run on a non-local runner needs before anything starts (see the two above)."""
    check_shared_temp(config, temp_root)
    check_job_server(config)


def worker_runner():
    """The FnApiRunner whose `--workers N` processes are forked from the launcher
    (pipelines/forkworkers.py), or started as pipelines/worker.py where they cannot be: Beam's SDK
    harness in wikisnap's log format, Beam's own lines quiet unless -v, instead of Beam's bare entry
    point."""
    import sys

    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.transforms.environments import SubprocessSDKEnvironment

    class WorkerFnApiRunner(FnApiRunner):
        def run_pipeline(self, pipeline, options):
            direct = options.view_as(DirectOptions)
            if direct.direct_running_mode != "multi_processing":
                return super().run_pipeline(pipeline, options)
            level = logging.getLevelName(logging.getLogger("wikisnap").getEffectiveLevel())
            verbose = level == "DEBUG"
            pool = None
            fork = forkworkers.available()
            forkworkers.note_grpc()  # this run starts gRPC: no later run of this process may fork
            if fork:
                # forked from this process before the runner starts any gRPC: no second start-up
                pool = forkworkers.ForkPool.start(direct.direct_num_workers, level, verbose)
                self._default_environment = forkworkers.forked_environment(level, verbose)
            else:
                self._default_environment = SubprocessSDKEnvironment.from_command_string(
                    f"{sys.executable} -m wikisnap.pipelines.worker --log-level {level}{' --verbose' * verbose}"
                )
            # FnApiRunner replaces the environment of a multi_processing run with Beam's entry
            # point; so the run is declared in_memory (its one effect: that choice, and a warning
            # the launcher's log filter drops), with direct_num_workers processes all the same.
            direct.direct_running_mode = "in_memory"
            try:
                return super().run_pipeline(pipeline, options)
            finally:
                direct.direct_running_mode = "multi_processing"
                if pool is not None:
                    pool.close()

    return WorkerFnApiRunner


def _worker_provision_info():
    """Options the local worker processes read at start-up: Beam's INFO chatter off, progress on.

    The FnApiRunner hands its subprocess workers no pipeline options of its own, so their log
    levels are set here.
    """
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner.fn_runner import ExtendedProvisionInfo
    from google.protobuf import struct_pb2

    options = struct_pb2.Struct()
    level = logging.getLevelName(logging.getLogger("wikisnap").getEffectiveLevel())
    options.update({"default_sdk_harness_log_level": "WARNING", "sdk_harness_log_level_overrides": {"wikisnap": level}})
    return ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(retrieval_token="unused-retrieval-token", pipeline_options=options)
    )
