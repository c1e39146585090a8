"""The store's Lua scripts, and how their replies read.

One script per atomic step:

- ``RESERVE`` checks a number's cooldowns and caps and holds the new code's
  digest beside the pending code (fields ``ri``/``rd``/``rx``), never in its
  place;
- ``COMMIT`` makes the held code the pending one (``i``/``d``/``a``/``x``)
  once its SMS was handed over;
- ``RESERVE_SHARED`` counts a send against the per-IP and global limits;
- ``RELEASE`` and ``RELEASE_SHARED`` give back what a start whose SMS surely
  never left took, and never touch the pending code;
- ``CHECK`` counts a guess, then judges it;
- ``GUARD_IP`` and ``SETTLE_IP`` hold and give back a place in the per-IP
  count of wrong guesses around a check (another slot than the number's);
- ``PUMP_START``, ``PUMP_RELEASE`` and ``PUMP_APPROVE`` judge and count a
  start, un-count it, and count an approval, on one destination prefix's keys
  (see _guard.py for the arithmetic, which ``PUMP_START`` repeats);
- on one node only (their keys lie in two slots), ``PUMP_RESERVE`` and
  ``PUMP_RESERVE_SHARED`` run ``PUMP_START`` and then ``RESERVE`` or
  ``RESERVE_SHARED`` (un-counting the start if that refuses), and
  ``CHECK_PUMP`` runs ``CHECK`` and then, on approval, ``PUMP_APPROVE``: each
  script's own text, as a function (see _redis_pump.py).

Each but the joined ones touches the keys of one hash tag only, so it runs on
Redis Cluster too.

Full memory: under ``maxmemory``, Redis refuses a script's first write that
could grow memory and then lets the script run on (it cannot stop a script
half way), and a trim (``ZREMRANGEBYSCORE``, ``HDEL``) that removed something
counts as a first write. So every script's first write is one that grows:
``CHECK`` counts the guess (``HINCRBY``) before it reads the digest, and
``RESERVE``, ``RESERVE_SHARED``, ``GUARD_IP``, ``PUMP_START`` and
``PUMP_APPROVE`` add before they trim. When
that write is refused the script stops: no guess is judged that was not
counted, and no SMS is sent for a code that could not be held. Only an
``HDEL`` of an expired code comes first in ``CHECK``, and it answers
``NOT_FOUND`` without judging.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ._results import CheckStatus
from ._store import Counted, Refusal

__all__ = [
    "APPROVE",
    "CHECK",
    "CHECK_PUMP",
    "COMMIT",
    "COUNT",
    "GUARD_IP",
    "PUMP_APPROVE",
    "PUMP_RELEASE",
    "PUMP_RESERVE",
    "PUMP_RESERVE_SHARED",
    "PUMP_START",
    "RELEASE",
    "RELEASE_SHARED",
    "RESERVE",
    "RESERVE_SHARED",
    "SCRIPTS",
    "SETTLE_IP",
    "SPANS_SLOTS",
    "Script",
    "approved",
    "checked",
    "committed",
    "counted",
    "ignore",
    "refusal",
]

_RESERVE = """
local now = tonumber(ARGV[1])
local id = ARGV[2]
local held = redis.call('HMGET', KEYS[1], 'i', 'ri')
if held[1] == id or held[2] == id then return {1} end
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
-- Held apart: checks go on being judged against the pending code. The first
-- write: a full Redis refuses it, and nothing is reserved or sent.
redis.call('HSET', KEYS[1], 'ri', id, 'rd', ARGV[3], 'rx', ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 86400000)
if redis.call('PTTL', KEYS[1]) < expires - now then
  redis.call('PEXPIRE', KEYS[1], math.max(expires - now, 1))
end
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

# KEYS: the record, then (Aliyun-made codes) the records of the usage types
# sharing its scheme. ARGV: the verification id, now, the marker.
_COMMIT = """
local id = ARGV[1]
local now = tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'ri', 'rd', 'rx')
if h[1] ~= id then return 0 end
local expires = tonumber(h[3])
if expires <= now then
  redis.call('HDEL', KEYS[1], 'ri', 'rd', 'rx')
  return 0
end
redis.call('HSET', KEYS[1], 'i', id, 'd', h[2], 'a', 0, 'x', h[3])
redis.call('HDEL', KEYS[1], 'ri', 'rd', 'rx')
redis.call('PEXPIRE', KEYS[1], expires - now)
-- Aliyun-made codes: the usage types sharing this one's scheme (KEYS[2..]);
-- Aliyun's new code replaced theirs, so their pending verifications go.
for i = 2, #KEYS do
  if redis.call('HGET', KEYS[i], 'd') == ARGV[3] then
    redis.call('HDEL', KEYS[i], 'i', 'd', 'a', 'x')
  end
end
return 1
"""

_RESERVE_SHARED = """
local now = tonumber(ARGV[1])
local id = ARGV[2]
for i = 1, #KEYS do
  if redis.call('ZSCORE', KEYS[i], id) then return {1} end
end
local worst, worst_ms = false, 0
for i = 1, #KEYS do
  local cap = tonumber(ARGV[1 + 2 * i])
  local live = redis.call('ZRANGEBYSCORE', KEYS[i], now - 3600000 + 1, '+inf', 'WITHSCORES')
  local n = #live / 2
  if n >= cap then
    local ms = tonumber(live[2 * (n - cap) + 2]) + 3600000 - now
    if ms > worst_ms then worst, worst_ms = ARGV[2 + 2 * i], ms end
  end
end
if worst then return {0, worst, worst_ms} end
-- ZADD first: a full Redis refuses it, and nothing is counted or sent.
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now, id)
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - 3600000)
  redis.call('PEXPIRE', KEYS[i], 3600000)
end
return {1}
"""

_RELEASE = """
local id = ARGV[1]
if redis.call('HGET', KEYS[1], 'ri') == id then
  redis.call('HDEL', KEYS[1], 'ri', 'rd', 'rx')
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

# KEYS: the record, the number's wrong guesses. ARGV: now, digest, max attempts,
# the number's cap of wrong guesses an hour (0: none), the verification id
# asked for, and 1 when the check is bound to it (0: any).
# The digests (and ids) are compared through their SHA-1s (the "double hash"
# pattern): how long the comparison takes then says nothing about where they
# differ. The reply is one integer, attempts left * 4 + the status's index in
# _STATUSES.
_CHECK = """
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'i', 'd', 'a', 'x')
if not h[2] then return 0 end
if tonumber(h[4]) <= now then
  redis.call('HDEL', KEYS[1], 'i', 'd', 'a', 'x')
  return 0
end
if ARGV[6] == '1' and redis.sha1hex(ARGV[5]) ~= redis.sha1hex(h[1]) then return 0 end
if tonumber(h[3]) >= max then return 1 end
local cap = tonumber(ARGV[4])
if cap > 0 and redis.call('ZCOUNT', KEYS[2], now - 3600000 + 1, '+inf') >= cap then
  return 1
end
-- Counted before it is judged: under maxmemory this write is refused and the
-- script stops here, so no guess is judged that was not counted.
local a = redis.call('HINCRBY', KEYS[1], 'a', 1)
if redis.sha1hex(h[2]) == redis.sha1hex(ARGV[2]) then
  redis.call('HDEL', KEYS[1], 'i', 'd', 'a', 'x')
  return (max - a + 1) * 4 + 2
end
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 3600000)
  redis.call('ZADD', KEYS[2], now, h[1] .. ':' .. a)
  redis.call('PEXPIRE', KEYS[2], 3600000)
end
return (max - a) * 4 + 3
"""

# KEYS: one IP's wrong guesses. ARGV: now, cap, the place's name.
_GUARD_IP = """
local now = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now - 3600000 + 1, '+inf', 'WITHSCORES')
local n = #live / 2
if n >= cap then
  return {0, 'IpFailedChecksLimit', tonumber(live[2 * (n - cap) + 2]) + 3600000 - now}
end
-- ZADD first: a full Redis refuses it, and no place is held (nor judged).
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
redis.call('PEXPIRE', KEYS[1], 3600000)
return {1}
"""

_SETTLE_IP = """
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

# KEYS: the prefix's counts (hash of "s:<bucket>" and "a:<bucket>"), its pending
# starts (sorted set: member -> start ms), its block (until ms).
# ARGV: now, member, and the policy in one argument (fewer to send on every
# start): "<bucket ms>:<grace ms>:<min starts>:<min conversion>:<block ms>:<1 to
# enforce, 0 to monitor>". An argument that does not read so stops the script
# before its first write. Reply {1} counted, {2, 'PumpingMonitored', ms}
# counted and tripped a monitoring guard, {0, 'PumpingBlocked', ms} refused by
# a block it just began, {0, 'PumpingSuspected', ms} refused by one in force.
_PUMP_START = """
local now = tonumber(ARGV[1])
local width, grace, min_starts, min_conversion, block_ms, enforce =
  string.match(ARGV[3], '^(%d+):(%d+):(%d+):([^:]+):(%d+):([01])$')
width, grace, block_ms = tonumber(width), tonumber(grace), tonumber(block_ms)
min_starts, min_conversion = tonumber(min_starts), tonumber(min_conversion)
enforce = enforce == '1'
local current = math.floor(now / width)
local oldest = current - 11
local reply = {1}
local ends = tonumber(redis.call('GET', KEYS[3]) or '0')
local flat = redis.call('HGETALL', KEYS[1])
if ends > now then
  if enforce then return {0, 'PumpingSuspected', ends - now} end
else
  local judged, approved = 0, 0
  for i = 1, #flat, 2 do
    local kind, b = string.match(flat[i], '^(%a):(%-?%d+)$')
    b = tonumber(b)
    if b and b >= oldest and b <= current then
      local v = tonumber(flat[i + 1])
      if kind == 'a' then approved = approved + v end
      if (b + 1) * width <= now - grace then
        if kind == 's' then judged = judged + v end
      elseif kind == 'a' then
        judged = judged + v
      end
    end
  end
  if judged >= min_starts and approved < min_conversion * judged then
    -- The first write, and one that grows: a full Redis refuses it.
    redis.call('SET', KEYS[3], now + block_ms, 'PX', block_ms)
    if enforce then return {0, 'PumpingBlocked', block_ms} end
    reply = {2, 'PumpingMonitored', block_ms}
  end
end
-- Counted first (a full Redis refuses it and nothing is sent), trimmed after.
redis.call('HINCRBY', KEYS[1], 's:' .. current, 1)
redis.call('ZADD', KEYS[2], 'NX', now, ARGV[2])
for i = 1, #flat, 2 do
  local b = tonumber(string.match(flat[i], '^%a:(%-?%d+)$'))
  if b and b < oldest then redis.call('HDEL', KEYS[1], flat[i]) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', oldest * width - 1)
redis.call('PEXPIRE', KEYS[1], 12 * width)
redis.call('PEXPIRE', KEYS[2], 12 * width)
return reply
"""

# KEYS: counts, pending. ARGV: the start's now, member, bucket ms.
_PUMP_RELEASE = """
local field = 's:' .. math.floor(tonumber(ARGV[1]) / tonumber(ARGV[3]))
if tonumber(redis.call('HGET', KEYS[1], field) or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], field, -1)
end
if tonumber(redis.call('ZSCORE', KEYS[2], ARGV[2]) or '-1') == tonumber(ARGV[1]) then
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return 1
"""

# KEYS: counts, pending. ARGV: now, member, bucket ms. Counts the approval in
# the bucket of the start it approves, if that is still in the window.
_PUMP_APPROVE = """
local started = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not started then return 0 end
local width = tonumber(ARGV[3])
local b = math.floor(tonumber(started) / width)
if b >= math.floor(tonumber(ARGV[1]) / width) - 11 then
  redis.call('HINCRBY', KEYS[1], 'a:' .. b, 1)
end
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""


# One node (no Cluster, no proxy that keeps a script to one slot): the guard's
# steps joined to the step a start or a check makes anyway, in one round trip.
# Each script's text runs unchanged, as a function of its own KEYS and ARGV.
def _functions(**bodies: str) -> str:
    return "".join(
        f"local function {name}(KEYS, ARGV)\n{body}\nend\n" for name, body in bodies.items()
    )


# The guard, then the reservation; a refused reservation un-counts the start.
# KEYS and ARGV: the guard's first (3 keys, 3 arguments), which it reads whole;
# the rest are the reservation's.
_PUMP_THEN = """
local r = pump(KEYS, ARGV)
if r[1] == 0 then return r end
local rk, ra = {}, {}
for i = 4, #KEYS do rk[i - 3] = KEYS[i] end
for i = 4, #ARGV do ra[i - 3] = ARGV[i] end
local s = step(rk, ra)
if s[1] == 0 then
  release({KEYS[1], KEYS[2]}, {ARGV[1], ARGV[2], string.match(ARGV[3], '^%d+')})
  return s
end
return r
"""

# The check, then, if it approved, the approval's count. KEYS: the check's two,
# then the prefix's counts and pending. ARGV: the check's six, then the bucket
# ms. The check reads only its own share of KEYS and ARGV, so it gets them
# whole. The approval's "now" is the check's (ARGV[1]), and the start's entry,
# "<number id>:<usage type>", is read from the record's key name
# ("<prefix>{<number id>}:code:<usage type>", no brace in the prefix): two
# arguments fewer on every guarded check, read only when one approves.
_CHECK_THEN = """
local r = check(KEYS, ARGV)
if r % 4 == 2 then
  local number, usage = string.match(KEYS[1], '^[^{]*{([^}]*)}:code:(.+)$')
  if number then approve({KEYS[3], KEYS[4]}, {ARGV[1], number .. ':' .. usage, ARGV[7]}) end
end
return r
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
COMMIT = Script("commit", _COMMIT)
RESERVE_SHARED = Script("reserve_shared", _RESERVE_SHARED)
RELEASE = Script("release", _RELEASE)
RELEASE_SHARED = Script("release_shared", _RELEASE_SHARED)
CHECK = Script("check", _CHECK)
GUARD_IP = Script("guard_ip", _GUARD_IP)
SETTLE_IP = Script("settle_ip", _SETTLE_IP)
PUMP_START = Script("pump_start", _PUMP_START)
PUMP_RELEASE = Script("pump_release", _PUMP_RELEASE)
PUMP_APPROVE = Script("pump_approve", _PUMP_APPROVE)
PUMP_RESERVE = Script(
    "pump_reserve",
    _functions(pump=_PUMP_START, release=_PUMP_RELEASE, step=_RESERVE) + _PUMP_THEN,
)
PUMP_RESERVE_SHARED = Script(
    "pump_reserve_shared",
    _functions(pump=_PUMP_START, release=_PUMP_RELEASE, step=_RESERVE_SHARED) + _PUMP_THEN,
)
CHECK_PUMP = Script("check_pump", _functions(check=_CHECK, approve=_PUMP_APPROVE) + _CHECK_THEN)
#: Whether the server runs a script whose keys lie in two slots (one node does).
SPANS_SLOTS = Script("spans_slots", "return 1")
SCRIPTS = (
    RESERVE,
    COMMIT,
    RESERVE_SHARED,
    RELEASE,
    RELEASE_SHARED,
    CHECK,
    GUARD_IP,
    SETTLE_IP,
    PUMP_START,
    PUMP_RELEASE,
    PUMP_APPROVE,
    PUMP_RESERVE,
    PUMP_RESERVE_SHARED,
    CHECK_PUMP,
)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def ignore(_: Any) -> None:
    """The release scripts' reply, which says nothing."""


def refusal(reply: Any) -> Refusal | None:
    """A reserve script's reply: ``{1}`` stored, else ``{0, code, retry_after_ms}``."""
    if int(reply[0]) == 1:
        return None
    return Refusal(_text(reply[1]), int(reply[2]))


def committed(reply: Any) -> bool:
    """The commit script's reply: 1 when the held code became the pending one."""
    return int(reply) == 1


def checked(reply: Any) -> tuple[CheckStatus, int]:
    """The check script's reply, one integer: attempts left * 4 + the status's index."""
    left, status = divmod(int(reply), 4)
    return _STATUSES[status], left


# -- Aliyun-made codes (codes="aliyun") ---------------------------------------------
#
# - ``COUNT`` counts a guess on a verification whose code Aliyun holds (its
#   ``d`` is the marker ARGV[6]), without judging it: the same refusals as
#   ``CHECK``, then ``HINCRBY`` (the first write, so a full Redis counts
#   nothing and Aliyun is never asked), and the guess joins the number's
#   wrong guesses until ``APPROVE`` takes it out.
# - ``APPROVE`` deletes that verification once Aliyun passed the guess, if it
#   is still the pending one: the same verification id, the marker, not
#   expired. Its first write is a no-op ``HINCRBY``, one that can grow memory,
#   so a full Redis approves nothing.
#
# Both touch the number's slot only; the per-IP count is ``GUARD_IP`` and
# ``SETTLE_IP``'s, around them, as for ``CHECK``.

# KEYS: the record, the number's wrong guesses. ARGV: now, max attempts, the
# number's cap of wrong guesses an hour (0: none), the verification id asked
# for, 1 when the check is bound to it (0: any), the marker. Reply: {status
# index in _STATUSES, attempts left, verification id, attempt}.
_COUNT = """
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'i', 'd', 'a', 'x')
if not h[2] or tonumber(h[4]) <= now or h[2] ~= ARGV[6] then return {0} end
if ARGV[5] == '1' and redis.sha1hex(ARGV[4]) ~= redis.sha1hex(h[1]) then return {0} end
if tonumber(h[3]) >= max then return {1} end
local cap = tonumber(ARGV[3])
if cap > 0 and redis.call('ZCOUNT', KEYS[2], now - 3600000 + 1, '+inf') >= cap then
  return {1}
end
-- Counted before Aliyun is asked: under maxmemory this write is refused and
-- the script stops here.
local a = redis.call('HINCRBY', KEYS[1], 'a', 1)
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 3600000)
  redis.call('ZADD', KEYS[2], now, h[1] .. ':' .. a)
  redis.call('PEXPIRE', KEYS[2], 3600000)
end
return {3, max - a, h[1], a}
"""

# KEYS: the record, the number's wrong guesses. ARGV: now, the verification id
# counted on, the guess's attempt, the marker. Reply: 1 approved, 0 not.
_APPROVE = """
local now = tonumber(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'i', 'd', 'x')
if h[1] ~= ARGV[2] or h[2] ~= ARGV[4] or not h[3] or tonumber(h[3]) <= now then
  return 0
end
-- The first write can grow memory: a full Redis refuses it, and approves nothing.
redis.call('HINCRBY', KEYS[1], 'a', 0)
redis.call('HDEL', KEYS[1], 'i', 'd', 'a', 'x')
redis.call('ZREM', KEYS[2], ARGV[2] .. ':' .. ARGV[3])
return 1
"""

COUNT = Script("count", _COUNT)
APPROVE = Script("approve", _APPROVE)


def counted(reply: Any) -> Counted:
    """The count script's reply: {status index, attempts left, verification id, attempt}."""
    status = _STATUSES[int(reply[0])]
    if status is not CheckStatus.WRONG_CODE:
        return Counted(status, 0)
    return Counted(status, int(reply[1]), _text(reply[2]), int(reply[3]))


def approved(reply: Any) -> bool:
    """The approve script's reply: 1 when the verification was approved (and deleted)."""
    return int(reply) == 1
