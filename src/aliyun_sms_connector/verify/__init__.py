"""Verification codes end to end: issue, send and check them safely.

::

    service = VerificationService(connector, RedisStore.from_url(url), secret_key=key)
    service.start("+86 138 0013 8000", "SignIn", client_ip=ip)
    result = service.check("13800138000", "SignIn", code)
    if result.ok: ...

Only HMACs of numbers, IPs and codes are stored. :class:`MemoryStore` serves
one process; :class:`RedisStore` (``pip install aliyun-sms-connector[redis]``)
shares codes and limits between instances, on Redis or Redis Cluster.

This wing uses the connector's public API only (``from aliyun_sms_connector
import ...``): it never imports a private module of the package, the
emulator or the command line.
"""

from ._events import VerificationEvent
from ._guard import PumpingGuard
from ._memory import MemoryStore
from ._policy import VerificationPolicy
from ._redis import RedisStore
from ._results import CheckResult, CheckStatus, Verification
from ._service import VerificationService
from ._store import VerificationStore

__all__ = [
    "CheckResult",
    "CheckStatus",
    "MemoryStore",
    "PumpingGuard",
    "RedisStore",
    "Verification",
    "VerificationEvent",
    "VerificationPolicy",
    "VerificationService",
    "VerificationStore",
]
