"""The ``spendsentry`` command line: :mod:`streams.cli.main` and one module per command.

The top of the import graph: may import anything in the package.
"""
