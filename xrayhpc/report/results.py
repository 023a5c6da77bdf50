"""Complete results read from the result folders, and those left out with the reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrayhpc.schema import Metrics, Probes, check_metrics, check_probes, experiment_folders


@dataclass
class Result:
    folder: Path
    metrics: Metrics
    probes: Probes | None = None  # what the model looks at, where its run was probed
    probe_problem: str = ""  # why a probes.json there is left out

    @property
    def exp(self) -> dict[str, Any]:
        return self.metrics.experiment

    @property
    def id(self) -> str:
        return self.metrics.id


def load_results(root: Path) -> tuple[list[Result], dict[str, str]]:
    """Complete results, and {folder name: one line} for each metrics.json that had to be left out."""
    results: list[Result] = []
    skipped: dict[str, str] = {}
    for folder in experiment_folders(root):
        data, problem = check_metrics(folder)
        if data is not None:
            probes, why = check_probes(folder) if data.experiment["backbone"] != "metadata" else (None, "")
            if probes is not None and (probes.fingerprint, probes.id) != (data.experiment["fingerprint"], data.id):
                probes, why = None, f"{folder.name}: probes.json is of another run of the experiment; left out"
            results.append(Result(folder, data, probes, why))
        elif problem:
            skipped[folder.name] = problem
    return results, skipped
