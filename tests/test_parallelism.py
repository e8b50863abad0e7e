"""Work sized by the run's parallelism: the workers a runner offers (`parallelism`), the byte
ranges planned for them (`range_target`), the partitions of a spilled join (`partitions_for`),
and the same bytes however many of each there are."""

from __future__ import annotations

import json
import logging

import pytest
from test_multistream import outputs
from test_prism import STUBS, enwiki_sql_dumps

from conftest import ELWIKIVOYAGE, ENWIKI, MULTISTREAM
from wikisnap.pipelines import build as build_module
from wikisnap.pipelines import engine
from wikisnap.pipelines.engine import parallelism
from wikisnap.pipelines.inputs import MIN_UNIT_BYTES, discover_units, range_target
from wikisnap.pipelines.options import BuildConfig
from wikisnap.transforms.spilljoin import MAX_PARTITIONS, PARTITIONS, partitions_for

MULTI = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-multistream-p2566p2583.xml.bz2"
MB = 1_000_000


@pytest.fixture()
def eight_cores(monkeypatch):
    """This machine has 8 cores, for the rules that read them."""
    monkeypatch.setattr(engine, "machine_cores", lambda: 8)


def config(*beam_args: str, workers: int = 1, unit_mb: float = 64.0) -> BuildConfig:
    return BuildConfig(inputs=[], out="unused", workers=workers, unit_mb=unit_mb, beam_args=list(beam_args))


@pytest.mark.parametrize(
    ("beam_args", "workers", "expected", "why"),
    [
        ((), 1, 1, "--workers 1"),
        ((), 4, 4, "--workers 4"),
        ((), 64, 32, "--workers 32"),  # capped as local_workers caps it: 4 × 8 cores
        (("--runner", "DirectRunner"), 3, 3, "--workers 3"),
        (("--runner", "FlinkRunner", "--parallelism", "16"), 1, 16, "--parallelism 16"),
        (("--runner=FlinkRunner", "--parallelism=6"), 4, 6, "--parallelism 6"),  # --workers is local only
        (("--runner", "FlinkRunner", "--flink_master", "[local]"), 4, 1, "unknown for --runner FlinkRunner"),
        (("--runner", "PrismRunner"), 1, 8, "Prism on 8 core(s)"),
        (("--runner", "PrismRunner", "--parallelism", "3"), 1, 3, "--parallelism 3"),
        (("--runner", "DataflowRunner", "--max_num_workers", "16", "--machine_type", "n2-standard-4"), 1, 64, "16 × 4"),
        (("--runner", "DataflowRunner", "--num_workers", "5"), 1, 5, "--num_workers 5 × 1 vCPU"),
        (
            ("--runner", "DataflowRunner", "--num_workers", "2", "--max_num_workers", "10"),
            1,
            10,
            "--max_num_workers 10",
        ),
        (("--runner", "DataflowRunner", "--max_num_workers=3", "--worker_machine_type=custom-8-32768"), 1, 24, "× 8"),
        (("--runner", "DataflowRunner", "--max_num_workers", "3", "--machine_type", "e2-medium"), 1, 3, "× 1 vCPU"),
        (("--runner", "DataflowRunner"), 1, 1, "unknown for --runner DataflowRunner (pass --parallelism N)"),
        (("--runner", "SparkRunner", "--spark_master_url", "local[6]"), 1, 6, "local[6]"),
        (("--runner", "SparkRunner", "--spark_master_url", "local[*]"), 1, 8, "local[*]"),
        (("--runner", "SparkRunner", "--spark_master_url", "local"), 1, 1, "--spark_master_url local"),
        (("--runner", "SparkRunner", "--spark_master_url", "spark://m:7077"), 1, 1, "unknown"),
        (("--runner", "PortableRunner", "--job_endpoint", "localhost:8099"), 1, 1, "unknown"),
    ],
)
def test_parallelism_follows_the_runner_flags(eight_cores, beam_args, workers, expected, why):
    found, said = parallelism(config(*beam_args, workers=workers))
    assert found == expected and why in said, said


def test_range_target_is_about_four_per_worker_between_the_floor_and_unit_mb():
    cfg = config()
    assert range_target(10_000 * MB, cfg, 1) == 64 * MB  # --unit-mb caps a range
    assert range_target(100 * MB, cfg, 1) == 25 * MB  # 4 ranges for 1 worker
    assert range_target(100 * MB, cfg, 2) == 12_500_000  # 8 for 2
    assert range_target(100 * MB, cfg, 64) == MIN_UNIT_BYTES == 8 * MB  # never below the floor
    assert range_target(1 * MB, cfg, 1) == 8 * MB  # a small file is one range
    # --unit-mb below 64 lowers the floor to an eighth of it (tests, small inputs)
    assert range_target(1 * MB, config(unit_mb=0.8), 1) == 250_000
    assert range_target(1 * MB, config(unit_mb=0.8), 100) == 100_000
    # more workers, more (smaller) ranges, until the floor
    sizes = [range_target(1000 * MB, cfg, p) for p in (1, 2, 4, 8, 16, 32, 64)]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 64 * MB and sizes[-1] == 8 * MB


def test_partitions_follow_the_workers_within_bounds():
    assert [partitions_for(w) for w in (1, 2, 8, 9, 16, 24, 64, 100, 5000)] == [16, 16, 16, 32, 32, 64, 128, 256, 256]
    assert partitions_for(1) == PARTITIONS and partitions_for(10**6) == MAX_PARTITIONS


def test_ranges_planned_follow_the_parallelism_and_say_why(eight_cores, caplog):
    caplog.set_level(logging.INFO, logger="wikisnap")

    def ranges(*beam_args: str, workers: int = 1) -> int:
        cfg = BuildConfig(inputs=[str(MULTI)], out="unused", workers=workers, unit_mb=0.005, beam_args=list(beam_args))
        return len(discover_units(cfg))

    assert ranges() == 3 and "3 ranges of whole bz2 streams" in caplog.text
    assert "for 1 parallel worker(s) (--workers 1)" in caplog.text
    assert ranges(workers=2) == 4 and "for 2 parallel worker(s) (--workers 2)" in caplog.text
    assert ranges("--runner", "FlinkRunner", "--parallelism", "2") == 4
    assert "for 2 parallel worker(s) (--parallelism 2)" in caplog.text
    caplog.clear()
    enwiki = BuildConfig(inputs=[str(ENWIKI)], out="unused", unit_mb=1.6, beam_args=["--runner", "PrismRunner"])
    assert len(discover_units(enwiki)) == 7
    assert "7 ranges of whole bz2 blocks, for 8 parallel worker(s) (Prism on 8 core(s))" in caplog.text


def test_more_workers_plan_more_ranges_and_give_the_same_bytes(build, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert build([MULTI], one, "--unit-mb", "0.005")[0] == 0
    code, _, err = build([MULTI], two, "--unit-mb", "0.005", "--workers", "2")
    assert code == 0, err
    units = [json.loads((d / "manifest.json").read_text())["inputs"][0]["units"] for d in (one, two)]
    assert units == [3, 4]
    assert outputs(one) == outputs(two) and outputs(one)


def test_direct_num_workers_is_refused_for_workers(build, tmp_path):
    code, _, err = build([MULTI], tmp_path / "o", "--direct_num_workers", "4")
    assert code == 2 and "--direct_num_workers is refused" in err and "use --workers N" in err


@pytest.mark.parametrize("joined", ["sql-tables", "stub-history"])
def test_the_partitions_of_the_joins_do_not_change_the_bytes(build, tmp_path, monkeypatch, joined):
    """Redirects, SQL tables and a stub history joined in 16 (the default here), 1 and 64 partitions:
    the same files."""
    inputs = [ENWIKI, *enwiki_sql_dumps(tmp_path)] if joined == "sql-tables" else [ELWIKIVOYAGE, STUBS]
    code, _, err = build(inputs, tmp_path / "p16")
    assert code == 0, err
    for partitions in (1, 64):
        used: list[int] = []
        monkeypatch.setattr(
            build_module, "partitions_for", lambda workers, n=partitions, seen=used: seen.append(n) or n
        )
        code, _, err = build(inputs, tmp_path / f"p{partitions}")
        assert code == 0, err
        assert used and set(used) == {partitions}
        assert outputs(tmp_path / f"p{partitions}") == outputs(tmp_path / "p16"), partitions
    counts = next(iter(json.loads((tmp_path / "p64" / "manifest.json").read_text())["counts"].values()))
    key = "enrich/categorylinks/rows_used" if joined == "sql-tables" else "history/pages_joined"
    assert counts[key] == (6 if joined == "sql-tables" else 2)
