"""The guest side: building components from source (``build``), scaffolding (``scaffold``), in-process testing
(``testing``), live reload (``dev``), and the guest SDKs (``sdk``)."""

#: The languages a guest may be written in, with what marks a source directory as that language (``build`` detects
#: the language by it, ``new`` scaffolds each). Here rather than in ``build`` so the CLI's ``--lang`` choices cost
#: no import of the toolchains (the same holds for :data:`KINDS`).
LANGUAGES = {"python": "app.py", "js": "app.js", "wat": "*.wat"}
#: What a component is: a ``route`` answers requests; a ``middleware`` stage runs in front of a route and calls what
#: comes next (``build --kind``, ``new --kind``).
KINDS = ("route", "middleware")
