"""The ``lipsync`` command: one module per group of subcommands, each a thin front-end.

``main`` builds the parser and maps errors to exit codes; the subcommands parse their options, call the
scoring core, the session or the reports, and print. No logic here that the pytest plugin also needs.
"""
