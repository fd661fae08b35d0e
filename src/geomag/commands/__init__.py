"""Subcommands of the `geomag` CLI, one module each; see geomag.cli."""
