"""``airssys-web new NAME --lang python|js|wat [--kind middleware]``: a component directory that builds, tests
and deploys as is.

Each language's template (package data in ``airssys_web/guest/sdk/templates/<lang>``, and
``<lang>-middleware`` for a middleware stage) holds the source, an
``airssys.toml`` manifest with the grants and limits to deploy it with, a pytest file that builds the component and
calls it in-process with :class:`airssys_web.guest.testing.ComponentClient`, and a ``.gitignore``. ``{{name}}`` in file
names and contents becomes the component's name, which is also the route it is meant to be deployed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import AirssysError
from ..lifecycle.registry import validate_name
from . import KINDS, LANGUAGES
from .sdk import TEMPLATES

__all__ = ["KINDS", "LANGUAGES", "Scaffold", "scaffold"]

_PLACEHOLDER = "{{name}}"
_SUFFIX = ".tmpl"


@dataclass(frozen=True)
class Scaffold:
    """What :func:`scaffold` made."""

    name: str
    language: str
    directory: Path
    files: tuple[Path, ...]
    kind: str = "route"


def scaffold(name: str, language: str, *, directory: Path | None = None, force: bool = False,
             kind: str = "route") -> Scaffold:
    """Create component ``name`` in ``directory`` (default ``./NAME``) from the ``language`` template of ``kind``
    (a ``route`` component or a ``middleware`` stage).

    Refuses a directory that exists and is not empty, unless ``force`` (then only the template's files are
    written, overwriting those of the same name).
    """
    validate_name(name)
    if language not in LANGUAGES:
        raise AirssysError(f"unknown language {language!r}; choose one of {', '.join(LANGUAGES)}")
    if kind not in KINDS:
        raise AirssysError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    template = TEMPLATES / (language if kind == "route" else f"{language}-{kind}")
    if not template.is_dir():
        raise AirssysError(f"there is no {language} template for a {kind}: write it in python or js, or by hand "
                           "against the WIT `airssys-web wit` prints (world middleware)")
    target = Path(directory) if directory is not None else Path(name)
    if target.exists() and not target.is_dir():
        raise AirssysError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise AirssysError(f"{target} already exists and is not empty; choose another NAME or --dir "
                           "(or pass --force to write the template's files into it)")
    written = []
    for source in sorted(p for p in template.rglob(f"*{_SUFFIX}") if p.is_file()):
        relative = source.relative_to(template).as_posix()[: -len(_SUFFIX)].replace(_PLACEHOLDER, name)
        dest = target / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(source.read_text(encoding="utf-8").replace(_PLACEHOLDER, name), encoding="utf-8")
        written.append(dest)
    return Scaffold(name, language, target, tuple(written), kind)
