"""``python -m replicator`` runs the command line."""

from replicator.cli.main import main

if __name__ == "__main__":
    main()
