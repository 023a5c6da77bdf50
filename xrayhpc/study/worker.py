"""The job body: one experiment in, one complete result folder out.

    python -m xrayhpc.worker --grid jobs/report.toml --id task1-vgg16-cpu
    python -m xrayhpc.worker --spec experiment.json

Reads top to bottom: device, data, model, training, evaluation, the probes (Grad-CAM, occlusion),
features and t-SNE, the kept weights, files.
Nothing here knows about schedulers; the dispatcher calls `run_experiment` inside a job.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xrayhpc.errors import UserError, cli
from xrayhpc.experiment import Experiment, load_grid, parse_overrides, select
from xrayhpc.render import one_line
from xrayhpc.safefiles import is_folder, read_text
from xrayhpc.schema import AUDIT, LOG, GpuUse, Metrics, Progress, Scores, Timing, results_root, write_json
from xrayhpc.signals import Held
from xrayhpc.study import device, gpuuse, kept, kernels
from xrayhpc.study.checkpoint import Checkpoint
from xrayhpc.study.data import Dataset, discover, experiment_data
from xrayhpc.study.events import EpochEvents
from xrayhpc.study.runlog import RunLog


class ProgressFile:
    """progress.json, rewritten whole at each phase and epoch, for `python -m xrayhpc.status`."""

    def __init__(self, folder: Path, exp: Experiment) -> None:
        self.folder = folder
        self.exp = exp
        self.start = time.time()

        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.run = 1
        self.resumed_from = 0

    def write(
        self,
        state: str,
        phase: str,
        epoch: int = 0,
        history: list[dict[str, float]] | None = None,
        error: str | None = None,
        error_kind: str | None = None,
    ) -> None:
        self.epoch = epoch
        if history is not None:
            self.history = list(history)
        now = time.time()
        Progress(
            id=self.exp.id,
            fingerprint=self.exp.fingerprint,
            state=state,
            phase=phase,
            epoch=epoch,
            epochs=self.exp.epochs,
            started=self.start,
            updated=now,
            host=os.uname().nodename,
            pid=os.getpid(),
            job=os.environ.get("SUBMITIT_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID", ""),
            run=self.run,
            resumed_from=self.resumed_from,
            last=self.history[-1] if self.history else {},
            history=self.history,
            error=error,
            error_kind=error_kind,
            elapsed_s=round(now - self.start, 2),
        ).write(self.folder)


@dataclass
class Run:
    """One experiment's run: where it writes, what it says, and how long each phase took."""

    exp: Experiment
    folder: Path
    progress: ProgressFile
    log: RunLog
    checkpoint: Checkpoint
    seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    kernels: dict[str, Any] | None = None  # the kernel check of a GPU run
    numerics: dict[str, bool | None] = field(default_factory=dict)  # determinism and TF32, as they were
    gpu_use: GpuUse | None = None  # what NVML saw of a GPU run's GPUs

    @contextlib.contextmanager
    def phase(self, name: str, shown: str, epoch: int = 0) -> Iterator[None]:
        """Time a phase (a metrics.json timing key) and show it in progress.json while it runs."""
        self.progress.write("running", shown, epoch)
        begin = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - begin, 3)

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 3)

    def timing(self, **rates: Any) -> Timing:
        """metrics.json's `timing`: each phase timed so far, the total up to now, and `rates`."""
        return Timing(total=self.total(), **self.seconds, **rates)


def run_experiment(exp: Experiment, results: str | Path | None = None, tty: bool | None = None) -> Path:
    """Train, evaluate and write the result folder; returns it. Raises UserError on bad input.

    A result folder or log that is a link is refused before anything is written.
    """
    folder = results_root(results) / exp.id
    folder.mkdir(parents=True, exist_ok=True)
    if not is_folder(folder):
        raise UserError(f"{folder}: is a symbolic link, not a result folder; it is left alone (remove it to run)")
    with RunLog(folder / LOG, exp.id, tty) as log:
        progress = ProgressFile(folder, exp)
        progress.write("running", "starting")
        checkpoint = Checkpoint(folder, exp.fingerprint, exp.save_every_s, log)
        try:
            with device.configured(exp.device, exp.deterministic):
                return _run(Run(exp, folder, progress, log, checkpoint))
        except BaseException as err:
            with Held([signal.SIGINT]):  # a second Ctrl-C must not cut the record short
                kind, message = _failure(err, checkpoint)
                log(f"failed: {message}")
                progress.write("failed", "failed", progress.epoch, error=message, error_kind=kind)
            raise


def _failure(err: BaseException, checkpoint: Checkpoint) -> tuple[str, str]:
    """(kind, one line): `user` errors are not retried; `interrupted` and `crash` may be."""
    if isinstance(err, UserError):
        return "user", str(err)
    if isinstance(err, KeyboardInterrupt):
        saved = checkpoint.saved_epoch
        return "interrupted", "interrupted (Ctrl-C); " + (
            f"the next run resumes from epoch {saved}" if saved > 0 else "nothing saved yet"
        )
    return "crash", one_line(f"{type(err).__name__}: {err}")


def _run(run: Run) -> Path:
    """Data, model, features, training, evaluation, probes, plots, then the weights and metrics.json:
    each a phase below."""
    exp = run.exp
    run.log(f"settings {json.dumps(exp.settings())} fingerprint {exp.fingerprint}")
    discover(exp.data_dir)  # a missing data folder is said at once, before the backend starts
    if exp.backbone == "metadata":
        return _run_metadata(run)
    used = _device(run)
    from xrayhpc.study import training

    sampling = _gpu_sampler(run, used)
    with sampling or contextlib.nullcontext():
        with run.phase("load", "loading"):
            data = _load(run)
        with run.phase("features", "features"):
            models = training.build(exp, len(data.classes))
            cached = _frozen_features(run, data, models)
        with run.phase("train", "training"):
            fitted = _train(run, data, models, cached)
        with run.phase("evaluate", "evaluating", exp.epochs):
            test, probs = _evaluate(run, data, models, cached, fitted)
        with run.phase("probe", "probing", exp.epochs):
            _probe(run, data, models, probs)
        with run.phase("tsne", "drawing", exp.epochs):
            _draw(run, data, models, cached, fitted, test)
    if sampling and (use := sampling.summary()):
        run.gpu_use = use
        run.log(
            f"GPU use: {use.utilisation_mean:.0f}% on average, {use.utilisation_peak:.0f}% at peak, idle in "
            f"{use.idle_share:.0%} of {use.samples} samples; memory {use.memory_peak_mb:.0f} of "
            f"{use.memory_total_mb:.0f} MB at peak"
        )
    kept.save(run.folder, exp, models)
    _finish(run, _image_record(run, data, models, fitted, test, used))
    run.checkpoint.remove()
    return run.folder


def _device(run: Run) -> str:
    """The device the run really uses; a GPU run without a GPU, or with one whose kernels fail,
    stops here, saying why."""
    exp = run.exp
    used = device.check(exp.device)
    if refused := device.bfloat16_refusal(exp.precision, used):
        raise UserError("; ".join(refused))
    run.numerics = device.determinism(exp.deterministic, used)
    run.checkpoint.device = used
    said = {k: "on" if v else "off" for k, v in run.numerics.items() if v is not None}
    run.log(
        f"device {used}; backend {device.backend_name()}; slots {device.slots() or 'unset'}; precision "
        f"{exp.precision}; op determinism {said['deterministic']}"
        + (f"; TF32 {said['tf32']}" if "tf32" in said else "")
    )
    if used.startswith("gpu"):
        check = kernels.isolated(used, exp.precision)
        run.log(check.line())
        run.kernels = check.record()
    return used


def _gpu_sampler(run: Run, used: str) -> gpuuse.Sampler | None:
    """NVML's sampler of a GPU run's GPUs; where there can be none, the log says why."""
    if not used.startswith("gpu"):
        return None
    got = gpuuse.sampler()
    if isinstance(got, str):
        run.log(f"GPU use not sampled: {got}")
        return None
    run.log(f"sampling {', '.join(got.names)} through NVML every {got.every_s:g} s")
    return got


def _load(run: Run) -> Dataset:
    data = experiment_data(run.exp, run.log)
    run.log(_images_line(data.counts(), data.classes))
    return data


def _images_line(counts: dict[str, dict[str, int]], classes: list[str]) -> str:
    return "images " + ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items()) + f"; classes {classes}"


def _frozen_features(run: Run, data: Dataset, models: Any) -> dict[str, np.ndarray]:
    """A frozen backbone's output, once per image (the train images too when nothing transforms them)."""
    from xrayhpc.study import training

    if not run.exp.head_only:
        return {}
    run.log(f"running the frozen {run.exp.backbone} once over the images")
    sets = {"val": data.val.images, "test": data.test.images}
    if not run.exp.augment:
        sets["train"] = data.train.images
    return training.backbone_features_of(run.exp, models, sets)


def _train(run: Run, data: Dataset, models: Any, cached: dict[str, np.ndarray]) -> Any:
    from xrayhpc.study import training

    exp, progress, checkpoint = run.exp, run.progress, run.checkpoint
    run.log.epochs(exp.epochs)

    with EpochEvents(run.folder) as events:

        def on_epoch(k: int, history: list[dict[str, float]]) -> None:
            run.log.epoch(k, exp.epochs, history[-1])
            progress.run, progress.resumed_from = checkpoint.runs, checkpoint.resumed_from
            progress.write("running", "training", k, history)
            events.add(history)

        return training.train(
            exp, data, models, on_epoch, {k: cached[k] for k in ("train", "val") if k in cached}, checkpoint
        )


def _evaluate(
    run: Run, data: Dataset, models: Any, cached: dict[str, np.ndarray], fitted: Any
) -> tuple[Scores, np.ndarray]:
    """The test scores, and the class probabilities they come from."""
    from xrayhpc.study import evaluate, training

    probs = training.predict(run.exp, models, data.test.images, cached.get("test"))
    test = evaluate.test_metrics(probs, data.test.labels, data.classes)
    run.log(f"test accuracy {test.accuracy:.4f} loss {test.loss:.4f} (epoch {fitted.best_epoch} kept)")
    return test, probs


def _probe(run: Run, data: Dataset, models: Any, probs: np.ndarray) -> None:
    """Grad-CAM and the occlusion probes: what the model looks at (study/probes.py)."""
    from xrayhpc.study import probes

    looked = probes.run(run.exp, models, data, run.log, probs)
    probes.write(run.folder, run.exp, looked, data)


def _draw(run: Run, data: Dataset, models: Any, cached: dict[str, np.ndarray], fitted: Any, test: Scores) -> None:
    """t-SNE over the training folder (train + validation, as the template) and the test set, coloured
    by class and by how each file is stored; curves; confusion."""
    from xrayhpc.study import audit, plots, training

    exp, folder = run.exp, run.folder

    def backbone_out(name: str, images: np.ndarray) -> np.ndarray:
        return cached[name] if name in cached else training.backbone_features(exp, models, images)

    feature_model = training.feature_model(models)
    folder_out = np.concatenate([backbone_out("train", data.train.images), backbone_out("val", data.val.images)])
    sets = {
        "train": (
            training.run_batched(feature_model, folder_out),
            np.concatenate([data.train.labels, data.val.labels]),
        ),
        "test": (training.run_batched(feature_model, backbone_out("test", data.test.images)), data.test.labels),
    }
    files = {"train": data.train.files + data.val.files, "test": data.test.files}
    sources = audit.sources(exp.data_dir)
    for name, (feats, labels) in sets.items():
        points = plots.tsne_points(feats, exp.seed)
        title = f"{exp.id}: t-SNE of `{training.FEATURE_LAYER}`, {name} ({len(labels)})"
        plots.tsne_png(points, labels, data.classes, title, folder / f"tsne-{name}.png")
        kinds, index = np.unique([sources.get(f, "unread") for f in files[name]], return_inverse=True)
        plots.tsne_png(
            points, index, kinds.tolist(), title, folder / f"tsne-{name}-source.png", legend="file as stored"
        )
    plots.curves_png(fitted.history, fitted.best_epoch, exp.id, folder / "curves.png")
    plots.confusion_png(test.confusion, data.classes, f"{exp.id}: test", folder / "confusion.png")


def _image_record(run: Run, data: Dataset, models: Any, fitted: Any, test: Scores, used: str) -> dict[str, Any]:
    """What metrics.json holds of an image model's run, beside the settings."""
    from xrayhpc.study import training

    epochs_run = len(fitted.history)
    # over every epoch, those of earlier runs too when this one resumed from a checkpoint
    epoch_seconds = run.seconds["train"] if not fitted.resumed_from else sum(h["seconds"] for h in fitted.history)
    return {
        "classes": data.classes,
        "counts": data.counts(),
        "skipped_images": data.skipped,
        "model": training.describe(models),
        "path": "head-only" if run.exp.head_only else "plain",
        "augmentation": ("device" if training.augments_on_device(run.exp) else "cpu") if run.exp.augment else "off",
        "history": fitted.history,
        "epochs_run": epochs_run,
        "best_epoch": fitted.best_epoch,
        "runs": fitted.runs,
        "resumed_from": fitted.resumed_from,
        "test": test,
        "timing": run.timing(
            train_breakdown={k: round(v, 3) for k, v in fitted.seconds.items()},
            seconds_per_epoch=round(epoch_seconds / max(1, epochs_run), 4),
            train_images_per_second=round(len(data.train) * epochs_run / max(epoch_seconds, 1e-9), 2),
        ),
        "devices": fitted.devices if len(set(fitted.devices)) > 1 else [],
        "gpu_use": run.gpu_use,
        "environment": device.environment(run.exp.device, used, kernels=run.kernels, numerics=run.numerics),
    }


def _finish(run: Run, parts: dict[str, Any]) -> None:
    """metrics.json, written last and whole: its presence means the run is complete."""
    exp = run.exp
    experiment = {**exp.settings(), "id": exp.id, "fingerprint": exp.fingerprint}
    Metrics(id=exp.id, experiment=experiment, finished=time.time(), **parts).write(run.folder)
    history = parts["history"]
    run.progress.write("done", "done", parts["epochs_run"], history)
    run.log(f"done in {parts['timing'].total:.1f}s: {run.folder}")


def _run_metadata(run: Run) -> Path:
    """The metadata-only control: file facts, a random forest, the test metrics; no learned features."""
    from xrayhpc.study import audit, baseline, evaluate, plots

    exp = run.exp
    with run.phase("train", "training"):
        fitted = baseline.fit(exp)
    write_json(run.folder / AUDIT, audit.task_audit(exp.data_dir, fitted.facts))
    run.log(_images_line(fitted.counts, fitted.classes))
    test = evaluate.test_metrics(fitted.probs["test"], fitted.labels["test"], fitted.classes)
    run.log(f"test accuracy {test.accuracy:.4f} loss {test.loss:.4f} from file facts alone")
    plots.confusion_png(test.confusion, fitted.classes, f"{exp.id}: test", run.folder / "confusion.png")
    val = fitted.probs["val"]
    history = [{"val_accuracy": float(np.mean(val.argmax(1) == fitted.labels["val"]))}] if len(val) else []
    _finish(
        run,
        {
            "classes": fitted.classes,
            "counts": fitted.counts,
            "skipped_images": fitted.skipped,
            "model": {**baseline.describe(), "importances": fitted.importances},
            "path": "metadata",
            "history": history,
            "epochs_run": 0,
            "best_epoch": 0,
            "runs": 1,
            "resumed_from": 0,
            "test": test,
            "tsne": "none: a model of file facts has no learned features to draw",
            "timing": run.timing(),
            "environment": device.environment(exp.device, f"cpu: {device.cpu_model()}", backend=False),
        },
    )
    return run.folder


def _experiments(args: argparse.Namespace) -> list[Experiment]:
    if args.spec:
        try:
            settings = json.loads(read_text(Path(args.spec).resolve()))  # the file you named, where it leads
        except (OSError, ValueError, RecursionError) as err:
            raise UserError(f"{args.spec}: cannot read the JSON spec: {err}") from None
        if not isinstance(settings, dict):
            raise UserError(f"{args.spec}: give one experiment as a JSON object (a metrics.json's `experiment`)")
        return [Experiment.from_settings(settings, args.spec)]
    experiments = select(load_grid(Path(args.grid), parse_overrides(args.set), args.data), args.id or args.only)
    if not experiments:
        raise UserError(f"{args.grid}: no experiment matches {args.id or args.only!r}")
    if args.id and not any(e.id == args.id for e in experiments):
        raise UserError(f"{args.grid}: no experiment has id {args.id!r}")
    return [e for e in experiments if e.id == args.id] if args.id else experiments


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrayhpc.worker", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--grid", help="grid file (TOML) in jobs/")
    source.add_argument("--spec", help="one experiment as JSON (the `experiment` of a metrics.json)")
    parser.add_argument("--id", help="the experiment to run (default: every one in the grid, in turn)")
    parser.add_argument("--only", help="run the experiments whose id matches this pattern")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting in every experiment, e.g. --set weights=none (repeatable)",
    )
    parser.add_argument("--data", help="data root holding two/ and all/ (default: $XRAYHPC_DATA, the grid's `data`)")
    parser.add_argument("--results", help="results root (default: $XRAYHPC_RESULTS or ./results)")
    args = parser.parse_args(argv)
    experiments = _experiments(args)
    if len({(e.device, e.deterministic) for e in experiments}) == 1:
        for exp in experiments:
            run_experiment(exp, args.results)
        return 0
    for exp in experiments:  # a backend keeps its devices and its determinism: one process per run
        if code := _in_own_process(exp, args.results):
            return code
    return 0


def _in_own_process(exp: Experiment, results: str | None) -> int:
    """Run one experiment in a fresh worker process; its exit status as a shell gives it (its own
    error line is on stderr). A Ctrl-C reaches the child from the terminal: this process waits for
    it to write its record, then stops too."""
    with tempfile.TemporaryDirectory(prefix="xrayhpc-spec-") as private:
        spec = Path(private) / f"{exp.id}.json"
        spec.write_text(json.dumps({**exp.settings(), "id": exp.id}))
        where = ["--results", str(results_root(results))]
        child = subprocess.Popen([sys.executable, "-m", "xrayhpc.worker", "--spec", str(spec), *where])
        with Held([signal.SIGINT]):  # a Ctrl-C is raised here once the child has ended
            code = child.wait()
        return 128 - code if code < 0 else code
