"""The SDK layer. Its transport hook is exercised over HTTP in tests/e2e."""

from darabonba.core import DaraCore
from darabonba.response import DaraResponse

from aliyun_sms_connector import AliyunSmsConnector, _sdk
from aliyun_sms_connector._errors import Failure

from . import sdk_fakes


def test_hook_is_installed_once(connector, logto_config):
    """Building more connectors does not wrap the transport again."""
    first_sync, first_async = DaraCore.do_action, DaraCore.async_do_action
    AliyunSmsConnector(logto_config)
    assert DaraCore.do_action is first_sync
    assert DaraCore.async_do_action is first_async
    assert not hasattr(first_sync.__wrapped__, "__wrapped__")
    assert not hasattr(first_async.__wrapped__, "__wrapped__")


def test_observation_records_the_status():
    """Observation.record keeps the HTTP status of a response."""
    observation = _sdk.Observation()
    response = DaraResponse()
    response.status_code = 503
    observation.record(response)
    assert observation.http_status == 503


def test_describe_keeps_throttling_retry_after_in_ms():
    """describe() passes x-acs-retry-after (ms) on to the table."""
    failure = _sdk.describe(sdk_fakes.throttling(2500), _sdk.Observation())
    assert failure == Failure(
        "response",
        code="Throttling.User",
        message="Request was denied due to user flow control.",
        http_status=400,
        request_id="R",
        retry_after_ms=2500.0,
    )


def test_describe_treats_the_sdks_none_strings_as_missing():
    """The SDK writes absent fields as the string 'None'; they become None."""
    failure = _sdk.describe(
        sdk_fakes.client_error(None, request_id=None, recommend=None), _sdk.Observation()
    )
    assert (failure.code, failure.request_id, failure.recommend) == (None, None, None)
