import sys

from songbloom.sketch.cli import main

sys.exit(main())
