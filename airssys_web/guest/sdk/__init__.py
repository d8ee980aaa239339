"""Guest-side libraries shipped with airssys-web, so a component needs nothing installed to use them.

* ``python/airssys_guest``: the Python SDK. :func:`airssys_web.guest.build.build_python_guest` puts :data:`PYTHON_PATH`
  on the guest's module path, so ``from airssys_guest import App`` works in any componentize-py guest.
* ``js/``: the JavaScript SDK (``import { App } from "@airssys/guest"``), staged as a package next to the sources of
  every componentize-qjs build (with ``@airssys/guest/middleware`` for stages), and the pinned toolchain
  (``js/toolchain/package-lock.json``).
* ``templates/``: what ``airssys-web new`` copies, one directory per language (``<lang>-middleware`` for stages).

These files run inside components, not in the host: they are package data, never imported by ``airssys_web``.
"""

from __future__ import annotations

from pathlib import Path

SDK_DIR = Path(__file__).resolve().parent
#: Directory to add to a componentize-py guest's ``--python-path``.
PYTHON_PATH = SDK_DIR / "python"
#: The JavaScript SDK module (an ES module), installed into guests as ``@airssys/guest``.
JS_SDK = SDK_DIR / "js" / "guest.js"
#: Its middleware form (``import { middleware } from "@airssys/guest/middleware"``), for stages only: it imports
#: the next handler, which only the ``middleware`` world provides.
JS_MIDDLEWARE = SDK_DIR / "js" / "middleware.js"
#: package.json + package-lock.json pinning componentize-qjs (installed into the cache on first use).
JS_TOOLCHAIN = SDK_DIR / "js" / "toolchain"
TEMPLATES = SDK_DIR / "templates"
#: The package name guests import the JavaScript SDK by.
JS_PACKAGE = "@airssys/guest"

__all__ = ["JS_MIDDLEWARE", "JS_PACKAGE", "JS_SDK", "JS_TOOLCHAIN", "PYTHON_PATH", "SDK_DIR", "TEMPLATES"]
