"""Everything the report says, once, as sections for every output format."""

from __future__ import annotations

import os
from pathlib import Path

from xrayhpc.cluster.state import Row, collect
from xrayhpc.experiment import TASK_LABELS
from xrayhpc.report.charts import CHART_PAIRS, accuracy_png, timing_png
from xrayhpc.report.compare import Group, arms, comparison_rows, device_pairs, paired_rows, seed_groups, timing_rows
from xrayhpc.report.controls import sentence
from xrayhpc.report.results import Result, load_results
from xrayhpc.report.tables import (
    FileOnly,
    comparison_table,
    group_table,
    looks_table,
    paired_table,
    state_table,
    timing_table,
    usage_table,
)
from xrayhpc.report.writers import Section
from xrayhpc.safefiles import is_regular
from xrayhpc.schema import read_audit

IMAGES = (
    ("gradcam.png", "Grad-CAM of the predicted class over the test images"),
    ("tsne-train.png", "t-SNE, training folder"),
    ("tsne-train-source.png", "t-SNE, training folder, by how each file is stored"),
    ("tsne-test.png", "t-SNE, test set"),
    ("tsne-test-source.png", "t-SNE, test set, by how each file is stored"),
    ("curves.png", "training curves"),
    ("confusion.png", "test confusion matrix"),
)


def build(root: Path, state: tuple[list[Row], str] | None = None) -> tuple[list[Section], list[str], str]:
    """Everything the report says, once, for every output format; `state` is `collect`'s rows and
    warning where the caller has them already (the dashboard asks the schedulers once a refresh)."""
    results, skipped = load_results(root)
    rows, warning = state or collect(root)
    groups = seed_groups(results)
    sections = [s for task in TASK_LABELS for s in task_sections(task, results, groups)]
    accuracy_chart = root / "accuracy.png"
    if accuracy_png(arms(results, groups), accuracy_chart):
        sections.append(
            Section("Accuracy at a glance", "", None, [(accuracy_chart, "test accuracy with its 95% interval")])
        )
    sections.append(timing_section(results, root / "timing.png"))
    used = [r for r in rows if r.usage is not None or r.gpu_use is not None]
    if used:
        sections.append(
            Section(
                "What the jobs used",
                "The scheduler's accounting of each ended job against its request, and what NVML saw of "
                "its GPU (mean utilisation, the share of samples it idled, peak memory of the GPU's, MB): "
                "right-size `cores`, `time` and `gpu_memory` in the profile from these.",
                usage_table(used),
            )
        )
    done = {r.id for r in results}
    pending = [r for r in rows if r.id not in done and r.id not in skipped]
    if pending:
        sections.append(
            Section("Not finished", "Experiments without a complete result, with their state.", state_table(pending))
        )
    notes: list[str] = [r.probe_problem for r in results if r.probe_problem]
    extra = audit_sections(results, notes) + gallery(results, notes)
    return sections + extra, [*skipped.values(), *notes], warning


def task_sections(task: str, results: list[Result], groups: list[Group]) -> list[Section]:
    """One task's runs beside their controls, its seed groups and their paired comparisons."""
    title = "Task 1: covid vs normal" if task == "binary" else "Task 2: four classes"
    table = comparison_rows(results, task)
    mine = [g for g in groups if g.task == task]
    out = []
    if table:
        said = sentence(title, arms([r for r in results if r.exp["task"] == task], mine))
        out.append(
            Section(
                f"{title} ({TASK_LABELS[task]})",
                (f"{said} " if said else "") + "Accuracy with its 95% "
                "Wilson interval: with tens of test images (the course's: 18 and 36) a few points of difference are within "
                "noise. "
                "Controls (random weights, file facts) follow the study's runs. The report's figures stand "
                "beside a run only when its settings are the report's; otherwise the row says which differ.",
                comparison_table(table),
            )
        )
    if mine:
        out.append(
            Section(
                f"{title}: over seeds",
                "Configurations run with several seeds: mean, standard deviation, "
                "the 95% t-interval of the mean, and the range.",
                group_table(mine),
            )
        )
    looked = looks_section(title, [r for r in results if r.exp["task"] == task])
    if looked:
        out.append(looked)
    pairs = paired_rows(mine)
    if pairs:
        out.append(
            Section(
                f"{title}: paired comparisons",
                "A − B over the seeds both ran: the mean difference and its "
                "95% paired t-interval; an interval that holds 0 is no evidence either way.",
                paired_table(pairs),
            )
        )
    return out


def looks_section(title: str, results: list[Result]) -> Section | None:
    """What each probed model looks at, beside the file-facts control, with each one's sentence."""
    probed = sorted((r for r in results if r.probes is not None), key=lambda r: r.id)
    if not probed:
        return None
    facts = [r for r in results if r.exp["backbone"] == "metadata"]
    rows = [
        (r.id, "random weights" if r.exp["weights"] == "none" else "study", r.metrics.test.accuracy, r.probes)
        for r in probed
    ]
    control = "".join(
        f" The file-facts control {r.id} reaches {r.metrics.test.accuracy:.3f} with no pixels at all: it has "
        "nothing to probe, and stands here as the bar a model that looks at the lungs must clear."
        for r in facts
    )
    said = " ".join(f"{r.id}: {r.probes.sentence}" for r in probed if r.probes)
    text = (
        "The test set again with part of each image taken away: the region (the centre, or the lung masks "
        "given) filled with the image's mean, then everything but the region, then every image normalised "
        "(grey, its histogram equalised). Each accuracy with its paired change and 95% interval over the "
        "test images; Grad-CAM's share of its mass inside the region beside the region's area. A model that "
        "keeps its accuracy with the region hidden is using something else. On a random-weight backbone "
        "Grad-CAM leans to the centre (zero padding weakens the edge cells), so the probes, which change the "
        f"input itself, are the firmer evidence.{control} {said}"
    )
    return Section(f"{title}: what the models look at", text, looks_table(rows))


def timing_section(results: list[Result], chart: Path) -> Section:
    """GPU against CPU for the runs that differ only in the device, with the chart of their phases."""
    pairs, single = device_pairs(results)
    rows = timing_rows(pairs)
    has_chart = timing_png(rows, chart)
    text = (
        "Experiments that ran on both devices with the same settings. Speedup = CPU total / GPU total. "
        "Published: the course's own times where the run has the report's settings."
        if rows
        else "No experiment has run on both devices yet."
    )
    if len(rows) > CHART_PAIRS:
        text += f" The chart shows the first {CHART_PAIRS} of {len(rows)} pairs."
    if single:
        text += " Ran on one device only: " + ", ".join(f"{r.id}" for r in single) + "."
    return Section(
        "GPU versus CPU", text, timing_table(rows) if rows else None, [(chart, "time per phase")] if has_chart else None
    )


def gallery(results: list[Result], notes: list[str]) -> list[Section]:
    """Every run's t-SNE, curves and confusion matrix (or why there is no t-SNE). Only regular files
    inside the result folder are shown (the HTML embeds them): a link or a folder in an image's place
    is named in `notes` and left alone."""
    out = []
    for r in sorted(results, key=lambda r: r.id):
        images = []
        for name, caption in IMAGES:
            path = r.folder / name
            if is_regular(path):
                images.append((path, f"{r.id}: {caption}"))
            elif os.path.lexists(path):
                notes.append(f"{path}: is not a regular file (a link?); left out of the report")
        if images:
            note = r.metrics.tsne
            out.append(Section(f"Gallery: {r.id}", f"t-SNE {note}." if isinstance(note, str) else "", None, images))
    return out


def audit_sections(results: list[Result], notes: list[str]) -> list[Section]:
    """What the files say, from each metadata baseline's audit of its task folder (one that cannot be
    read is named in `notes`)."""
    out = []
    for r in sorted(results, key=lambda r: r.id):
        if r.exp["backbone"] != "metadata":
            continue
        audit, tables, problem = read_audit(r.folder)
        if problem:
            notes.append(f"{problem}, left out")
        if audit is not None:
            text = (
                f"From {r.id}: formats, colour modes, images whose channels differ by more than "
                f"{audit['colour_levels']:g} levels, sizes; duplicates by identical bytes or perceptual hashes."
            )
            for i, (title, header, body) in enumerate(tables):
                table = ([FileOnly(h) for h in header], body)  # python -m xrayhpc.audit prints it on a terminal
                out.append(Section(f"Dataset audit, {title}", "" if i else text, table))
    return out
