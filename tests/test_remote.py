"""Results on an object store (a real S3-compatible server on 127.0.0.1): a survey costs
requests per table, not per file; status, figures and the report read there and write back
(or to a local directory); and the report says when a verdict rests on part of the groups."""
import json
import os
import socket
import subprocess
import sys

import pyarrow.fs as pafs

from analysis import claims as C
from analysis.registry import Tables
from analysis.report import context
from sweeps.store import Store
from sweeps.survey import survey

from . import analysis_fixtures as F


def test_a_survey_costs_requests_per_table_not_per_file(cli, s3):
    uri = s3.uri("counted")
    base = ["discrepancy", "--cells", "vanilla", "--l-max", 5, "--draws", 50, "--out", uri]
    surveys, reruns = [], []
    for k, groups in (("1-3", 3), ("1-15", 15)):
        assert cli(*base, "--k", k)[0] == 0
        s3.requests.clear()
        cat = survey(Store(uri), ["discrepancy"], ["discrepancy"])
        surveys.append(list(s3.requests))
        assert len(cat.groups["discrepancy"]) == groups and not cat.damaged and not cat.learned
        s3.requests.clear()
        code, stdout, _ = cli(*base, "--k", k)
        assert code == 0 and f"{groups} already done" in stdout
        reruns.append(list(s3.requests))
    # one listing of the index, the table and the shards, and the index's one file read
    assert len(surveys[0]) == len(surveys[1]) == 5, surveys[1]
    assert len(reruns[0]) == len(reruns[1]), (reruns[0], reruns[1])
    table_reads = [r for r in surveys[1] + reruns[1] if r[0] == "GET" and "/counted/discrepancy/" in r[1]]
    assert not table_reads, "no table file is opened to learn what is committed"


def test_status_figures_and_report_read_and_write_an_object_store(cli, s3, tmp_path, disc_dir):
    uri = s3.uri("remote")
    assert cli("discrepancy", "--cells", "vanilla,gru", "--l-max", 22, "--k", "2-3", "--draws", 100,
               "--out", uri)[0] == 0
    code, stdout, _ = cli("status", uri)
    assert code == 0 and "s3://lksweep-results/remote: 1 sweep(s)" in stdout
    assert [line.split()[1:] for line in stdout.splitlines() if line.startswith("discrepancy")] == [["4/4", "4/4", "0"]]
    code, stdout, err = cli("report", uri)
    assert code == 0, err
    assert stdout.strip().splitlines()[-1] == "Report: s3://lksweep-results/remote/report.html"
    fs, root = pafs.FileSystem.from_uri(uri)
    with fs.open_input_stream(f"{root}/report.html") as f:
        page = f.read().decode()
    assert "Claim 4:" in page and "data:image/png;base64," in page
    assert fs.get_file_info(f"{root}/figures/fig10_discrepancy_vanilla.png").size > 1000
    code, stdout, _ = cli("figures", uri, "--to", tmp_path / "local")
    assert code == 0 and (tmp_path / "local" / "figures" / "fig10_discrepancy_vanilla.pdf").exists()


def test_status_says_when_the_launcher_holding_the_lock_is_gone(cli, s3):
    uri = s3.uri("locked")
    assert cli("discrepancy", "--cells", "vanilla", "--l-max", 5, "--k", 2, "--draws", 50, "--out", uri)[0] == 0
    store = Store(uri)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = gone.pid
    store.write_json(store.path("_lock.json"), {"host": socket.gethostname(), "pid": dead, "since": 0, "token": "x"})
    code, stdout, _ = cli("status", uri)
    assert code == 0 and f"its lock names pid {dead} on {socket.gethostname()}, which is gone" in stdout
    store.write_json(store.path("_lock.json"), {"host": socket.gethostname(), "pid": os.getpid(), "since": 0,
                                                "token": "x"})
    code, stdout, _ = cli("status", uri)
    assert code == 0 and f"being written by pid {os.getpid()}" in stdout


def test_verdicts_drawn_from_part_of_the_groups_say_so(disc_dir, tmp_path):
    out = tmp_path / "out"
    F.copy_tables(disc_dir, out, F.DISCREPANCY_TABLES)
    F.write_training(str(out))
    page = context(str(out), [], C.judge(Tables(str(out))), Tables(str(out)))
    assert not any(f["partial"] for c in page["claims"] for f in c["glance"])
    for name in ("vanilla-xavier-k6-seed2.parquet", "gru-normal-k1-seed0.parquet"):
        (out / "memory" / name).unlink()              # a sweep still being written
    page = context(str(out), [], C.judge(Tables(str(out))), Tables(str(out)))
    by_claim = {c["number"]: {f["partial"] for f in c["glance"]} for c in page["claims"]}
    assert by_claim[4] == {"partial: 106 of 108 memory groups"}
    assert by_claim[1] == by_claim[2] == by_claim[3] == {""}     # the runs and gradients tables are whole
    record = json.loads(next((out / "_sweeps").iterdir()).read_text())
    assert len(record["planned"]["discrepancy"]["groups"]) == 108
