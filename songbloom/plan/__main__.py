"""``python -m songbloom.plan``: see ``songbloom.plan.cli`` (also the ``songbloom-plan`` command)."""

import sys

from songbloom.plan.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m songbloom.plan"))
