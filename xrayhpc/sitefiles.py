"""The files that travel with the code: the job template and site profiles (qsub/), the grids (jobs/).

They ship inside the package (`xrayhpc.qsub`, `xrayhpc.grids`), so `pip install .` or
`pip install git+URL` can submit from any directory; a `qsub/` or `jobs/` folder in the working
directory overrides a packaged file of the same name, so a site can keep its own.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from xrayhpc.errors import UserError

PACKAGES = {"qsub": "xrayhpc.qsub", "jobs": "xrayhpc.grids"}


def _folders(folder: str) -> list[Path]:
    """The working directory's folder first, then the packaged one."""
    packaged = Path(str(resources.files(PACKAGES[folder])))
    local = Path(folder).resolve()
    return [local, packaged] if local != packaged else [packaged]


def find(folder: str, name: str, suffix: str = "") -> Path | None:
    """`name` (a path, or a bare name with or without `suffix`) as an existing file, else None."""
    given = Path(name)
    if given.is_file():
        return given
    if given.parent != Path("."):
        return None
    for base in _folders(folder):
        for candidate in (base / name, base / f"{name}{suffix}"):
            if candidate.is_file():
                return candidate
    return None


def overrides(paths: list[Path | None]) -> list[str]:
    """One line for each of `paths` that is a working-directory file in place of a packaged one of
    the same name: it changes what every job runs, so a person should know which file it was."""
    out = []
    for path in paths:
        if path is None:
            continue
        for folder, package in PACKAGES.items():
            local, shipped = Path(folder).resolve(), Path(str(resources.files(package)))
            if local != shipped and path.resolve().parent == local and (shipped / path.name).is_file():
                out.append(
                    f"note: using {path.resolve()} from the working directory, not the packaged {folder}/{path.name}"
                )
    return out


def names(folder: str, suffix: str) -> list[str]:
    """Every name `find` can resolve in this folder, for error messages."""
    return sorted({p.name.removesuffix(suffix) for base in _folders(folder) for p in base.glob(f"*{suffix}")})


def packaged(folder: str, name: str) -> Path:
    """The copy shipped with the package, never a local override (the report's own settings)."""
    return Path(str(resources.files(PACKAGES[folder]))) / name


def read_toml(path: Path) -> dict[str, Any]:
    """A grid or profile file, or one line naming it and what is wrong."""
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: not valid TOML: {err}") from None
    except OSError as err:
        raise UserError(f"{path}: cannot be read: {err.strerror or err}") from None
