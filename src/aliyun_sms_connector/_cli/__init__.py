"""The ``aliyun-sms`` command: :mod:`.main` parses and dispatches, one module per family.

Every command imports :mod:`.common` and none imports another; nothing in the library
imports this wing. It uses the connector's modules, never the ``_protocol`` or ``_http`` wings.
"""
