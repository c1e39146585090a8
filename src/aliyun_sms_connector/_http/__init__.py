"""The bytes on the wire: one pool per endpoint, sync and asyncio, and what "maybe sent" means.

It never imports the protocol wing, the connector, the config, the CLI, the emulator or
verify; of the package it uses ``_errors`` alone. Both drivers share ``models``.
"""
