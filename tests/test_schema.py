"""The result folder's records: what the worker writes is what status and the report read back."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from conftest import ROOT
from xrayhpc.bench.report_build import synthetic_result
from xrayhpc.experiment import Experiment
from xrayhpc.schema import (
    Environment,
    JobRecord,
    Progress,
    Scores,
    Timing,
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
    record = JobRecord("sge", "17_0", exp.fingerprint, "job.sh", "log.out", 1.0e9, attempt=2, scheduler_id="17.1")
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


def test_a_metrics_file_that_xrayhpc_0_1_wrote_reads_into_the_typed_records(tmp_path: Path) -> None:
    """Finished runs stay finished across the upgrade that typed metrics.json's sections."""
    folder = tmp_path / "task1-vgg16-cpu"
    folder.mkdir()
    shutil.copy(ROOT / "tests" / "data" / "metrics-v1.json", folder / "metrics.json")
    metrics, why = check_metrics(folder)
    assert why == "" and metrics is not None
    assert isinstance(metrics.test, Scores) and isinstance(metrics.timing, Timing)
    assert isinstance(metrics.environment, Environment) and metrics.environment.host == "scc-c01"
    assert metrics.test.correct == round(metrics.test.accuracy * metrics.test.count)
    assert metrics.timing.total >= metrics.timing.seconds("train") > 0


def test_a_field_a_later_writer_adds_is_read_past_and_a_missing_optional_one_defaults(tmp_path: Path) -> None:
    folder = tmp_path / "task1-vgg16-cpu"
    folder.mkdir()
    data = json.loads((ROOT / "tests" / "data" / "metrics-v1.json").read_text())
    data["test"]["brier"] = 0.1  # added by a later release of the same schema version
    data["environment"]["numpy"] = "2.1"
    del data["test"]["roc_auc"], data["timing"]["tsne"]  # written by an earlier one
    write_json(folder / "metrics.json", data)
    metrics, why = check_metrics(folder)
    assert why == "" and metrics is not None
    assert metrics.test.roc_auc is None and metrics.timing.tsne == 0.0
    data["test"]["per_class"]["covid"]["recall"] = "high"  # deep inside: still checked
    write_json(folder / "metrics.json", data)
    assert check_metrics(folder)[1].endswith("metrics.json: test.per_class.covid.recall is str, not float, left out")
