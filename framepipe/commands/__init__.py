"""The ``framepipe`` command's subcommands, one module each."""
