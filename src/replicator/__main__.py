"""``python -m replicator`` runs the command line."""

import sys

from replicator.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
