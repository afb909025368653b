"""The ``execd`` command and its subcommands."""
