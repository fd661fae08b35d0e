"""One exception type for user mistakes, so the CLI can print a clear message instead of a traceback."""


class GeoMagError(Exception):
    """A problem the user can fix (bad input, missing model, wrong flag). The CLI exits with code 2."""
