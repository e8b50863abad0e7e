"""`wikisnap sync`: a dumps mirror served over HTTP on 127.0.0.1, built from the real enwiki histories of
"Pear" and "Pyrus" (tests/data/history, pywikibot): full dump runs hold the state of a date
(the newest revision up to it, as pages-articles does), daily adds-changes dumps hold the revisions of
their day, with real-format dumpstatus.json, md5sums, status.txt and maxrevid.txt files.

Pyrus's history: 2007-02-02 a redirect (twice), 2008-02-07 and 2008-02-10 an article, 2008-09-13
edited, 2008-09-14 a redirect to Pear again. The mirror moves through stages, as a real one does:

    1  run 20080201 done, run 20080915 in progress          → build 20080201, publish
    2  (unchanged)                                          → nothing to do
    3  incr 20080207 done (first with a wrong md5), 20080210 in progress → apply 20080207 only
    4  incr 20080210 done                                   → apply it
    5  run 20080915 done (first with a wrong md5)           → build it: it replaces the chain

The reference sequence runs in-process; the kill sequence runs real `wikisnap sync` processes and is
killed while building, while publishing and between a commit and its ledger entry; both publish to a
mirror folder, and the two trees must be equal byte for byte.
"""

from __future__ import annotations

import base64
import bz2
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import tarfile
import time
from pathlib import Path

import pytest
from httpserver import LoopbackServer
from lxml import etree
from test_outputs import kill_at, run_cli, start

from conftest import DATA, published

PEAR = DATA / "history" / "pywikibot__article-pear.xml"
PYRUS = DATA / "history" / "pywikibot__article-pyrus.xml"
PEAR_2014 = DATA / "history" / "pywikibot__article-pear-0.10.xml"  # Pear's revision of 2014-12-17
DB = "enwiki"


# -- the mirror --------------------------------------------------------------------------------------------


def _pages(source: Path):
    tree = etree.parse(str(source))
    return tree, list(tree.getroot().iterfind("{*}page"))


def state_at(source: Path, date: str) -> bytes:
    """The page as a pages-articles dump of `date` holds it: only its newest revision up to that day."""
    tree, pages = _pages(source)
    for page in pages:
        revisions = page.findall("{*}revision")
        kept = [r for r in revisions if r.findtext("{*}timestamp")[:10].replace("-", "") <= date]
        for rev in revisions:
            if rev is not kept[-1]:
                page.remove(rev)
    return etree.tostring(tree, xml_declaration=True, encoding="utf-8")


def day_of(source: Path, date: str) -> bytes:
    """An adds-changes dump of `date`: the revisions made that day (pages without any are left out)."""
    tree, pages = _pages(source)
    for page in pages:
        for rev in page.findall("{*}revision"):
            if rev.findtext("{*}timestamp")[:10].replace("-", "") != date:
                page.remove(rev)
        if not page.findall("{*}revision"):
            tree.getroot().remove(page)
    return etree.tostring(tree, xml_declaration=True, encoding="utf-8")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_full_run(mirror: Path, date: str, status: str = "done", wrong_md5: bool = False) -> None:
    """`{db}/{date}/`: two split pages-articles parts (Pear, Pyrus), dumpstatus.json and checksum files."""
    run = mirror / DB / date
    if run.exists():
        shutil.rmtree(run)
    pear = PEAR_2014 if date >= "20141217" else PEAR
    parts = {
        f"{DB}-{date}-pages-articles1.xml-p24278p24278.bz2": bz2.compress(state_at(pear, date)),
        f"{DB}-{date}-pages-articles2.xml-p9261472p9261472.bz2": bz2.compress(state_at(PYRUS, date)),
    }
    files = {}
    for name, data in parts.items():
        if status != "done":
            data = data[: len(data) // 2]  # still being written
        _write(run / name, data)
        md5 = hashlib.md5(data).hexdigest()
        if wrong_md5 and "articles2" in name:
            md5 = hashlib.md5(b"not these bytes").hexdigest()
        files[name] = {"size": len(data), "url": f"/{DB}/{date}/{name}"}
        if status == "done":
            files[name] |= {"md5": md5, "sha1": hashlib.sha1(data).hexdigest()}
    jobs = {
        "articlesdump": {"status": status, "updated": f"{date[:4]}-{date[4:6]}-{date[6:]} 12:00:00", "files": files},
        "metahistorybz2dump": {"status": "waiting", "updated": "", "files": {}},
    }
    _write(run / "dumpstatus.json", json.dumps({"jobs": jobs, "version": "0.8"}).encode())
    if status == "done":
        for kind in ("md5", "sha1"):
            lines = "".join(f"{f[kind]}  {n}\n" for n, f in sorted(files.items()))
            _write(run / f"{DB}-{date}-{kind}sums.txt", lines.encode())


def write_incr_day(mirror: Path, date: str, status: str = "done", wrong_md5: bool = False) -> None:
    """`other/incr/{db}/{date}/`: the day's adds-changes dump with status.txt, maxrevid.txt, md5sums.txt."""
    day = mirror / "other" / "incr" / DB / date
    if day.exists():
        shutil.rmtree(day)
    xml = next(x for x in (day_of(src, date) for src in (PEAR, PYRUS, PEAR_2014)) if b"<revision>" in x)
    data = bz2.compress(xml)
    name = f"{DB}-{date}-pages-meta-hist-incr.xml.bz2"
    if status != "done":
        _write(day / name, data[: len(data) // 3])
        _write(day / "status.txt", b"in-progress\n")
        return
    _write(day / name, data)
    md5 = hashlib.md5(b"something else" if wrong_md5 else data).hexdigest()
    _write(day / "md5sums.txt", f"{md5}  {name}\n".encode())
    _write(day / "maxrevid.txt", (max(re.findall(rb"<revision>\s*<id>(\d+)</id>", xml), key=int) + b"\n"))
    _write(day / "status.txt", b"done\n")


def stage(mirror: Path, n: int, *, wrong: bool = False) -> None:
    """Bring the mirror to stage `n` (see the module doc); `wrong`: that stage's new file fails its md5."""
    if n == 1:
        if mirror.exists():
            shutil.rmtree(mirror)
        write_full_run(mirror, "20080201")
        write_full_run(mirror, "20080915", status="in-progress")
    elif n == 3:
        write_incr_day(mirror, "20080207", wrong_md5=wrong)
        write_incr_day(mirror, "20080210", status="in-progress")
    elif n == 4:
        write_incr_day(mirror, "20080210")
    elif n == 5:
        write_full_run(mirror, "20080915", wrong_md5=wrong)
    elif n == 6:
        write_incr_day(mirror, "20141217")
    elif n == 7:
        write_full_run(mirror, "20141217")


def write_config(path: Path, mirror_url: str, work: Path, dest: Path, hf: Path | None = None, **extra) -> Path:
    lines = [
        f'mirror = "{mirror_url}"',
        f'work = "{work}"',
        f'wikis = ["{DB}"]',
        "enrichment = []",
        'formats = ["ndjson", "parquet"]',
        "keep_snapshots = 2",
        *[f"{k} = {json.dumps(v)}" for k, v in extra.items()],
        "[[publish]]",
        'layout = "mirror"',
        f'to = "{dest}"',
        "keep = 3",
    ]
    if hf is not None:
        lines += ["[[publish]]", 'layout = "hf"', f'to = "{hf}/{{db}}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def sync_in_process(config: Path, *flags: str) -> tuple[int, str, str]:
    from wikisnap.pipelines.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["-q", "sync", "--config", str(config), *flags])
    return code, stdout.getvalue(), stderr.getvalue()


def published_records(tree: dict, date: str) -> list[dict]:
    """The records of the enwiki namespace-0 tarball of a published run."""
    data = tree[f"runs/{date}/enwiki-NS0-{date}-WIKISNAP-WIKITEXT.json.tar.gz"]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return [json.loads(line) for m in tar.getmembers() for line in tar.extractfile(m).read().splitlines()]


def ledger(work: Path) -> dict:
    return json.loads((work / DB / "ledger.json").read_text())


# -- the reference sequence --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One loopback server over a folder whose `mirror/` the tests move through the stages."""
    root = tmp_path_factory.mktemp("sync")
    (root / "mirror").mkdir()
    with LoopbackServer(root) as server:
        yield root, server.url("mirror")


@pytest.fixture(scope="module")
def reference(world):
    """The uninterrupted sequence, stage by stage: (exit code, stdout, stderr, ledger, published tree) each."""
    root, url = world
    mirror, work, dest = root / "mirror", root / "ref-work", root / "ref-dest"
    config = write_config(root / "ref.toml", url, work, dest, hf=root / "ref-hf")
    results = {}

    def step(name):
        code, out, err = sync_in_process(config)
        results[name] = {
            "code": code,
            "out": out,
            "err": err,
            "ledger": (work / DB / "ledger.json").read_bytes() if (work / DB / "ledger.json").exists() else b"",
            "tree": published(dest),
            "downloads": sorted(p.name for p in (work / DB / "incr").rglob("*") if p.is_file()),
            "folders": sorted(p.name for p in (work / DB / "snapshots").iterdir()),
            "hf": json.loads((root / "ref-hf" / DB / "manifest.json").read_text())
            if (root / "ref-hf" / DB / "manifest.json").exists()
            else None,
        }

    stage(mirror, 1)
    step("1-build")
    step("2-again")
    stage(mirror, 3, wrong=True)
    step("3-wrong-md5")
    stage(mirror, 3)
    step("3-incr")
    step("3-not-ready")
    stage(mirror, 4)
    step("4-incr")
    stage(mirror, 5, wrong=True)
    step("5-wrong-md5")
    stage(mirror, 5)
    step("5-full")
    step("5-again")
    stage(mirror, 6)
    step("6-incr")
    stage(mirror, 7)
    step("7-full-same-date")
    return {"results": results, "work": work, "dest": dest, "config": config, "hf": root / "ref-hf" / DB}


def test_first_sync_builds_and_publishes_the_newest_complete_run(reference):
    r = reference["results"]["1-build"]
    assert r["code"] == 0, r["err"]
    assert "built 20080201" in r["out"] and "published 20080201" in r["out"]
    runs = sorted({k.split("/")[1] for k in r["tree"] if k.startswith("runs/")})
    assert runs == ["20080201"]  # 20080915 is still in progress
    assert r["tree"]["latest"] == "-> runs/20080201"
    status = json.loads(r["tree"]["runs/20080201/dumpstatus.json"])
    assert status["jobs"]["wikisnap"]["status"] == "done"
    entry = json.loads(r["ledger"])["snapshots"][0]
    assert entry["id"] == "20080201" and entry["kind"] == "full"
    # built from the run's two parts, each verified against its checksum
    assert [i["url"].rsplit("/", 1)[1] for i in entry["inputs"]] == [
        "enwiki-20080201-pages-articles1.xml-p24278p24278.bz2",
        "enwiki-20080201-pages-articles2.xml-p9261472p9261472.bz2",
    ]
    assert all(i["verified"] and len(i["md5"]) == 32 for i in entry["inputs"])
    # Pear is an article, Pyrus a redirect to it on 2008-02-01
    records = published_records(r["tree"], "20080201")
    assert [(x["name"], [d["name"] for d in x.get("redirects", [])]) for x in records] == [("Pear", ["Pyrus"])]


def test_second_sync_has_nothing_to_do(reference):
    first, again = reference["results"]["1-build"], reference["results"]["2-again"]
    assert again["code"] == 99, again["err"]
    assert again["out"].startswith("wikisnap sync: nothing new upstream for enwiki")
    assert len(again["out"].strip().splitlines()) == 1
    assert again["ledger"] == first["ledger"] and again["tree"] == first["tree"]


def test_a_wrong_checksum_upstream_publishes_nothing_and_keeps_the_ledger(reference):
    before, wrong = reference["results"]["2-again"], reference["results"]["3-wrong-md5"]
    assert wrong["code"] == 2
    assert "checksum mismatch" in wrong["err"] and "enwiki-20080207-pages-meta-hist-incr.xml.bz2" in wrong["err"]
    assert "Traceback" not in wrong["err"]
    assert wrong["ledger"] == before["ledger"]
    assert wrong["tree"] == before["tree"]
    assert wrong["downloads"] == []  # the bad download was not kept
    wrong_full = reference["results"]["5-wrong-md5"]
    assert wrong_full["code"] == 2 and "checksum mismatch" in wrong_full["err"], wrong_full["err"]
    assert "pages-articles2" in wrong_full["err"]
    assert wrong_full["ledger"] == reference["results"]["4-incr"]["ledger"]
    assert wrong_full["tree"] == reference["results"]["4-incr"]["tree"]


def test_a_new_complete_day_is_applied_and_an_incomplete_one_left_alone(reference):
    r = reference["results"]["3-incr"]
    assert r["code"] == 0, r["err"]
    book = json.loads(r["ledger"])
    assert [s["id"] for s in book["snapshots"]] == ["20080201", "20080201-incr-20080207"]
    incr = book["snapshots"][1]
    assert incr["base"] == "20080201" and incr["inputs"][0]["maxrevid"] == "189729426"
    assert incr["counts"]["created"] == 1  # Pyrus became an article
    assert sorted({k.split("/")[1] for k in r["tree"] if k.startswith("runs/")}) == ["20080201", "20080207"]
    assert r["tree"]["latest"] == "-> runs/20080207"
    # the day's hourly batch is published with the run
    assert r["tree"]["runs/20080207/batches/2008-02-07/14/enwiki_namespace_0.tar.gz"]
    records = published_records(r["tree"], "20080207")
    assert sorted(x["name"] for x in records) == ["Pear", "Pyrus"]
    # 20080210 is in progress: the next sync says so with the "not ready" code and changes nothing
    waiting = reference["results"]["3-not-ready"]
    assert waiting["code"] == 69, waiting["err"]
    assert "upstream not ready" in waiting["out"] and "other/incr/enwiki/20080210" in waiting["out"]
    assert waiting["ledger"] == r["ledger"] and waiting["tree"] == r["tree"]
    # once complete, exactly that day is applied
    r4 = reference["results"]["4-incr"]
    assert r4["code"] == 0, r4["err"]
    ids = [s["id"] for s in json.loads(r4["ledger"])["snapshots"]]
    assert ids == ["20080201", "20080201-incr-20080207", "20080201-incr-20080210"]
    assert "applied 20080201-incr-20080210" in r4["out"] and "20080207" not in r4["out"].replace("incr-20080210", "")


def test_a_newer_complete_full_run_replaces_the_chain(reference):
    r = reference["results"]["5-full"]
    assert r["code"] == 0, r["err"]
    book = json.loads(r["ledger"])
    assert [s["id"] for s in book["snapshots"]][-1] == "20080915"
    head = book["snapshots"][-1]
    assert head["kind"] == "full" and head["base"] is None
    # Pyrus turned into a redirect to Pear again
    records = published_records(r["tree"], "20080915")
    assert [(x["name"], [d["name"] for d in x.get("redirects", [])]) for x in records] == [("Pear", ["Pyrus"])]
    assert (
        head["namespaces"]["0"]["md5"]
        == hashlib.md5(r["tree"]["runs/20080915/enwiki-NS0-20080915-WIKISNAP-WIKITEXT.json.tar.gz"]).hexdigest()
    )
    runs = sorted({k.split("/")[1] for k in r["tree"] if k.startswith("runs/")})
    assert runs == ["20080207", "20080210", "20080915"]  # keep = 3 at the mirror
    assert r["tree"]["latest"] == "-> runs/20080915"
    # keep_snapshots = 2 in the work folder: older snapshot folders are gone, the ledger remembers them
    live = [s["id"] for s in book["snapshots"] if not s.get("removed")]
    assert live == ["20080201-incr-20080210", "20080915"]
    assert r["folders"] == live
    again = reference["results"]["5-again"]
    assert again["code"] == 99 and again["tree"] == r["tree"]


def test_days_after_a_full_run_are_applied_to_it_and_a_published_date_is_never_rewritten(reference):
    r6 = reference["results"]["6-incr"]
    assert r6["code"] == 0, r6["err"]
    book = json.loads(r6["ledger"])
    assert book["snapshots"][-1]["id"] == "20080915-incr-20141217" and book["snapshots"][-1]["base"] == "20080915"
    assert sorted({k.split("/")[1] for k in r6["tree"] if k.startswith("runs/")}) == [
        "20080210",
        "20080915",
        "20141217",
    ]
    assert "runs/20141217/batches/2014-12-17/21/enwiki_namespace_0.tar.gz" in r6["tree"]
    assert [x["version"]["identifier"] for x in published_records(r6["tree"], "20141217")] == [638548877]
    # A full run of the same date: built (it starts the next chain) but not published over runs/20141217.
    r7 = reference["results"]["7-full-same-date"]
    assert r7["code"] == 0, r7["err"]
    book = json.loads(r7["ledger"])
    assert book["snapshots"][-1]["id"] == "20141217" and book["snapshots"][-1]["kind"] == "full"
    mirror_key = next(k for k in book["published"] if k.startswith("mirror:"))
    assert book["published"][mirror_key]["20141217"] == {
        "skipped": "runs/20141217 was published from 20080915-incr-20141217"
    }
    assert r7["tree"] == r6["tree"]


def test_the_hf_target_follows_the_current_snapshot(reference):
    results = reference["results"]
    book = json.loads(results["7-full-same-date"]["ledger"])
    for name, head in (("1-build", "20080201"), ("3-incr", "20080201-incr-20080207"), ("7-full-same-date", "20141217")):
        hf = results[name]["hf"]
        assert hf["layout"] == "hf" and hf["snapshot"].endswith(f"/snapshots/{head}"), (name, hf["snapshot"])
        entry = next(s for s in book["snapshots"] if s["id"] == head)
        tarball = next(o for o in hf["snapshot_outputs"] if o["path"] == "enwiki_namespace_0.tar.gz")
        assert tarball["md5"] == entry["namespaces"]["0"]["md5"]
        assert "hf:" + str(reference["hf"]) in book["published"]
    assert "pretty_name: wikisnap snapshot enwiki 20141217" in (reference["hf"] / "README.md").read_text()


def test_published_runs_verify(reference):
    from wikisnap.pipelines.publish import verify_folder

    runs = sorted((reference["dest"] / "runs").iterdir())
    assert len(runs) == 3
    for run in runs:
        assert verify_folder(str(run)) == []
        sums = run / "batches" / "md5sums.txt"
        for line in sums.read_text().splitlines() if sums.exists() else []:
            md5, name = line.split("  ")
            assert hashlib.md5((run / "batches" / name).read_bytes()).hexdigest() == md5


def test_a_local_mirror_folder_works_the_same(tmp_path):
    """`mirror` may be a folder (a mounted or rsynced copy); relative paths are relative to the config."""
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "sync.toml"
    config.write_text(
        'mirror = "../mirror"\nwork = "../work"\nwikis = ["enwiki"]\nenrichment = []\n[[publish]]\nto = "../dest"\n'
    )
    # No run complete yet: nothing to build on, a temporary condition
    write_full_run(tmp_path / "mirror", "20080201", status="in-progress")
    code, out, err = sync_in_process(config)
    assert code == 69, err
    assert "upstream not ready" in out and "enwiki/20080201" in out and "not finished" in out
    assert not (tmp_path / "work" / DB / "ledger.json").exists() and not (tmp_path / "dest").exists()
    # A wiki the mirror does not have is a config mistake
    bad = tmp_path / "etc" / "bad.toml"
    bad.write_text(config.read_text().replace('"enwiki"', '"enwikk"'))
    code, out, err = sync_in_process(bad)
    assert code == 2 and "no dump runs of enwikk" in err
    stage(tmp_path / "mirror", 1)
    code, out, err = sync_in_process(config)
    assert code == 0, err
    assert (tmp_path / "dest" / "runs" / "20080201" / "dumpstatus.json").exists()
    assert ledger(tmp_path / "work")["snapshots"][0]["inputs"][0]["url"].startswith(str(tmp_path / "mirror"))
    reports = sorted((tmp_path / "work" / "reports").iterdir())
    assert "report file://" + str(reports[-1].with_suffix(".html")) in out  # the log line links the page
    code, out, err = sync_in_process(config, "--no-report")
    assert code == 99, err
    assert sorted((tmp_path / "work" / "reports").iterdir()) == reports


def test_exit_codes_of_several_wikis_combine():
    from wikisnap.pipelines.sync import combine

    assert combine([99, 99]) == 99
    assert combine([0, 99]) == 0
    assert combine([69, 99]) == 69
    assert combine([0, 69]) == 0
    assert combine([0, 2, 69]) == 2
    assert combine([2, 1, 0]) == 1


def test_run_reports_are_json_and_self_contained_html(reference):
    reports = sorted((reference["work"] / "reports").glob("sync-*.json"))
    assert len(reports) >= 3
    found = {}
    for path in reports:
        report = json.loads(path.read_text())
        html = path.with_suffix(".html").read_text()
        found[report["outcome"]] = (report, html)
        assert "http://" not in html.replace(report["mirror"], "") and "<script" not in html
    report, html = max((v for k, v in found.items() if k == "done"), key=lambda rh: len(rh[0]["steps"]))
    kinds = [s["kind"] for s in report["steps"]]
    assert {"update", "publish"} <= set(kinds) or {"build", "publish"} <= set(kinds)
    for s in report["steps"]:
        assert s["seconds"] >= 0 and "started" in s
    work_steps = [s for s in report["steps"] if s["kind"] in ("build", "update")]
    assert all(s["input_bytes"] > 0 and s["bytes_per_second"] > 0 and s["records"] > 0 for s in work_steps)
    failed = found["bad config or input"][0]
    assert failed["exit_code"] == 2 and [s["kind"] for s in failed["steps"]] == ["failed"]
    assert "checksum mismatch" in failed["steps"][0]["detail"]
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert images and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    # the run that applied 20080210 draws all three plots (two incremental days in the ledger by then)
    last_incr = next(
        h
        for p in reports
        for r, h in [(json.loads(p.read_text()), p.with_suffix(".html").read_text())]
        if any(s["target"] == "20080201-incr-20080210" and s["kind"] == "update" for s in r["steps"])
    )
    assert last_incr.count("data:image/png;base64,") == 3
    assert "Changes applied per day" in last_incr
    assert found["nothing to do"][0]["exit_code"] == 99


# -- crashes, kills and the lock ---------------------------------------------------------------------------


def wait_reached(proc, faults_dir: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list(faults_dir.glob("*.reached")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_killed_syncs_resume_to_the_same_published_tree_and_the_lock_holds(world, reference, tmp_path):
    root, url = world
    mirror = root / "mirror"
    work, dest = tmp_path / "work", tmp_path / "dest"
    config = write_config(tmp_path / "sync.toml", url, work, dest)
    args = ["sync", "--config", config]
    faults = tmp_path / "faults"

    stage(mirror, 1)
    # killed while the first build writes its tarball; meanwhile a second sync finds the lock held
    first = start(args, fault="pause:write:tarball:*", faults_dir=faults)
    try:
        wait_reached(first, faults)
        code, _out, err = run_cli(args)
        assert code == 75, err
        assert f"pid {first.pid}" in err and "another sync holds" in err
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    for marker in faults.glob("*.reached"):
        marker.unlink()
    assert not (dest / "runs").exists() and not (work / DB / "ledger.json").exists()
    code, out, err = run_cli(args)
    assert code == 0, err
    assert "built 20080201" in out
    # the killed build's staging folder was cleared by the build that followed
    assert not list((work / DB / "snapshots" / "20080201" / ".wikisnap").rglob("*.tar.gz"))

    stage(mirror, 3)
    # killed after copying the new run's tarball, before its dumpstatus.json says done
    kill_at(args, "publish-mirror:copied:*WIKITEXT.json.tar.gz", faults)
    assert (
        json.loads((dest / "runs/20080207/dumpstatus.json").read_text())["jobs"]["wikisnap"]["status"] == "in-progress"
    )
    assert os.readlink(dest / "latest") == "runs/20080201"
    code, out, err = run_cli(args)
    assert code == 0, err
    assert "published 20080201-incr-20080207" in out and "applied" not in out  # not applied twice

    stage(mirror, 4)
    # killed after the update committed, before the ledger knew: the next sync adopts it, no rerun
    kill_at(args, "sync:committed:*", faults)
    assert [s["id"] for s in ledger(work)["snapshots"]][-1] == "20080201-incr-20080207"
    code, out, err = run_cli(args)
    assert code == 0, err
    report = json.loads(sorted((work / "reports").glob("sync-*.json"))[-1].read_text())
    assert [s["kind"] for s in report["steps"]][:2] == ["adopt", "publish"]

    stage(mirror, 5)
    code, out, err = run_cli(args)
    assert code == 0, err

    assert published(dest) == reference["results"]["5-full"]["tree"]

    # the same snapshots, from the same inputs, with the same bytes
    def chain(book):
        return [(s["id"], [i["md5"] for i in s["inputs"]], s["namespaces"]) for s in book["snapshots"]]

    assert chain(ledger(work)) == chain(json.loads(reference["results"]["5-full"]["ledger"]))


def test_config_errors_name_the_key(tmp_path):
    cases = {
        'mirror = "x"\nwork = "w"\n': "`wikis` is required",
        'mirror = "x"\nwork = "w"\nwikis = "enwiki"\n': "`wikis` must be a list",
        'mirror = "x"\nwork = "w"\nwikis = ["enwiki"]\nkeeep = 2\n': "unknown key `keeep`",
        'mirror = "x"\nwork = "w"\nwikis = ["enwiki"]\nenrichment = ["pages"]\n': "`enrichment` item 'pages'",
        'mirror = "x"\nwork = "w"\nwikis = ["enwiki"]\n[[publish]]\nlayout = "ftp"\nto = "d"\n': "`layout` must be",
        'mirror = "x"\nwork = "w"\nwikis = ["enwiki"]\nworkers = 0\n': "`workers` must be ≥ 1",
        'mirror = "x"\nwork = "s3://b/w"\nwikis = ["enwiki"]\n': "`work` must be a local folder",
        "mirror = [": "not valid TOML",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.toml"
        path.write_text(text)
        code, _out, err = sync_in_process(path)
        assert code == 2, (text, err)
        assert message in err and str(path) in err, (text, err)
        assert not (tmp_path / "w").exists()
    code, _out, err = sync_in_process(tmp_path / "missing.toml")
    assert code == 2 and "no such config file" in err


def test_the_example_config_is_valid():
    from wikisnap.pipelines.syncconfig import load_config

    config = load_config(str(Path(__file__).resolve().parents[1] / "configs" / "sync.example.toml"))
    assert config.wikis and config.publish and config.work.startswith("/")
