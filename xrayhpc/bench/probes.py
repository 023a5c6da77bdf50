"""The probe phase on the real data: Grad-CAM and the three probes, timed beside the phases of the
same run (one extra pass over the test set per probe, and one forward and backward for Grad-CAM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xrayhpc.bench.worker import report_experiment, run_worker, significant
from xrayhpc.render import markdown
from xrayhpc.schema import check_probes


def bench_probes(data: Path, epochs: dict[str, int], workdir: Path) -> dict[str, Any]:
    """Task 1's and Task 2's frozen VGG16 from random weights on the CPU, augmentation off."""
    cases = {
        "Task 1 VGG16": report_experiment("binary", "vgg16", data, epochs=epochs["binary"], augment=False),
        "Task 2 VGG16": report_experiment("multiclass", "vgg16", data, epochs=epochs["multiclass"], augment=False),
    }
    out: dict[str, Any] = {"cases": {}}
    for n, (name, exp) in enumerate(cases.items()):
        print(f"bench: probes: {name}, {exp.epochs} epochs", flush=True)
        run, metrics = run_worker(exp, workdir, f"probes{n}")
        probes, problem = check_probes(workdir / f"ours-probes{n}" / exp.id)
        if metrics is None or probes is None:
            raise RuntimeError(f"bench: probes: {name} left no complete result ({problem or 'no metrics.json'})")
        timing = metrics.timing
        out["cases"][name] = {
            "id": exp.id,
            "epochs": exp.epochs,
            "test_images": probes.images,
            "evaluate_s": timing.evaluate,
            "probe_s": timing.probe,
            "probe_ms_per_image": significant(1000 * timing.probe / max(1, probes.images)),
            "probe_over_evaluate": significant(timing.probe / max(timing.evaluate, 1e-9), 3),
            "train_s": timing.train,
            "total_s": timing.total,
            "wall_s": run["wall_s"],
            "accuracy": probes.accuracy,
            "probes": {s.probe: s.accuracy for s in probes.probes},
            "gradcam_share": probes.shares[0].share,
            "area": probes.area,
            "verdict": probes.verdict,
            "sentence": probes.sentence,
        }
    return out


def probes_table(p: dict[str, Any]) -> str:
    header = ["case", "test images", "evaluate s", "probe s", "ms / image", "probe / evaluate", "total s",
              "acc", "centre hidden", "only centre", "normalised", "Grad-CAM in centre (area)", "probes say"]  # fmt: skip
    body = [
        [
            name,
            str(c["test_images"]),
            f"{c['evaluate_s']:.2f}",
            f"{c['probe_s']:.2f}",
            f"{c['probe_ms_per_image']:g}",
            f"{c['probe_over_evaluate']:g}",
            f"{c['total_s']:.1f}",
            f"{c['accuracy']:.3f}",
            *(f"{c['probes'][k]:.3f}" for k in ("hidden", "only", "normalised")),
            f"{c['gradcam_share']:.0%} ({c['area']:.0%})" if c["gradcam_share"] is not None else "–",
            c["verdict"],
        ]
        for name, c in p["cases"].items()
    ]
    said = "\n".join(f"- {name}: {c['sentence']}" for name, c in p["cases"].items())
    return markdown(header, body, "lrrrrrrrrrrrl") + "\n\n" + said
