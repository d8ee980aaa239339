"""``python -m airssys_web.cli``: the ``airssys-web`` command."""

from . import main

main()
