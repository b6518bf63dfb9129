--[[
sliding_log.lua: the sliding log rate limit (exact), run in Redis.  The
twin of src/algo_sliding_log.c: both follow docs/algorithms.md (section 8)
to the unit, and tests/test_diff_lua_c.c holds them together.

Call (src/pipeline.c, format_checks):
  EVALSHA sha n key1..keyn now ttl_buffer_ms max1 window1 cost1 ...
  KEYS[i]    the Redis key of check i (src/keys.c).  A key may come more
             than once: checks are decided in order, each one seeing the
             state the previous ones left.
  ARGV[1]    now in ms, or '' to use Redis TIME (read once per run)
  ARGV[2]    ms added to every key's expiry
  ARGV[3i], ARGV[3i+1], ARGV[3i+2]   max, window_ms, cost of check i,
             already validated by the caller (docs/algorithms.md, 1)
Returns 4n integers, per check in order: allowed (1/0), remaining,
reset_ms, retry_after_ms.

Storage: one string per key, fixed-width decimal (string.format '%0Nd'),
so that any part can be read or rewritten in place:

  record 0 | record 1 | ... | record n-1 | trailer
  record   ts (16 digits) cost (6): one entry, 22 bytes
  trailer  head (6) n (6) sum (6) w (12) oldest (16): 46 bytes

Records head..n-1 are the entries, oldest first, ts strictly increasing;
the ones before head have expired and wait to be cut off.  sum is the
units of the entries, w the window that wrote the log (the spec's st.w),
oldest the ts of record head.  A written log always holds an entry, so the
last record is the newest.  No key is the fresh state.

A check reads the trailer and the last 32 records (one GETRANGE: a log
that small comes whole), and older records only when some expire or to
compute a retry, in chunks from head that double in size.  When it holds
every entry the log keeps, it writes the log whole, expired records cut
off, with SET ... PX (expire_at - now + ttl_buffer_ms): so a small log
costs one read and one write, like the other algorithms.  A longer one is
changed in place: the new last record and the trailer with one SETRANGE
(appending extends the string), the expiry with PEXPIRE; its expired
records are cut off (read, SET) once they are at least half as many as
the entries.  So a key never holds more than 1.5 times its entries in
records, and the cost of a check does not grow with the size of the log.
Each check reads what the previous ones wrote, a repeated key included.
With Redis TIME, a check that changed nothing (a denial, nothing expired,
the same window) writes nothing: the value and its expiry are right.
]]

local sub = string.sub

local R = 22  -- bytes of a record
local TR = 46 -- bytes of the trailer
local K = 32  -- records read with the trailer
-- Where the tail read starts, as a string: redis.call converts a number
-- argument with a costly '%.17g'.
local TAIL = format('%d', -(K * R + TR))

local function record(ts, cost)
    return format('%016d%06d', ts, cost)
end

local function trailer(head, n, sum, w, oldest)
    return format('%06d%06d%06d%012d%016d', head, n, sum, w, oldest)
end

-- ---- reading records ----

-- The records of the key read during the current check: [cbase, cstop)
-- at the start of cdata; the next read takes csize records.
local ckey, cbase, cstop, cdata, csize

local function reader_reset(key, base, stop, data)
    ckey, cbase, cstop, cdata, csize = key, base, stop, data, 16
end

-- ts and cost of record i (i < n), reading a chunk when needed.
local function rec_at(i, n)
    if i < cbase or i >= cstop then
        cbase, cstop = i, i + csize
        if cstop > n then
            cstop = n
        end
        csize = csize * 2
        cdata = call('GETRANGE', ckey, i * R, cstop * R - 1)
    end
    local p = (i - cbase) * R
    return tonumber(sub(cdata, p + 1, p + 16)), num[sub(cdata, p + 17, p + 22)]
end

-- The bytes of records [from, to), from what was read if it holds them.
local function rec_bytes(from, to)
    if from == to then
        return ''
    elseif cbase <= from and to <= cstop then
        return sub(cdata, (from - cbase) * R + 1, (to - cbase) * R)
    end
    return call('GETRANGE', ckey, from * R, to * R - 1)
end

-- ---- the decision ----

-- Drops the entries expired at t (t - ts >= wp), oldest first.  Returns
-- the new head, the sum and the oldest ts left (nil when none is).
local function drop(head, n, sum, t, wp)
    while head < n do
        local ts, c = rec_at(head, n)
        if t - ts < wp then
            return head, sum, ts
        end
        head, sum = head + 1, sum - c
    end
    return head, sum, nil
end

-- The ts of the entry whose expiry lets a denied check of cost pass.
local function pass_entry(head, n, sum, max, cost)
    local left = sum
    for i = head, n - 1 do
        local ts, c = rec_at(i, n)
        left = left - c
        if left + cost <= max then
            return ts
        end
    end
end

-- Writes the log: records [head, from) kept, then last (a record or ''),
-- then the trailer.  Writes it whole, expired records cut off (SET), when
-- the records kept are in hand or the expired ones many; else rewrites it
-- from record `from` on (SETRANGE).
local function write(key, head, from, last, sum, w, oldest, px)
    local n = from
    if last ~= '' then
        n = from + 1
    end
    local in_hand = from == head or (cbase <= head and from <= cstop)
    if in_hand or (head > 0 and 2 * head >= n - head) then
        call('SET', key, rec_bytes(head, from) .. last ..
            trailer(0, n - head, sum, w, oldest), 'PX', format('%d', px))
        return
    end
    call('SETRANGE', key, from * R, last .. trailer(head, n, sum, w, oldest))
    call('PEXPIRE', key, format('%d', px))
end

-- One check; timed when now is Redis TIME.  Returns allowed, remaining,
-- reset, retry.
local function check(key, now, timed, max, w, cost, buffer)
    local tail = call('GETRANGE', key, TAIL, '-1')
    if tail == '' then
        -- Fresh: the check passes (cost <= max) and starts the log.
        call('SET', key, record(now, cost) .. trailer(0, 1, cost, w, now),
            'PX', format('%d', w + buffer))
        return 1, max - cost, w, 0
    end
    local tr = #tail - TR -- where the trailer starts, after tr / R records
    local newest = tonumber(sub(tail, tr - 21, tr - 6))
    local newest_cost = num[sub(tail, tr - 5, tr)]
    local head = num[sub(tail, tr + 1, tr + 6)]
    local n = num[sub(tail, tr + 7, tr + 12)]
    local sum = num[sub(tail, tr + 13, tr + 18)]
    local sw = num[sub(tail, tr + 19, tr + 30)]
    local oldest = tonumber(sub(tail, tr + 31, tr + 46))
    reader_reset(key, n - tr / R, n, tail)

    -- A clock that steps back stands still at the newest entry; what
    -- expired under the old window or the new one is dropped.
    local t, wp, head0 = now, w, head
    if newest > t then
        t = newest
    end
    if sw < w then
        wp = sw
    end
    if t - oldest >= wp then
        head, sum, oldest = drop(head, n, sum, t, wp)
    end

    local allowed, retry, from, last = 0, 0, n, ''
    if sum + cost <= max then
        allowed = 1
        if head < n and newest == t then
            from, last = n - 1, record(t, newest_cost + cost)
        else
            last = record(t, cost)
            if head == n then
                oldest = t
            end
        end
        sum = sum + cost
        newest = t
    else
        retry = pass_entry(head, n, sum, max, cost) + w - t
    end
    -- With Redis TIME, a log left as it was keeps its value and expiry.
    if not timed or allowed == 1 or head ~= head0 or sw ~= w then
        write(key, head, from, last, sum, w, oldest,
            newest + w - now + buffer)
    end
    local remaining = max - sum
    if remaining < 0 then
        remaining = 0
    end
    return allowed, remaining, newest + w - t, retry
end

local now, timed = clock(ARGV[1])
local buffer = num[ARGV[2]]
local out = {}

for i = 1, #KEYS do
    local a, o = 3 * i, 4 * i
    out[o - 3], out[o - 2], out[o - 1], out[o] = check(KEYS[i], now, timed,
        num[ARGV[a]], num[ARGV[a + 1]], num[ARGV[a + 2]], buffer)
end
return out
