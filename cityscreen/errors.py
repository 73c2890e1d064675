"""The one error type the command line prints as a message (with its fix) instead of a traceback."""


class CityScreenError(Exception):
    """An error a user can fix; the message says how."""
