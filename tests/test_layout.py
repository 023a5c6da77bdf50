"""The package's plan holds: which side may import which (see the map in xrayhpc/__init__.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "xrayhpc"
SHARED = {"xrayhpc.errors", "xrayhpc.experiment", "xrayhpc.backbones", "xrayhpc.schema", "xrayhpc.signals", "xrayhpc.safefiles", "xrayhpc.datadigest",
          "xrayhpc.sitefiles", "xrayhpc.render", "xrayhpc.stats"}  # fmt: skip
COMMANDS = {"worker": "study", "submit": "cluster", "status": "cluster", "audit": "study", "weights": "study", "probe": "study",
            "synthetic": "study"}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every xrayhpc module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xrayhpc"):
            found |= {
                f"{node.module}.{a.name}" if is_module(f"{node.module}.{a.name}") else node.module for a in node.names
            }
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("xrayhpc")}
    return found


def is_module(name: str) -> bool:
    where = ROOT.joinpath(*name.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def side(name: str) -> str:
    """shared, study, cluster, report, bench, or the module's own name for the top-level tools."""
    parts = name.split(".")
    if name in SHARED or name == "xrayhpc":
        return "shared"
    return parts[1]


def allowed(importer: str, imported: str) -> bool:
    mine, theirs = side(importer), side(imported)
    if theirs in ("shared", mine):
        return True
    if mine == "cluster":  # the job is the one door into the study
        return importer == "xrayhpc.cluster.requeue" and imported == "xrayhpc.study.worker"
    if mine == "report":  # result folders through the schema; the cluster only for live state
        return imported == "xrayhpc.cluster.state"
    if mine in COMMANDS:  # `python -m xrayhpc.status` starts xrayhpc.cluster.status, nothing else
        return imported == f"xrayhpc.{COMMANDS[mine]}.{mine}"
    return mine in ("bench", "doctor")


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_each_module_imports_only_what_its_side_may(path: Path) -> None:
    importer = module_name(path)
    wrong = sorted(i for i in imports(path) if not allowed(importer, i))
    assert not wrong, f"{importer} imports {wrong}: see the map in xrayhpc/__init__.py"


def test_the_study_never_imports_submitit() -> None:
    for path in (PACKAGE / "study").rglob("*.py"):
        names = {
            n.module if isinstance(n, ast.ImportFrom) else a.name
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in n.names
        }
        assert not any(str(n).split(".")[0] == "submitit" for n in names), path


def test_the_rules_catch_a_crossing() -> None:
    assert not allowed("xrayhpc.study.worker", "xrayhpc.cluster.submit")
    assert not allowed("xrayhpc.cluster.submit", "xrayhpc.study.worker")
    assert not allowed("xrayhpc.report.build", "xrayhpc.study.audit")
    assert not allowed("xrayhpc.schema", "xrayhpc.study.data")
    assert allowed("xrayhpc.cluster.requeue", "xrayhpc.study.worker")


def test_every_command_module_starts_its_package_module() -> None:
    for name, package in COMMANDS.items():
        assert imports(PACKAGE / f"{name}.py") == {f"xrayhpc.{package}.{name}"}
        assert "def main" in (PACKAGE / package / f"{name}.py").read_text()


def test_study_and_cluster_functions_are_short() -> None:
    """One job per function: none over 60 lines in the study or the cluster side, but the job-script renderer."""
    long = []
    for path in [*(PACKAGE / "study").rglob("*.py"), *(PACKAGE / "cluster").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name != "render_job_script":
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{module_name(path)}.{node.name}: {lines} lines")
    assert not long


NEUTRAL = ("cluster/state.py", "cluster/submit.py", "doctor.py", "schema.py", "study/device.py", "study/worker.py")


@pytest.mark.parametrize("path", NEUTRAL)
def test_no_scheduler_is_named_outside_its_own_module(path: str) -> None:
    """What each scheduler knows lives in its module (cluster/sge.py, cluster/slurm.py): these hold
    no scheduler's name, command or variable, so a third scheduler is one module away."""
    from xrayhpc.cluster import scheduler

    words = set()
    for s in scheduler.schedulers().values():
        words |= {f'"{s.name}"', s.submit_command, s.cancel_command, *s.query_command[:1]}
    words |= {"NSLOTS", "SGE_TASK_ID", "SLURM_", '"JOB_ID"', "qacct", "sacct", "h_rt"}
    text = (PACKAGE / path).read_text().replace("qsub/", "the profiles' folder/")  # a folder, not the command
    assert not [w for w in sorted(words) if re.search(rf"(?<![\w]){re.escape(w)}", text)]
