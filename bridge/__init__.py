"""Entity Bridge: one local process between a game engine and its AI characters."""

__version__ = "0.1.0"
