"""``python -m medfew run|pretrain|metatrain|audit|gather ...``, the same as the ``medfew`` command."""

from medfew.cli import main

main()
