"""chatapp — a private chat assistant that runs entirely on your own machine."""

__version__ = "0.1.0"
