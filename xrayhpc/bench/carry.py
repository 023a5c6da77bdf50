"""What a lent GPU machine lacks, made here and carried there in one ignored folder, `.gpu-carry/`.

    python -m xrayhpc.bench.carry [make] [--data DIR] [--out DIR]     (here: `make gpu-carry`)
    eval "$(python3 -m xrayhpc.bench.carry install)"                   (there, from the repo root)

The GPU machine (Python 3.12, JAX, no TensorFlow, no network) gets only the working tree and a few
ignored paths, 64 MiB in all. `make` fills the folder with
    wheels/     the runtime dependencies it lacks, pinned to this venv's versions, and xrayhpc's own;
    data/       a 224 px copy of the data that the loader decodes to the originals' arrays, with
                  COPY.md, whose first line labels figures made from it;
    CARRIED.md  what it holds and from what: written last, so a half-made folder is never taken
                  for a finished one (the rest is staged in a temporary folder and moved in first,
                  and a refused build leaves an earlier folder as it was).
`install` puts the wheels into .gpu-carry/site with pip alone and prints the shell line that uses it.
This module imports only the standard library at the top: `install` runs where Keras is absent.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from xrayhpc.bench.runs import NOTE, ROOT
from xrayhpc.errors import UserError, cli

LIMIT = 64 * 2**20  # what may travel beside the working tree
MARKER = "CARRIED.md"
GRID = "jobs/report.toml"  # the copy decodes exactly at this grid's image size and interpolation
TASKS = ("two", "all")
OURS = {"wheels", "data", "site", MARKER}  # what a rebuild may remove from --out

# The device image's packages (JAX 0.11 with its CUDA 13 plugin, and these), and what never goes:
# TensorFlow is the CPU nodes' backend; there Keras runs on JAX.
DEVICE_HAS = frozenset(
    {"jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "numpy", "scipy", "pillow", "scikit-learn",
     "matplotlib", "h5py", "rich", "ml-dtypes", "absl-py", "cloudpickle", "typing-extensions", "packaging",
     "setuptools", "pip"}
)  # fmt: skip
NEVER = frozenset({"tensorflow", "tensorflow-cpu"})
# The device, for dependency markers (`; python_version < "3.13"`); no extras are wanted.
DEVICE_MARKERS = {
    "python_version": "3.12", "python_full_version": "3.12.0", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
    "platform_machine": "x86_64", "os_name": "posix", "extra": "",
}  # fmt: skip
PIP_DOWNLOAD = [
    "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_27_x86_64",
    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64",
]  # fmt: skip
# xrayhpc's own wheel is built from a copy of these, so no build/ or egg-info lands in the checkout
OWN_SOURCES = ("pyproject.toml", "xrayhpc", "qsub", "jobs")


def say(text: str) -> None:
    print(f"gpu-carry: {text}", file=sys.stderr, flush=True)


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def short(n: int) -> str:
    return mib(n) if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def default_data() -> Path:
    """$XRAYHPC_DATA, else ../shared/data/covid-xray beside the checkout (as the bench looks)."""
    given = os.environ.get("XRAYHPC_DATA")
    return Path(given) if given else ROOT.parent / "shared" / "data" / "covid-xray"


def find_source(given: str | None) -> Path:
    path = Path(given).expanduser() if given else default_data()
    if not any((path / task).is_dir() for task in TASKS):
        raise UserError(
            f"{path}: no data there (a folder holding two/ and all/); give it with --data DIR or XRAYHPC_DATA"
        )
    return path.resolve()


# wheels/


def project_dependencies() -> list[str]:
    """The runtime dependencies, and the `gpu` extra's NVML binding (the worker samples the GPU
    with it; the CUDA wheels there the device has in its own versions)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    nvml = [r for r in project["optional-dependencies"]["gpu"] if r.startswith("nvidia-ml-py")]
    return [*project["dependencies"], *nvml]


def carried_packages(
    roots: list[str] | None = None,
    requires: Callable[[str], list[str] | None] = importlib.metadata.requires,
    version: Callable[[str], str] = importlib.metadata.version,
) -> dict[str, str]:
    """The runtime dependencies the device lacks, followed through their own, each with the version
    installed here: what runs there is what was tested here."""
    from packaging.requirements import Requirement

    todo = list(project_dependencies() if roots is None else roots)
    found: dict[str, str] = {}
    while todo:
        req = Requirement(todo.pop(0))
        name = normalize(req.name)
        if (req.marker and not req.marker.evaluate(DEVICE_MARKERS)) or name in found or name in DEVICE_HAS | NEVER:
            continue
        try:
            found[name] = version(req.name)
        except importlib.metadata.PackageNotFoundError:
            raise UserError(f"{req.name}: not installed here, so no version to carry; run `make install`") from None
        todo += requires(req.name) or []
    return dict(sorted(found.items()))


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {proc.returncode}"


def download(name: str, version: str, folder: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *PIP_DOWNLOAD, "-d", str(folder), f"{name}=={version}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise UserError(
            f"pip download {name}=={version} (cp312 manylinux x86_64) failed: the package registry must be "
            f"reachable from here ({last_line(proc)})"
        )


def build_own_wheel(folder: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="xrayhpc-wheel-") as tmp:
        for name in OWN_SOURCES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, Path(tmp) / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, Path(tmp) / name)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(folder), tmp],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise UserError(f"building xrayhpc's wheel failed: {last_line(proc)}")


def fetch_wheels(folder: Path, packages: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    for name, version in packages.items():
        say(f"pip download {name}=={version}")
        download(name, version, folder)
    say("building xrayhpc's own wheel")
    build_own_wheel(folder)
    names = [normalize(p.name.split("-")[0]) for p in folder.glob("*.whl")]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"{folder}: more than one version of {', '.join(twice)}; carry one of each")


# data/


def grid_settings(source: Path) -> tuple[int, str, str]:
    """The report grid's image size, interpolation and colour: the copy is exact for these."""
    from xrayhpc.experiment import load_grid

    found = {(e.image_size, e.interpolation, e.colour) for e in load_grid(ROOT / GRID, data=str(source))}
    if len(found) != 1:
        raise UserError(f"{GRID}: its experiments differ in image size, interpolation or colour {sorted(found)}")
    return found.pop()


def carry_image(source: Path, target: Path, size: int, interpolation: str, colour: str) -> None:
    """One image as the loader decodes it, stored losslessly: PNG, one channel where all three are equal."""
    import numpy as np
    from PIL import Image

    from xrayhpc.study.data import decode

    pixels = decode(source, size, interpolation, colour)
    grey = bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())
    Image.fromarray(np.ascontiguousarray(pixels[..., 0]) if grey else pixels).save(target, "PNG", optimize=True)
    if not np.array_equal(decode(target, size, interpolation, colour), pixels):
        raise UserError(f"{target}: the copy does not decode to {source}'s pixels; nothing is carried")


def copy_data(source: Path, out: Path, size: int, interpolation: str, colour: str) -> tuple[int, list[str]]:
    """Every image of the task folders, same folders and stems, `.png`; in each folder the files keep
    their order, so the validation split takes the same images. Unreadable files stay behind, as the
    loader skips them: the number copied and those left."""
    from xrayhpc.study.data import UNREADABLE, list_images

    pairs: list[tuple[Path, Path]] = []
    for folder in sorted(p for task in TASKS for p in (source / task).glob("*/*") if p.is_dir()):
        files = list_images(folder)
        names = [f"{f.stem}.png" for f in files]
        if len(set(names)) != len(names) or sorted(names) != names:
            raise UserError(f"{folder}: its file names, ending in .png, would collide or change order; rename them")
        target = out / folder.relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        pairs += [(f, target / n) for f, n in zip(files, names, strict=True)]
    skipped: list[str] = []

    def one(pair: tuple[Path, Path]) -> None:
        try:
            carry_image(*pair, size, interpolation, colour)
        except UNREADABLE as err:
            skipped.append(f"{pair[0].relative_to(source)} ({type(err).__name__}: {err})")

    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(one, pairs))
    return len(pairs) - len(skipped), sorted(skipped)


# CARRIED.md and data/COPY.md


def label(source: Path, size: int, when: str) -> str:
    return f"a {size} px copy of {source.name} made by make gpu-carry on {when}"


def revision() -> str:
    """The checkout's commit, and whether it had changes: what xrayhpc's wheel was built from."""
    git = ["git", "-C", str(ROOT)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        changed = subprocess.run([*git, "status", "--porcelain", "-uno"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "outside a git checkout"
    return f"at commit {head.stdout.strip()}" + (" with uncommitted changes" if changed.stdout.strip() else "")


def copy_note(source: Path, size: int, interpolation: str, colour: str, when: str) -> str:
    """data/COPY.md: the label on its first line, then what the copy is."""
    return (
        f"{label(source, size, when)}\n\n"
        f"Not the originals: every image of {source.name}/ converted to {colour.upper()} and resized to {size}x{size} "
        f"with {interpolation} (the interpolation of {GRID}), stored as lossless PNG. The loader decodes it to the "
        f"originals' arrays at image_size {size} with {interpolation} only. See ../{MARKER}.\n"
    )


def carried_text(
    source: Path, staged: Path, settings: tuple[int, str, str], images: int, skipped: list[str], when: str
) -> str:
    size, interpolation, colour = settings
    wheels = "\n".join(f"- `{p.name}` ({short(p.stat().st_size)})" for p in sorted((staged / "wheels").glob("*.whl")))
    left = "".join(f"\n- left behind, unreadable: {s}" for s in skipped)
    return f"""# .gpu-carry: what `make gpu-carry` made for the GPU machine

Made {when} on {os.uname().nodename} by `python -m xrayhpc.bench.carry`, xrayhpc {revision()}.
{mib(size_of(staged))} in all, of the {mib(LIMIT)} that may travel.

## wheels/ ({mib(size_of(staged / "wheels"))})

The runtime dependencies the device image lacks, for CPython 3.12 manylinux x86_64, each pinned to
the version installed where this was made, and xrayhpc's own wheel (installed with `--no-deps`):

{wheels}

Not carried, as the device image has them: {", ".join(sorted(DEVICE_HAS))}.
Never carried: {", ".join(sorted(NEVER))} (Keras runs on JAX there).

Install there, from the repo root: `eval "$(python3 -m xrayhpc.bench.carry install)"` (into
.gpu-carry/site, with pip alone; it prints the `export PYTHONPATH=...` line that uses them).

## data/ ({mib(size_of(staged / "data"))}, {images} images)

> {label(source, size, when)}

From {source}, and not the originals: each image was converted to {colour.upper()} and resized to {size}x{size} with `{interpolation}` (the interpolation of {GRID}), then stored as
lossless PNG, one channel where the three are equal; folders and file stems are kept, in the same
order. `decode(copy, {size}, "{interpolation}")` gives the same array as `decode(original, {size}, "{interpolation}")`,
checked for every image when it was made. Another image size or interpolation would not reproduce
the originals. Label figures made from it with the first line of data/{NOTE}.{left}
"""


# the commands


def clearable(out: Path) -> None:
    """Refuse to replace what is not an earlier carry folder."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: a file, not a gpu-carry folder; give another --out")
    others = sorted(p.name for p in out.iterdir() if p.name not in OURS) if out.is_dir() else []
    if others:
        raise UserError(f"{out}: not a gpu-carry folder (it holds {', '.join(others[:3])}); give another --out")


def check_size(staged: Path, limit: int, out: Path) -> None:
    total = size_of(staged)
    if total > limit:
        raise UserError(
            f"{out}: {mib(total)} ({total:,} bytes) would exceed the {mib(limit)} ({limit:,} bytes) that may travel "
            "to the GPU machine; nothing was changed"
        )


def make(data: str | None, out: Path, limit: int = LIMIT, packages: dict[str, str] | None = None) -> None:
    """Stage the data, then the wheels, in a temporary folder; replace `out` with it; the marker last."""
    start = time.perf_counter()
    source = find_source(data)
    packages = carried_packages() if packages is None else packages
    settings = grid_settings(source)
    when = time.strftime("%Y-%m-%d %H:%M")
    clearable(out)
    with tempfile.TemporaryDirectory(prefix="xrayhpc-gpu-carry-") as tmp:
        staged = Path(tmp)
        say(f"data: every image of {source} at {settings[0]} px ({settings[1]}, {settings[2]}), as PNG")
        images, skipped = copy_data(source, staged / "data", *settings)
        (staged / "data" / NOTE).write_text(copy_note(source, *settings, when))
        check_size(staged, limit, out)
        say(f"data: {images} images, {mib(size_of(staged / 'data'))}")
        fetch_wheels(staged / "wheels", packages)
        check_size(staged, limit, out)
        text = carried_text(source, staged, settings, images, skipped, when)
        if out.exists():
            (out / MARKER).unlink(missing_ok=True)
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for name in ("data", "wheels"):
            shutil.move(staged / name, out / name)
    (out / f"{MARKER}.tmp").write_text(text)
    (out / f"{MARKER}.tmp").replace(out / MARKER)  # last: the folder is finished
    parts = f"wheels {mib(size_of(out / 'wheels'))}, data {mib(size_of(out / 'data'))}"
    say(f"{out}: {mib(size_of(out))} ({parts}), made in {time.perf_counter() - start:.0f} s")


def install(out: Path) -> None:
    """Install the carried wheels with pip alone and print the shell lines that use them (stdout)."""
    if not (out / MARKER).is_file():
        raise UserError(f"{out}: no finished carry folder ({MARKER} missing); run `make gpu-carry` where the data is")
    wheels = sorted((out / "wheels").glob("*.whl"))
    if not wheels:
        raise UserError(f"{out / 'wheels'}: no wheels; run `make gpu-carry` again")
    site = (out / "site").resolve()
    shutil.rmtree(site, ignore_errors=True)
    say(f"installing {len(wheels)} wheels into {site}")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--target",
         str(site), *map(str, wheels)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise UserError(f"pip install into {site} failed: {last_line(proc)}")
    print(f"export PYTHONPATH={shlex.quote(str(site))}${{PYTHONPATH:+:$PYTHONPATH}}")


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrayhpc.bench.carry", description=__doc__.split("\n")[0])
    parser.add_argument(
        "action",
        nargs="?",
        choices=("make", "install"),
        default="make",
        help="make: fill the folder here (default); install: on the GPU machine, its wheels into OUT/site",
    )
    parser.add_argument(
        "--data", help="data root with two/ and all/ (default: $XRAYHPC_DATA, ../shared/data/covid-xray)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu-carry", help="the folder (default: .gpu-carry)")
    args = parser.parse_args(argv)
    if args.action == "install":
        install(args.out)
    else:
        make(args.data, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
