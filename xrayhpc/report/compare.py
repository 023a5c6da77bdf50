"""What is set beside what: the published figures (like for like only), seed groups and paired
comparisons, runs of one configuration on both devices.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from xrayhpc import sitefiles
from xrayhpc.experiment import FIELDS, load_grid
from xrayhpc.report.controls import Arm, role
from xrayhpc.report.results import Result
from xrayhpc.stats import Summary, paired, summary, wilson

# The report the study was made from: (task, backbone) -> (test accuracy, test loss)
PUBLISHED = {
    ("binary", "vgg16"): (0.944, 0.3084),
    ("multiclass", "vgg16"): (0.66, 0.79),
    ("multiclass", "mobilenet"): (0.75, 0.69),
}
# The course's bonus part timed Task 1 (40 epochs, the report's settings) on both devices, in seconds.
PUBLISHED_SECONDS = {("binary", "vgg16"): {"gpu": 124.0, "cpu": 155.0}}
# A published figure stands beside a run only when these settings equal the report's own, as the
# packaged jobs/report.toml holds them; otherwise the row names what differs.
COMPARED = (
    "weights",
    "image_size",
    "epochs",
    "batch_size",
    "learning_rate",
    "head_units",
    "dropouts",
    "trainable_backbone",
    "augment",
    "preprocessing",
    "checkpoint",
    "validation_split",
    "colour",
    "normalise",
    "interpolation",
    "precision",
)
# Runs that differ only in these are repeats of one configuration.
NOT_CONFIGURATION = ("seed", "fingerprint", "id")


@functools.lru_cache
def _report_settings() -> dict[tuple[str, str], dict[str, Any]]:
    """(task, backbone) -> the report's settings, from the packaged jobs/report.toml: its own study
    runs, the untagged ones (every twin there, random-weight or normalised, carries a tag)."""
    experiments = load_grid(sitefiles.packaged("jobs", "report.toml"))
    return {(e.task, e.backbone): e.settings() for e in experiments if role(e.settings()) == "study" and not e.tag}


def reference(exp: dict[str, Any]) -> tuple[tuple[float, float] | None, list[str]]:
    """The published (accuracy, loss) when `exp` ran with the report's settings, else what differs."""
    published = PUBLISHED.get((exp["task"], exp["backbone"]))
    theirs = _report_settings().get((exp["task"], exp["backbone"]))
    if published is None or theirs is None:
        return None, []
    ours = {k: exp.get(k, FIELDS[k].default) for k in COMPARED}  # a setting newer than the result: its default
    differs = [f"{k} {_setting(ours[k])} (report: {_setting(theirs[k])})" for k in COMPARED if ours[k] != theirs[k]]
    return (None, differs) if differs else (published, [])


def _setting(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def comparison_rows(results: list[Result], task: str) -> list[dict[str, Any]]:
    """One row per run of the task: the study's runs first, then their controls."""
    rows = []
    for r in sorted((r for r in results if r.exp["task"] == task), key=lambda r: (role(r.exp) != "study", r.id)):
        test = r.metrics.test
        low, high = wilson(test.correct, test.count)
        published, differs = reference(r.exp)
        facts = r.exp["backbone"] == "metadata"
        rows.append(
            {
                "id": r.id,
                "role": role(r.exp),
                "backbone": r.exp["backbone"],
                "backbone_mode": ("file facts" if facts else "trained" if r.exp["trainable_backbone"] else "frozen")
                + (f", {r.exp['precision']}" if r.exp.get("precision", "float32") != "float32" else ""),
                "augment": "–" if facts else "on" if r.exp["augment"] else "off",
                "weights": "–" if facts else r.exp["weights"] if r.exp["weights"] in ("imagenet", "none") else "file",
                "device": r.exp["device"],
                "accuracy": test.accuracy,
                "ci": (low, high),
                "loss": test.loss,
                "macro_f1": test.macro_f1,
                "roc_auc": test.roc_auc,
                "recall": {c: v.get("recall") for c, v in test.per_class.items()},
                "epochs": r.metrics.epochs_run,
                "best_epoch": r.metrics.best_epoch,
                "published": published,
                "differs": differs,
                "diff": (test.accuracy - published[0], test.loss - published[1]) if published else None,
            }
        )
    return rows


@dataclass
class Group:
    """Runs of one configuration that differ only in their seed."""

    label: str
    task: str
    members: list[Result]

    def values(self, key: str) -> dict[int, float]:
        return {r.exp["seed"]: getattr(r.metrics.test, key) for r in self.members}

    def summary(self, key: str) -> Summary:
        return summary(list(self.values(key).values()))


def seed_groups(results: list[Result]) -> list[Group]:
    """Every configuration that ran with two or more seeds."""
    by_key: dict[tuple[Any, ...], list[Result]] = {}
    for r in results:
        key = tuple(sorted((k, str(v)) for k, v in r.exp.items() if k not in NOT_CONFIGURATION))
        by_key.setdefault(key, []).append(r)
    groups = []
    for members in by_key.values():
        if len({r.exp["seed"] for r in members}) >= 2:
            members = sorted(members, key=lambda r: r.exp["seed"])
            label = re.sub(r"-seed-?\d+", "", members[0].id)
            groups.append(Group(label, members[0].exp["task"], members))
    return sorted(groups, key=lambda g: g.label)


def paired_rows(groups: list[Group]) -> list[tuple[str, Summary, Summary]]:
    """A − B in accuracy and loss over the seeds both ran, for configurations of one task."""
    out = []
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            differ = {
                k
                for k in a.members[0].exp
                if k not in NOT_CONFIGURATION and a.members[0].exp[k] != b.members[0].exp.get(k)
            }
            if a.task != b.task or differ == {"device"}:
                continue
            acc, loss = paired(a.values("accuracy"), b.values("accuracy")), paired(a.values("loss"), b.values("loss"))
            if acc is not None and loss is not None:
                out.append((f"{a.label} − {b.label}", acc, loss))
    return out


def arms(results: list[Result], groups: list[Group]) -> list[Arm]:
    """Each configuration once: a seed group as one arm, every other run as its own."""
    grouped = {r.id for g in groups for r in g.members}
    return [Arm(g.label, [r.metrics for r in g.members]) for g in groups] + [
        Arm(r.id, [r.metrics]) for r in results if r.id not in grouped
    ]


def device_pairs(results: list[Result]) -> tuple[list[tuple[Result, Result]], list[Result]]:
    """Experiments equal in every setting but the device; the rest ran on one device only."""

    def key(r: Result) -> tuple[Any, ...]:
        return tuple(sorted((k, str(v)) for k, v in r.exp.items() if k not in ("device", "fingerprint", "id")))

    by_key: dict[tuple[Any, ...], dict[str, Result]] = {}
    for r in results:
        by_key.setdefault(key(r), {})[r.exp["device"]] = r
    pairs = [(d["gpu"], d["cpu"]) for d in by_key.values() if "gpu" in d and "cpu" in d]
    single = [r for d in by_key.values() if not ("gpu" in d and "cpu" in d) for r in d.values()]
    return pairs, sorted(single, key=lambda r: r.id)


def _hardware(r: Result) -> str:
    env = r.metrics.environment
    where = env.gpu_name or env.cpu_model or "?"
    return f"{where}, {env.slots or env.cpu_count} slot(s), {env.host}"


def timing_rows(pairs: list[tuple[Result, Result]]) -> list[dict[str, Any]]:
    rows = []
    for gpu, cpu in sorted(pairs, key=lambda p: p[0].id):
        g, c = gpu.metrics.timing, cpu.metrics.timing
        _, differs = reference(gpu.exp)
        rows.append(
            {
                "experiment": gpu.id.replace("-gpu", ""),
                "gpu": g,
                "cpu": c,
                "published": None if differs else PUBLISHED_SECONDS.get((gpu.exp["task"], gpu.exp["backbone"])),
                "speedup": c.total / g.total if g.total else float("nan"),
                "gpu_hardware": _hardware(gpu),
                "cpu_hardware": _hardware(cpu),
            }
        )
    return rows
