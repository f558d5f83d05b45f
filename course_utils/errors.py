"""The one exception type the course raises for user errors."""

__all__ = ["CourseError"]


class CourseError(Exception):
    """A problem the user can fix: the message says what went wrong and what to do.

    The command line prints it as one line and exits with code 2; tracebacks are for bugs.
    Introduced in 01_synthetic_catalog.
    """
