"""Aliyun's Message Authentication Service (短信认证, Dypnsapi 2017-05-25): a second backend.

It builds on the pure rules at the top (config, phone, templates, errors, redaction), the
sans-I/O ``_protocol`` and the ``_http`` transport, as the SMS connector does, and returns
the SMS connector's ``SendResult``. It never imports the CLI, the emulator or verify.
"""
