"""``python -m medfew run|plan|pretrain|metatrain|audit|fit|predict|gather ...``, the same as the ``medfew`` command."""

from medfew.cli import main

main()
