"""``python -m execd`` runs the command-line interface."""

from execd.cli import main

raise SystemExit(main())
