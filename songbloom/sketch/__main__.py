"""``python -m songbloom.sketch``: see ``songbloom.sketch.cli`` (also the ``songbloom-sketch`` command)."""

import sys

from songbloom.sketch.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m songbloom.sketch"))
