"""therapy-console: the clinic's treatment console (Qt GUI and its non-Qt application layer)."""

__version__ = "0.1.0"
