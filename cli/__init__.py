"""The ``ops-trigger`` command line: a thin front door over core."""
