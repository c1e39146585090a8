"""The public face of aliyun_sms_connector.verify: adding a name is deliberate."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from aliyun_sms_connector import verify

EXPECTED = {
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
}


def test_all_is_exactly_the_public_names():
    """__all__ lists exactly the expected names, and each one exists."""
    assert set(verify.__all__) == EXPECTED
    assert len(verify.__all__) == len(EXPECTED)
    # "@py_…" names come from pytest's assertion rewriting of its plugin's package.
    public = {name for name in dir(verify) if not name.startswith(("_", "@"))}
    assert public == EXPECTED
    for name in EXPECTED:
        assert getattr(verify, name).__module__.startswith("aliyun_sms_connector.verify")


BLOCK_REDIS = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockRedis(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "redis" or name.startswith("redis."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, BlockRedis())
    import aliyun_sms_connector
    from aliyun_sms_connector.verify import (
        MemoryStore, RedisStore, VerificationPolicy, VerificationService,
    )
    from aliyun_sms_connector.verify import _keys
    assert "redis" not in sys.modules
    connector = aliyun_sms_connector.AliyunSmsConnector({
        "accessKeyId": "LTAIx", "accessKeySecret": "secret-0123456789",
        "signName": "S", "templates": [{"usageType": "Generic", "templateCode": "SMS_1"}],
    })
    service = VerificationService(connector, policy=VerificationPolicy(
        test_numbers={"13800138000": "246810"}))
    service.start("13800138000", "SignIn")
    assert service.check("13800138000", "SignIn", "246810").ok
    try:
        RedisStore.from_url("redis://127.0.0.1:1/0")
    except ImportError as error:
        assert "aliyun-sms-connector[redis]" in str(error), error
    else:
        raise AssertionError("RedisStore without redis-py did not raise")
    print("ok")
    """
)


def test_imports_without_redis():
    """Without redis-py the package and verify import, MemoryStore works, RedisStore says why."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_REDIS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
