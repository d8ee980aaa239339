"""The package's layers and their one-way arrows (as ``airssys_web/__init__.py`` draws them), checked on the source.

cli → web and guest → lifecycle → runtime and capabilities → errors, units, observability. A module may import its
own layer and the layers below it, never one above (nor runtime ↔ capabilities: the runtime knows policies only
through the interfaces in ``runtime.imports``). Imports inside functions and under ``TYPE_CHECKING`` count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "airssys_web"
BASE = {"errors", "units", "_files", "_native", "observability"}
#: layer -> the layers it may import (besides itself and the base)
ALLOWED = {
    "runtime": set(),
    "capabilities": set(),
    "lifecycle": {"runtime", "capabilities"},
    "web": {"lifecycle", "runtime", "capabilities"},
    "guest": {"lifecycle", "runtime", "capabilities"},
    "cli": {"web", "guest", "lifecycle", "runtime", "capabilities"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # `from . import strategies`
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "airssys_web" or m.startswith("airssys_web.")}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return "base" if parts[1] in BASE else parts[1]


def _sources() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "sdk" not in p.relative_to(PACKAGE).parts]


def test_every_module_belongs_to_a_layer() -> None:
    for path in _sources():
        module = _module_name(path)
        if module == "airssys_web":
            continue
        assert _layer(module) in {"base", *ALLOWED}, f"{module} is in no layer"


def test_arrows_point_one_way() -> None:
    wrong = []
    for path in _sources():
        module = _module_name(path)
        if module == "airssys_web":  # the public API re-exports from every layer, lazily
            continue
        own = _layer(module)
        allowed = {"base", own} | ALLOWED.get(own or "", set())
        for target in sorted(_imports(path)):
            layer = _layer(target)
            if layer is not None and layer in {"base", *ALLOWED} and layer not in allowed:
                wrong.append(f"{module} ({own}) imports {target} ({layer})")
    assert not wrong, "\n".join(wrong)
