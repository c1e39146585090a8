"""``python -m aliyun_sms_connector``: the ``aliyun-sms`` command."""

from aliyun_sms_connector._cli.main import main

raise SystemExit(main())
