"""Subcommands of the ``mple`` command line, one module each (see ``mple_metrics.cli``)."""
