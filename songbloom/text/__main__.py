"""``python -m songbloom.text``: see ``songbloom.text.cli`` (also the ``songbloom-text`` command)."""

import sys

from songbloom.text.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m songbloom.text"))
