"""The extension module and its stub agree: every name ``_native.pyi`` declares exists, and nothing else is public
(pydantic-core pins its ``_pydantic_core.pyi`` the same way)."""

from __future__ import annotations

import ast
from pathlib import Path

from airssys_web import _native

STUB = Path(__file__).resolve().parents[1] / "airssys_web" / "_native.pyi"


def _stub() -> tuple[set[str], dict[str, set[str]]]:
    tree = ast.parse(STUB.read_text())
    names: set[str] = set()
    members: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            members[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)} | {
                n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names, members


def test_the_stub_declares_exactly_the_module() -> None:
    names, members = _stub()
    public = {n for n in dir(_native) if not n.startswith("_")}
    declared = names - {"Host", "HeaderPairs"}  # typing helpers of the stub only
    assert declared == public
    for cls, declared_members in members.items():
        if cls == "Host":
            continue
        klass = getattr(_native, cls)
        inherited = {n for base in klass.__mro__[1:] for n in dir(base)}
        actual = {n for n in dir(klass) if not n.startswith("_") and n not in inherited}
        if cls == "GuestFault":  # attributes set on each instance by the extension
            actual |= {"kind", "detail", "status"}
        assert {m for m in declared_members if not m.startswith("_")} == actual, cls
