--[[
sliding_log.lua: the sliding log rate limit (exact), run in Redis.  The
twin of src/algo_sliding_log.c: both follow docs/algorithms.md (section 8)
to the unit, and tests/test_diff_lua_c.c holds them together.

Call and reply: as common.lua says, the same for every script.

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

Peeks and groups: the log writes during the check, so a call with a
mode first decides its checks without writing (peeks), each on the
stored log plus what the earlier checks of the call on its key admitted
(units at t, the smallest window: all they change, exactly); then the
checks of the admitted groups are made again for good, in order, and
give the same answers.
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
-- at the start of cdata; the next read takes csize records (check sets
-- them from the tail it reads, and the first size, 16).
local ckey, cbase, cstop, cdata, csize

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

-- Writes the log: records [head, from) kept, then rec (a record or ''),
-- then the trailer.  Writes it whole, expired records cut off (SET), when
-- the records kept are in hand or the expired ones many; else rewrites it
-- from record `from` on (SETRANGE).
local function write(key, head, from, rec, sum, w, oldest, px)
    local n = from
    if rec ~= '' then
        n = from + 1
    end
    local in_hand = from == head or (cbase <= head and from <= cstop)
    if in_hand or (head > 0 and 2 * head >= n - head) then
        call('SET', key, rec_bytes(head, from) .. rec ..
            trailer(0, n - head, sum, w, oldest), 'PX', format('%d', px))
        return
    end
    call('SETRANGE', key, from * R, rec .. trailer(head, n, sum, w, oldest))
    call('PEXPIRE', key, format('%d', px))
end

-- One check, written; timed when now is Redis TIME.  Returns allowed,
-- remaining, reset, retry.  A check of cost 0 adds no entry, and leaves a
-- log whose entries all expired as no key (the fresh state).  With wmin,
-- for a peek, nothing is decided or written: it returns the log as a
-- check with the window wmin (<= w) sees it, expired entries dropped:
-- head, n, sum, t and the newest entry's ts (nil when none is left).
local function check(key, now, timed, max, w, cost, buffer, wmin)
    local tail = call('GETRANGE', key, TAIL, '-1')
    if tail == '' then
        if wmin then
            return 0, 0, 0, now, nil
        elseif cost == 0 then
            return 1, max, 0, 0
        end
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
    ckey, cbase, cstop, cdata, csize = key, n - tr / R, n, tail, 16

    -- A clock that steps back stands still at the newest entry; what
    -- expired under the old window or the new one (for a peek, or the
    -- window of an earlier check of the call) is dropped.
    local t, wp, head0 = now, wmin or w, head
    if newest > t then
        t = newest
    end
    if sw < wp then
        wp = sw
    end
    if t - oldest >= wp then
        head, sum, oldest = drop(head, n, sum, t, wp)
    end
    if wmin then
        return head, n, sum, t, head < n and newest or nil
    end

    local allowed, retry, from, rec = 0, 0, n, ''
    if sum + cost > max then
        retry = pass_entry(head, n, sum, max, cost) + w - t
    elseif cost > 0 then
        allowed = 1
        if head < n and newest == t then
            from, rec = n - 1, record(t, newest_cost + cost)
        else
            rec = record(t, cost)
            if head == n then
                oldest = t
            end
        end
        sum = sum + cost
        newest = t
    else
        allowed = 1
        if head == n then
            call('DEL', key)
            return 1, max, 0, 0
        end
    end
    -- With Redis TIME, a log left as it was keeps its value and expiry.
    if not timed or rec ~= '' or head ~= head0 or sw ~= w then
        write(key, head, from, rec, sum, w, oldest,
            newest + w - now + buffer)
    end
    local remaining = max - sum
    if remaining < 0 then
        remaining = 0
    end
    return allowed, remaining, newest + w - t, retry
end

-- ---- the checks of the call ----

-- For a call with a mode (common.lua): the checks it asks for, peeked in
-- order, each on the stored log and what the earlier checks of the call
-- on its key admitted (XU[i], units at t, not written) and the smallest
-- window they had (XW[i]), chained through last.  An admitted group's
-- checks are then made for good below, with the same answers.
if mode then
    -- A peek's answers: the log as check returned it (entries head..n-1,
    -- sum units, the newest at newest), and extra more units at t, the
    -- ones the earlier checks of the call on the key admitted: the newest
    -- entry, after the stored ones.
    local function peeked(max, w, cost, extra, head, n, sum, t, newest)
        sum = sum + extra
        if extra > 0 then
            newest = t
        end
        local allowed, retry = 0, 0
        if sum + cost <= max then
            allowed, sum = 1, sum + cost
            if cost > 0 then
                newest = t
            end
        else
            retry = (pass_entry(head, n, sum, max, cost) or t) + w - t
        end
        local reset, remaining = 0, max - sum
        if newest then
            reset = newest + w - t
        end
        if remaining < 0 then
            remaining = 0
        end
        return allowed, remaining, reset, retry
    end
    local XU, XW = {}, {}
    while from do
        for i = from, to do
            local key, c, o = KEYS[i], lstep * i + lbase, 4 * i
            local j = last[key]
            local max, w = num[ARGV[c]], num[ARGV[c + 1]]
            local cost, extra, wmin = cost_all or num[ARGV[c + 2]], 0, w
            if j then
                extra = XU[j]
                if XW[j] < w then
                    wmin = XW[j]
                end
            end
            local allowed, remaining, reset, retry = peeked(max, w, cost,
                extra, check(key, now, timed, max, w, cost, buffer, wmin))
            XU[i], XW[i] = extra + allowed * cost, wmin
            last[key] = i
            out[o - 3], out[o - 2], out[o - 1], out[o] =
                allowed, remaining, reset, retry
        end
        from = next_checks()
    end
end

-- The checks for good, written: all of them in mode '', the checks of
-- the admitted groups (their answers as peeked), none for a peek.
for i = 1, writes and #KEYS or 0 do
    if not mode or out[4 * i - 3] == 1 then
        local c, o = lstep * i + lbase, 4 * i
        out[o - 3], out[o - 2], out[o - 1], out[o] = check(KEYS[i], now,
            timed, num[ARGV[c]], num[ARGV[c + 1]], num[ARGV[c + 2]], buffer)
    end
end
return reply
