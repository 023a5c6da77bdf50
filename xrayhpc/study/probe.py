"""Grad-CAM and the probes on finished experiments, from the weights they kept, without training:

    python -m xrayhpc.probe --results R [--only PATTERN] [--masks DIR] [--data DIR] [--again]

An experiment probed already (probes.json of its run, with the same kind of region) is left alone
unless --again; one whose data changed since it ran, or that kept no weights, is named in one line.
Only your own runs are probed: a metrics.json names the data, masks and weights files to read, and
one another user wrote could point this command at your private files (its owner can probe it).
The metadata baseline has no pixels to probe: it stays the file-facts control beside the others.
"""

from __future__ import annotations

import argparse
import dataclasses
from fnmatch import fnmatch
from pathlib import Path

from xrayhpc.errors import UserError, cli, os_error
from xrayhpc.experiment import BASELINES, Experiment
from xrayhpc.safefiles import foreign
from xrayhpc.schema import (
    METRICS,
    NEWER_PROBES,
    Metrics,
    check_metrics,
    check_probes,
    experiment_folders,
    results_root,
)
from xrayhpc.study import device


def _wanted(folder: Path, only: str | None) -> tuple[Metrics | None, str]:
    """(the finished image experiment in `folder`, "") or (None, why it is passed over; "" to say nothing)."""
    metrics, problem = check_metrics(folder)
    if metrics is None:
        return None, f"{problem}; not probed" if problem else ""
    if only and not (fnmatch(metrics.id, only) or only in metrics.id):
        return None, ""
    if metrics.experiment["backbone"] in BASELINES:
        return None, ""
    if whose := foreign(folder / METRICS):
        return None, f"{whose}: not probed (its owner can probe it)"
    return metrics, ""


def _probed(folder: Path, metrics: Metrics, masks: str | None) -> str:
    """Why `folder` needs no probing ("" where it does): probed already for this run and kind of region,
    or probed by a newer xrayhpc; a damaged probes.json is named and probed again."""
    done, problem = check_probes(folder)
    if done is None:
        if NEWER_PROBES in problem:
            return f"{problem}: not probed over"
        if problem:
            print(f"{problem}: probing it again")
        return ""
    lungs = bool(masks if masks is not None else metrics.experiment.get("masks"))
    same = (done.id, done.fingerprint) == (metrics.id, metrics.experiment["fingerprint"])
    if same and (done.region == "lung field") == lungs:
        return f"{metrics.id}: probed already (--again to probe it again): {done.verdict}"
    return ""


def _experiment(folder: Path, metrics: Metrics, data: str | None, masks: str | None) -> Experiment:
    """The run's experiment, on `data` and with `masks` where given; UserError where its data changed."""
    settings = {k: v for k, v in metrics.experiment.items() if k != "fingerprint"}
    ran = Experiment.from_settings(settings, f"{folder / METRICS}: experiment", files=False)
    if data:
        ran = dataclasses.replace(ran, data=str(Path(data).expanduser().resolve()))
    if metrics.experiment["fingerprint"] not in ran.fingerprints:
        raise UserError(
            f"{folder.name}: its data (or a setting) changed since it ran, so its model cannot be probed on "
            "these images: run it again, or give --data the folder it ran on"
        )
    if masks is None:
        return ran
    chosen = str(Path(masks).expanduser().resolve()) if masks else ""
    if chosen and not Path(chosen).is_dir():
        raise UserError(f"--masks {masks}: not a folder; give the folder of lung masks (laid out as the data root)")
    return dataclasses.replace(ran, masks=chosen)


def probe_one(folder: Path, metrics: Metrics, exp: Experiment) -> str:
    """Load the data and the kept model, probe, write; the sentence."""
    from xrayhpc.study import kept, probes, training
    from xrayhpc.study.data import experiment_data

    def log(line: str) -> None:
        print(f"  {metrics.id}: {line}", flush=True)

    data = experiment_data(exp, log)
    if data.classes != metrics.classes:
        raise UserError(f"{folder.name}: the data's classes {data.classes} are not the run's {metrics.classes}")
    models = training.build(exp, len(data.classes))
    kept.load(folder, exp, models)
    looked = probes.run(exp, models, data, log, ident=(metrics.id, metrics.experiment["fingerprint"]))
    probes.write(folder, exp, looked, data)
    return looked.record.sentence


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrayhpc.probe", description=__doc__.split("\n")[0])
    parser.add_argument("--results", help="results root (default: $XRAYHPC_RESULTS or ./results)")
    parser.add_argument("--only", help="probe the experiments whose id matches this pattern")
    parser.add_argument("--masks", help="lung masks laid out as the data root (default: the run's; '' for none)")
    parser.add_argument("--data", help="the data root the runs used, where it has moved (default: the run's)")
    parser.add_argument("--again", action="store_true", help="probe again experiments probed already")
    args = parser.parse_args(argv)
    root = results_root(args.results)
    chosen = []
    for folder in experiment_folders(root):
        metrics, why = _wanted(folder, args.only)
        if why:
            print(why)
        if metrics is not None:
            chosen.append((folder, metrics))
    if not chosen:
        matching = f" matching {args.only!r}" if args.only else ""
        raise UserError(f"{root}: no finished image experiment{matching} to probe")
    failed = 0
    with device.configured("cpu"):
        for folder, metrics in chosen:
            if not args.again and (skip := _probed(folder, metrics, args.masks)):
                print(skip)
                continue
            try:
                exp = _experiment(folder, metrics, args.data, args.masks)
                print(f"{metrics.id}: probing", flush=True)
                print(f"{metrics.id}: {probe_one(folder, metrics, exp)}")
            except (UserError, OSError) as err:  # one folder's problem: the others are still probed
                failed += 1
                print(f"error: {os_error(err) if isinstance(err, OSError) else err}")
    return 1 if failed else 0
