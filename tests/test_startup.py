"""What every run pays before and after its work: its imports (pandas left out), the graph's
construction (Beam's type check off unless asked for), and the exit (imports frozen out of the
garbage collector)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import TypeOptions

from conftest import ENWIKI, read_snapshot
from wikisnap.pipelines import cli
from wikisnap.pipelines.engine import pipeline_options

OTHER_COMMANDS = tuple(f"wikisnap.pipelines.{name}" for name in ("update", "publish", "sync", "show"))


def test_build_as_the_program_runs_without_pandas_or_other_commands_and_writes_the_same_bytes(enwiki_build, tmp_path):
    # pandas comes with the test extra (through `datasets`), as in many users' environments
    import importlib.util

    assert importlib.util.find_spec("pandas") is not None
    out = tmp_path / "out"
    probe = (
        "import sys\n"
        "from wikisnap.pipelines import cli\n"
        f"sys.argv = ['wikisnap', '-q', 'build', {str(ENWIKI)!r}, '--out', {str(out)!r}]\n"
        "code = cli.main()\n"
        "print(code, 'pandas' in sys.modules, 'apache_beam' in sys.modules, 'apache_beam.io.gcp.bigquery' in sys.modules)\n"
        f"print(*[m for m in {OTHER_COMMANDS!r} if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    # (Beam's BigQuery connector left out of a local run with it)
    assert done.stdout.splitlines()[-2].split() == ["0", "False", "True", "False"], done.stderr[-2000:]
    # the other commands' modules are not loaded (their flags are not on a build's parser)
    assert done.stdout.splitlines()[-1] == "", done.stdout
    for name in ("enwiki_namespace_0.tar.gz", "parquet/enwiki_namespace_0/enwiki_namespace_0_0.parquet"):
        assert (out / name).read_bytes() == (enwiki_build / name).read_bytes(), name


def test_pandas_is_kept_for_callers_and_for_other_commands(monkeypatch):
    import pandas  # noqa: F401 - a caller that has it

    finders = list(sys.meta_path)
    assert cli.run_without_pandas(["-q", "build", "x"]) is False  # already imported: left alone
    monkeypatch.delitem(sys.modules, "pandas")
    assert cli.run_without_pandas(["-q", "publish", "--layout", "hf"]) is False  # `datasets` needs it
    assert sys.meta_path == finders
    monkeypatch.setattr(sys, "meta_path", list(finders))
    assert cli.run_without_pandas(["-v", "update", "--base", "b"]) is True
    with pytest.raises(ModuleNotFoundError, match="left out"):
        import pandas  # noqa: F401, F811
    monkeypatch.delitem(sys.modules, "pymongo", raising=False)
    with pytest.raises(ModuleNotFoundError, match="left out"):
        import pymongo  # noqa: F401 - Beam's MongoDB connector's driver, left out with pandas
    monkeypatch.delitem(sys.modules, "apache_beam.io.gcp.bigquery", raising=False)
    with pytest.raises(ModuleNotFoundError, match="left out"):
        import apache_beam.io.gcp.bigquery  # noqa: F401 - Beam's BigQuery connector: not on the local engine
    # a cluster run keeps it (pandas is left out all the same)
    monkeypatch.setattr(sys, "meta_path", list(finders))
    monkeypatch.delitem(sys.modules, "pandas", raising=False)
    assert cli.run_without_pandas(["update", "--runner=DataflowRunner", "--base", "b"]) is True
    import apache_beam.io.gcp.bigquery  # noqa: F401, F811


def _config(beam_args):
    class Config:
        workers = 1

    config = Config()
    config.beam_args = beam_args
    return config


@pytest.mark.parametrize(
    ("beam_args", "expected"),
    [
        ([], False),
        (["--pipeline_type_check"], True),
        (["--no_pipeline_type_check"], False),
        (["--runner", "DataflowRunner", "--project", "p"], False),
        (["--runner", "DataflowRunner", "--pipeline_type_check"], True),
    ],
)
def test_beams_type_check_is_off_unless_asked_for(beam_args, expected):
    options, _runner, _engine = pipeline_options(_config(beam_args))
    assert options.view_as(TypeOptions).pipeline_type_check is expected


def test_build_graph_passes_beams_type_check_when_asked(build, tmp_path, type_checked):
    checked = type_checked
    flags = ("--formats", "ndjson,parquet,text")
    code, _out, stderr = build([ENWIKI], tmp_path / "checked", *flags, "--pipeline_type_check")
    assert code == 0, stderr
    assert len(checked) > 20
    with_check = len(checked)
    code, _out, stderr = build([ENWIKI], tmp_path / "plain", *flags)
    assert code == 0, stderr
    assert len(checked) == with_check  # off by default
    tar = "enwiki_namespace_0.tar.gz"
    assert read_snapshot(tmp_path / "checked" / tar)[2] == read_snapshot(tmp_path / "plain" / tar)[2]


def test_the_program_freezes_its_imports_and_a_caller_is_left_alone(tmp_path, monkeypatch, capsys):
    # `wikisnap verify` of an empty folder fails fast, after the imports: enough to see the freeze
    gc.unfreeze()
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    try:
        cli.main(["verify", str(tmp_path)])
        assert gc.get_freeze_count() == 0  # called as a library: the caller's objects stay collectable
        assert "OPENBLAS_NUM_THREADS" not in os.environ  # nor its environment changed
        monkeypatch.setattr(sys, "argv", ["wikisnap", "verify", str(tmp_path)])
        cli.main()
        assert gc.get_freeze_count() > 1000  # the program's own run: Beam's modules and all
        assert gc.isenabled()  # paused during the imports only
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"  # for numpy's BLAS, which it never uses
    finally:
        gc.unfreeze()
        gc.enable()


def test_benchmarks_compile_wikisnap_as_pip_install_does():
    # benchmarks time an installed copy: modules compiled once, not at every run
    import importlib.util
    import os

    import wikisnap.pipelines.cli as module
    import wikisnap.transforms.update.rewrite as nested  # a sub-package's module too
    from benchmarks.run import compile_like_pip

    for source in (module.__file__, nested.__file__):
        cached = importlib.util.cache_from_source(source)
        if os.path.exists(cached):
            os.remove(cached)
    compile_like_pip()
    for source in (module.__file__, nested.__file__):
        with open(importlib.util.cache_from_source(source), "rb") as f:
            header = f.read(16)
        assert header[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(header[8:12], "little") == int(os.stat(source).st_mtime)  # fresh for this source


def test_in_process_bundles_sample_their_state_every_20_ms(build, tmp_path, monkeypatch):
    # Ending a bundle joins Beam's sampler thread, which sleeps up to its period (Beam: 200 ms)
    from apache_beam.runners.worker import statesampler

    from wikisnap.pipelines.engine import IN_PROCESS_SAMPLING_MS, prompt_state_sampler

    prompt_state_sampler()  # what the in-process engine does (idempotent)
    periods = []
    made = statesampler.StateSampler.__init__

    def spy(self, *args, **kwargs):
        made(self, *args, **kwargs)
        periods.append(self.sampling_period_ms)

    monkeypatch.setattr(statesampler.StateSampler, "__init__", spy)
    code, _out, stderr = build([ENWIKI], tmp_path / "out")
    assert code == 0, stderr
    assert periods and set(periods) == {IN_PROCESS_SAMPLING_MS} == {20}
    assert statesampler.StateSampler.__mro__[1].__init__.__defaults__ == (statesampler.DEFAULT_SAMPLING_PERIOD_MS,)


def test_bucket_writers_hand_freed_memory_back_before_and_between_members(build, tmp_path, monkeypatch):
    # The write phase's peak sits on top of whatever the read phase left in the allocator: the
    # writer hands it back when it starts and after each member (glibc's malloc_trim).
    from wikisnap.transforms import write
    from wikisnap.transforms.formats import spill

    assert spill._TRIM is not None  # glibc here: the trim really runs
    calls = []
    monkeypatch.setattr(write, "release_freed_memory", lambda: calls.append(1))
    code, _out, stderr = build([ENWIKI], tmp_path / "out", "--member-size-mb", "0.5")
    assert code == 0, stderr
    members = len(list((tmp_path / "out" / "parquet" / "enwiki_namespace_0").glob("*.parquet")))
    assert members >= 3 and len(calls) >= members + 1  # each bucket's start, each member's end


def test_dofn_specs_are_looked_up_once_per_class_with_beams_answers(monkeypatch):
    # Beam asks for a DoFn's state and timer specs ~5 times per ParDo and 3 times per bundle;
    # each answer took every method's signature (0.18 s of an update)
    import apache_beam as beam
    from apache_beam.coders import VarIntCoder
    from apache_beam.transforms import userstate
    from apache_beam.transforms.timeutil import TimeDomain
    from apache_beam.transforms.userstate import BagStateSpec, TimerSpec, on_timer

    from wikisnap.pipelines.engine import cached_dofn_specs
    from wikisnap.transforms.update.rewrite import _RewriteMemberFn
    from wikisnap.transforms.verify import _VerifyFn

    cached_dofn_specs()
    cached_dofn_specs()  # idempotent: one layer
    ask = userstate.get_dofn_specs
    assert ask.wikisnap_cached and not getattr(ask.beams, "wikisnap_cached", False)

    bag, timer = BagStateSpec("seen", VarIntCoder()), TimerSpec("flush", TimeDomain.WATERMARK)

    class Stateful(beam.DoFn):
        def process(self, element, seen=beam.DoFn.StateParam(bag), flush=beam.DoFn.TimerParam(timer)):
            seen.add(element)
            yield element

        @on_timer(timer)
        def flushed(self, seen=beam.DoFn.StateParam(bag)):
            yield from seen.read()

    class Holder:
        def emit(self, element, seen=beam.DoFn.StateParam(bag)):
            return [element]

    fns = [
        Stateful(),
        Stateful(),
        _VerifyFn(),
        _RewriteMemberFn(None),
        beam.Map(len).fn,  # a plain function as its own `process`: passed over by Beam
        beam.Map(lambda x: x).fn,
        beam.FlatMap(Holder().emit).fn,  # a bound method of its own: asked each time
    ]
    answers = [(ask.beams(fn), ask(fn)) for fn in fns]
    for beams, cached in answers:
        assert cached == beams
    assert answers[0][1] == ({bag}, {timer}) and answers[2][1] == (set(), set())
    assert answers[6][1] == ({bag}, set())  # the bound method's own defaults
    answers[0][1][0].clear()  # a caller's set is its own
    assert ask(Stateful()) == ({bag}, {timer})

    # what is asked of Beam, through a fresh cache: once per class (both plain-function Maps are
    # one wrapper class), the DoFn holding a bound method every time
    calls = []

    def counted(fn):
        calls.append(type(fn).__name__)
        return ask.beams(fn)

    monkeypatch.setattr(userstate, "get_dofn_specs", counted)
    cached_dofn_specs()
    for fn in fns + fns:
        assert userstate.get_dofn_specs(fn) == ask.beams(fn)
    wrappers = ["CallableWrapperDoFn"] * 3
    assert sorted(calls) == sorted(["Stateful", "_VerifyFn", "_RewriteMemberFn", *wrappers])


def test_an_options_view_is_made_once_per_class_and_shares_the_values(monkeypatch):
    # building a graph asked for a fresh TypeOptions view twice per step (230 parsers, 0.07 s)
    import copy
    import pickle

    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

    from wikisnap.pipelines.engine import kept_option_views

    monkeypatch.setattr(PipelineOptions, "view_as", PipelineOptions.view_as)  # Beam's own again after
    kept_option_views()
    kept_option_views()  # idempotent: one layer
    assert PipelineOptions.view_as.wikisnap_kept
    made = []
    init = PipelineOptions.__init__

    def counted(self, *args, **kwargs):
        made.append(type(self).__name__)
        init(self, *args, **kwargs)

    monkeypatch.setattr(PipelineOptions, "__init__", counted)
    options = PipelineOptions(["--direct_num_workers", "3"])
    views = [options.view_as(TypeOptions) for _ in range(5)]
    assert all(v is views[0] for v in views) and made == ["PipelineOptions", "TypeOptions"]
    # values live in the options, shared by every view: a kept view sees a change made through another
    direct = options.view_as(DirectOptions)
    assert direct.direct_num_workers == 3
    views[0].pipeline_type_check = False
    assert options.view_as(TypeOptions).pipeline_type_check is False
    direct.direct_running_mode = "in_memory"
    assert options.view_as(DirectOptions).direct_running_mode == "in_memory"
    assert options.get_all_options()["direct_running_mode"] == "in_memory"
    # a copy (Beam's Pipeline deep-copies its options) has views of its own values
    twin = copy.deepcopy(options)
    twin.view_as(DirectOptions).direct_num_workers = 5
    assert options.view_as(DirectOptions).direct_num_workers == 3
    assert twin.view_as(DirectOptions).direct_num_workers == 5
    assert twin.view_as(TypeOptions).pipeline_type_check is False
    assert pickle.loads(pickle.dumps(twin)).view_as(DirectOptions).direct_num_workers == 5
    # options whose values were replaced get a view of the new ones
    options._all_options = dict(options._all_options, direct_num_workers=7)
    assert options.view_as(DirectOptions).direct_num_workers == 7
