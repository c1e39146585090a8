"""The store's Lua scripts, and how their replies read.

One script per atomic step: ``RESERVE`` checks a number's cooldowns and caps
and stores the code's digest; ``RESERVE_SHARED`` does the same for the per-IP
and global limits; ``RELEASE`` and ``RELEASE_SHARED`` undo a reservation whose
SMS surely never left; ``CHECK`` reads, compares and counts a guess. Each
touches the keys of one hash tag only, so it runs on Redis Cluster too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ._results import CheckStatus
from ._store import Refusal

__all__ = [
    "CHECK",
    "RELEASE",
    "RELEASE_SHARED",
    "RESERVE",
    "RESERVE_SHARED",
    "SCRIPTS",
    "Script",
    "checked",
    "ignore",
    "refusal",
]

_RESERVE = """
local now = tonumber(ARGV[1])
local id = ARGV[2]
if redis.call('HGET', KEYS[1], 'i') == id then return {1} end
local worst, worst_ms = false, 0
local function refuse(code, ms)
  if ms > worst_ms then worst, worst_ms = code, ms end
end
for i = 2, 3 do
  local v = redis.call('GET', KEYS[i])
  if v then
    local ends = tonumber(string.match(v, '^(%d+)'))
    if ends and ends > now then refuse('VerificationCooldown', ends - now) end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 86400000)
local function window(span, cap, code)
  if cap <= 0 then return end
  local live = redis.call('ZRANGEBYSCORE', KEYS[4], now - span + 1, '+inf', 'WITHSCORES')
  local n = #live / 2
  if n >= cap then refuse(code, tonumber(live[2 * (n - cap) + 2]) + span - now) end
end
window(3600000, tonumber(ARGV[7]), 'NumberHourlyLimit')
window(86400000, tonumber(ARGV[8]), 'NumberDailyLimit')
if worst then return {0, worst, worst_ms} end
local expires = tonumber(ARGV[4])
local old = redis.call('HMGET', KEYS[1], 'i', 'd', 'a', 'x')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'i', id, 'd', ARGV[3], 'a', 0, 'x', ARGV[4])
if old[1] and tonumber(old[4]) > now then
  -- kept so that a release can put the replaced code back, attempts and all
  redis.call('HSET', KEYS[1], 'pi', old[1], 'pd', old[2], 'pa', old[3], 'px', old[4])
end
redis.call('PEXPIRE', KEYS[1], math.max(expires - now, 1))
for i = 2, 3 do
  local span = tonumber(ARGV[3 + i])
  if span > 0 then
    redis.call('SET', KEYS[i], string.format('%d:%s', now + span, id), 'PX', span)
  end
end
redis.call('ZADD', KEYS[4], now, id)
redis.call('PEXPIRE', KEYS[4], 86400000)
return {1}
"""

_RESERVE_SHARED = """
local now = tonumber(ARGV[1])
local id = ARGV[2]
for i = 1, #KEYS do
  if redis.call('ZSCORE', KEYS[i], id) then return {1} end
end
local worst, worst_ms = false, 0
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - 3600000)
  local cap = tonumber(ARGV[1 + 2 * i])
  local n = redis.call('ZCARD', KEYS[i])
  if n >= cap then
    local leaving = redis.call('ZRANGE', KEYS[i], n - cap, n - cap, 'WITHSCORES')
    local ms = tonumber(leaving[2]) + 3600000 - now
    if ms > worst_ms then worst, worst_ms = ARGV[2 + 2 * i], ms end
  end
end
if worst then return {0, worst, worst_ms} end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now, id)
  redis.call('PEXPIRE', KEYS[i], 3600000)
end
return {1}
"""

_RELEASE = """
local id = ARGV[1]
local now = tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'i', 'pi', 'pd', 'pa', 'px')
if h[1] == id then
  redis.call('DEL', KEYS[1])
  if h[2] and tonumber(h[5]) > now then
    redis.call('HSET', KEYS[1], 'i', h[2], 'd', h[3], 'a', h[4], 'x', h[5])
    redis.call('PEXPIRE', KEYS[1], tonumber(h[5]) - now)
  end
end
for i = 2, 3 do
  local v = redis.call('GET', KEYS[i])
  if v and string.sub(v, -#id - 1) == ':' .. id then redis.call('DEL', KEYS[i]) end
end
redis.call('ZREM', KEYS[4], id)
return 1
"""

_RELEASE_SHARED = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
"""

# The digests are compared through their SHA-1s (the "double hash" pattern): how
# long the comparison takes then says nothing about where the digests differ.
# The reply is one integer, attempts left * 4 + the status's index in _STATUSES.
_CHECK = """
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'd', 'a', 'x', 'pd', 'px')
if not h[1] then return 0 end
if tonumber(h[3]) <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
local a = tonumber(h[2])
if a >= max then return 1 end
local guess = redis.sha1hex(ARGV[2])
if redis.sha1hex(h[1]) == guess then
  redis.call('DEL', KEYS[1])
  return (max - a) * 4 + 2
end
if h[4] and tonumber(h[5]) > now and redis.sha1hex(h[4]) == guess then
  return 0 -- the code of a verification this one replaced: not found, not counted
end
a = redis.call('HINCRBY', KEYS[1], 'a', 1)
return (max - a) * 4 + 3
"""
_STATUSES = (
    CheckStatus.NOT_FOUND,
    CheckStatus.TOO_MANY_ATTEMPTS,
    CheckStatus.APPROVED,
    CheckStatus.WRONG_CODE,
)


@dataclass(frozen=True)
class Script:
    name: str
    source: str

    sha: str = ""

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)


RESERVE = Script("reserve", _RESERVE)
RESERVE_SHARED = Script("reserve_shared", _RESERVE_SHARED)
RELEASE = Script("release", _RELEASE)
RELEASE_SHARED = Script("release_shared", _RELEASE_SHARED)
CHECK = Script("check", _CHECK)
SCRIPTS = (RESERVE, RESERVE_SHARED, RELEASE, RELEASE_SHARED, CHECK)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def ignore(_: Any) -> None:
    """The release scripts' reply, which says nothing."""


def refusal(reply: Any) -> Refusal | None:
    """A reserve script's reply: ``{1}`` stored, else ``{0, code, retry_after_ms}``."""
    if int(reply[0]) == 1:
        return None
    return Refusal(_text(reply[1]), int(reply[2]))


def checked(reply: Any) -> tuple[CheckStatus, int]:
    """The check script's reply, one integer: attempts left * 4 + the status's index."""
    left, status = divmod(int(reply), 4)
    return _STATUSES[status], left
