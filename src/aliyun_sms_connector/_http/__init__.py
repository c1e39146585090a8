"""The bytes on the wire: one pool per endpoint, sync and asyncio, and what "maybe sent" means.

:mod:`.models` holds what both drivers share; :mod:`.transport` is what a connector holds.
It never imports the protocol wing, the connector, the config, the CLI, the emulator or verify;
of the package it uses :mod:`.._errors` alone.
"""
