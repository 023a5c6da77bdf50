"""The result folder's records: what the worker writes is what status and the report read back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from xrayhpc.bench.report_build import synthetic_result
from xrayhpc.experiment import Experiment
from xrayhpc.schema import (
    JobRecord,
    Progress,
    check_metrics,
    read_json,
    read_metrics,
    read_progress,
    read_record,
    write_json,
    write_record,
)


def test_each_record_reads_back_as_written(tmp_path: Path) -> None:
    exp = Experiment("binary", "vgg16", "cpu", data="/data")
    written = synthetic_result(tmp_path, exp, 40.0, 16, 18)
    assert read_metrics(tmp_path / exp.id) == written
    progress = Progress("running", 3, 40, 1.0e9, "scc-c01", 4242, id=exp.id, job="17_0", last={"loss": 0.5})
    progress.write(tmp_path / exp.id)
    assert read_progress(tmp_path / exp.id) == progress
    record = JobRecord("sge", "17_0", exp.fingerprint, "job.sh", "log.out", 1.0e9, attempt=2)
    write_record(tmp_path / exp.id, record)
    assert read_record(tmp_path / exp.id) == record
    assert read_json(tmp_path / exp.id / "job.json")["scheduler_id"] == "17.1"  # for a person reading it


def test_a_section_of_the_wrong_kind_is_named_not_a_crash_later(tmp_path: Path) -> None:
    exp = Experiment("binary", "vgg16", "cpu", data="/data")
    data = synthetic_result(tmp_path, exp, 40.0, 16, 18).to_json()
    write_json(tmp_path / exp.id / "metrics.json", {**data, "test": [0.9]})
    metrics, why = check_metrics(tmp_path / exp.id)
    assert metrics is None and why.endswith("metrics.json: test is list, not dict, left out")


def test_a_progress_file_without_what_status_needs_is_not_taken_as_running(tmp_path: Path) -> None:
    progress = Progress("running", 3, 40, 1.0e9, "scc-c01", 4242)
    write_json(tmp_path / "progress.json", {k: v for k, v in dataclasses.asdict(progress).items() if k != "pid"})
    assert read_progress(tmp_path) is None
