"""``python -m execd`` runs the command-line interface."""

from execd.cli.main import main

raise SystemExit(main())
