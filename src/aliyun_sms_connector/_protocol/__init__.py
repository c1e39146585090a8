"""The Aliyun RPC call, sans I/O: what a call sends, how it is signed, when to retry.

It never imports the transport or its drivers (only ``_http.models``, the bytes it hands
over), nor the connector, the CLI, the emulator or verify.
"""
