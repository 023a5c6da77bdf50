"""Complete results read from the result folders, and those left out with the reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrayhpc.results import METRICS, SCHEMA_VERSION, read_json
from xrayhpc.state import experiment_folders


@dataclass
class Result:
    folder: Path
    metrics: dict[str, Any]

    @property
    def exp(self) -> dict[str, Any]:
        return self.metrics["experiment"]

    @property
    def id(self) -> str:
        return self.metrics["id"]


def load_results(root: Path) -> tuple[list[Result], dict[str, str]]:
    """Complete results, and {folder name: one line} for each metrics.json that had to be left out."""
    results: list[Result] = []
    skipped: dict[str, str] = {}
    for folder in experiment_folders(root):
        path = folder / METRICS
        if not path.exists():
            continue
        data = read_json(path)
        if not isinstance(data, dict):
            skipped[folder.name] = f"{path}: damaged (not readable JSON), left out"
        elif data.get("schema_version") != SCHEMA_VERSION:
            skipped[folder.name] = (
                f"{path}: schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}, left out"
            )
        else:
            try:
                data["test"]["accuracy"], data["experiment"]["task"], data["timing"]["total"]
            except (KeyError, TypeError):
                skipped[folder.name] = f"{path}: incomplete (missing test, experiment or timing), left out"
                continue
            results.append(Result(folder, data))
    return results, skipped
