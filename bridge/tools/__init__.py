"""The `entity-bridge` subcommands besides `serve` and `replay`, one small module each.

They sit just below `cli.py`: each may use the server (to run a bridge in-process), the
config and the providers, and `cli.py` only parses arguments and calls them.
"""
