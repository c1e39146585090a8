"""Load checks: many threads and many tasks through one connector, every message once."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from aliyun_sms_connector import AliyunSmsConnector, AliyunSmsError

from .conftest import connector_config

NOTICE = [{"usageType": "Generic", "templateCode": "SMS_NOTICE", "type": 0}]


def number(i):
    # Distinct valid mainland mobiles, so that no number hits flow control.
    return f"1380{i:07d}"


def test_16_threads_x_200_sync_sends(emulator):
    """3,200 sync sends from 16 threads: no untyped error, each message exactly once."""
    connector = AliyunSmsConnector(connector_config(emulator, templates=NOTICE))
    threads, per_thread = 16, 200

    def worker(t):
        outcomes = []
        for i in range(per_thread):
            index = t * per_thread + i
            try:
                result = connector.send_message(
                    number(index), "Generic", {"name": "A", "order": str(index)}, out_id=str(index)
                )
                outcomes.append(result.biz_id)
            except AliyunSmsError as error:  # typed errors are allowed, others fail the test
                outcomes.append(error)
        return outcomes

    # The pool is cold: every thread makes its first call at once.
    with ThreadPoolExecutor(threads) as pool:
        outcomes = [o for chunk in pool.map(worker, range(threads)) for o in chunk]
    connector.close()
    accepted = [o for o in outcomes if isinstance(o, str)]
    assert len(accepted) == threads * per_thread
    out_ids = [m.out_id for m in emulator.outbox]
    assert sorted(out_ids, key=int) == [str(i) for i in range(threads * per_thread)]
    assert len({m.biz_id for m in emulator.outbox}) == threads * per_thread


def test_2000_concurrent_async_sends(emulator):
    """2,000 concurrent async sends through one connector: each message exactly once."""
    connector = AliyunSmsConnector(connector_config(emulator, templates=NOTICE))
    total = 2000

    async def main():
        async with connector:
            return await asyncio.gather(
                *(
                    connector.send_message_async(
                        number(i), "Generic", {"name": "A", "order": str(i)}, out_id=str(i)
                    )
                    for i in range(total)
                ),
                return_exceptions=True,
            )

    outcomes = asyncio.run(main())
    untyped = [
        o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, AliyunSmsError)
    ]
    assert untyped == []
    assert all(not isinstance(o, BaseException) for o in outcomes)
    assert sorted((m.out_id for m in emulator.outbox), key=int) == [str(i) for i in range(total)]
    assert {o.biz_id for o in outcomes} == {m.biz_id for m in emulator.outbox}


def test_one_async_session_per_loop_on_cold_start(emulator):
    """Many tasks making their first call at once share one aiohttp session."""
    connector = AliyunSmsConnector(connector_config(emulator, templates=NOTICE))

    async def main():
        await asyncio.gather(
            *(
                connector.send_message_async(number(i), "Generic", {"name": "A", "order": "1"})
                for i in range(50)
            )
        )
        transport = connector._lanes["china"].transport
        sessions = [entry.session for entry in transport._async._sessions.values()]
        await connector.aclose()
        return sessions

    sessions = asyncio.run(main())
    assert len(sessions) == 1
    assert sessions[0].closed
