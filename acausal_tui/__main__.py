"""`python -m acausal_tui`: the same command line as `acausal-tui`."""

import sys

from acausal_tui.cli import main

if __name__ == "__main__":
    sys.exit(main())
