--[[
common.lua: what every algorithm script shares, placed before each of
them when build-aux/lua2c.sh embeds lua/<name>.lua into the library (so
the script Redis runs, and hashes, is common.lua followed by the
algorithm's file).  Exact integer helpers of docs/algorithms.md (section
2), a cache of decimal conversions, the clock (the caller's time or Redis
TIME), the one MGET that reads every key of the batch, and the driver of
the call modes (section 10): each check alone, peek, groups.

Call (src/pipeline.c, format_checks):
  EVALSHA sha n key1..keyn now ttl_buffer_ms max1 window1 cost1 ... mode
  EVALSHA sha n key1..keyn now ttl_buffer_ms max window cost mode
  KEYS[i]    the Redis key of check i (src/keys.c).  A key may come more
             than once: checks are decided in order, each one seeing the
             state the previous ones left.
  ARGV[1]    now in ms, or '' to use Redis TIME (read once per run)
  ARGV[2]    ms added to every key's expiry
  ARGV[3i], ARGV[3i+1], ARGV[3i+2]   max, window_ms, cost of check i,
             already validated by the caller (docs/algorithms.md, 1);
             or, in the second form (6 ARGV), ARGV[3], ARGV[4], ARGV[5]
             for every check: the client sends one triple when all the
             checks of the call share it (the two forms are one for n = 1)
  last       the mode (modes, below; docs/algorithms.md, 10): '' or
             none, each check alone; 'U', the same, and no key comes
             twice (the client saw to it); 'P', peek: decided alike,
             nothing written; "g1,...,gk", groups of checks, all or
             nothing
Returns 4n integers, per check in order: allowed (1/0), remaining,
reset_ms, retry_after_ms; an error, nothing written, for a bad mode.

Mode '' is the hot path, and must cost no more than it did before the
other modes: every function is a closure each run makes anew (about as
costly as a table, plus each local it captures), and a Lua call per
check is a few percent of a check.  So each script decides its checks in
one loop of its main chunk, and the driver of the other modes is made
only for a call that has one.
]]

local call = redis.call
local tonumber = tonumber
local floor = math.floor
local match = string.match
local format = string.format

-- floor(x / c) and x mod c, exact for 0 <= x, 1 <= c, x + c < 2^53:
-- x / c is rounded, so its floor can be one too large (section 2).
local function divmod(x, c)
    local q = floor(x / c)
    local r = x - q * c
    if r < 0 then
        q = q - 1
        r = r + c
    elseif r >= c then
        q = q + 1
        r = r - c
    end
    return q, r
end

-- floor(a * b / c) and the remainder, exact for 0 <= a < 2^30,
-- 0 <= b, c < 2^37, c >= 1: a is split in 15-bit halves so that no
-- product reaches 2^53 (section 2).
local function muldiv(a, b, c)
    local ah = floor(a / 32768)
    local al = a - ah * 32768
    local q1, r1 = divmod(ah * b, c)
    local q2, r2 = divmod(r1 * 32768 + al * b, c)
    return q1 * 32768 + q2, r2
end

-- Decimal strings to numbers, each string converted once per run: a batch
-- repeats the same few limits, and stored states share many numbers
-- (tonumber, strtod, is costly next to a table lookup).
local num = setmetatable({}, {__index = function(t, s)
    local v = tonumber(s)
    t[s] = v
    return v
end})

-- Now in ms, and whether it is the server's (timed): the caller's time,
-- or Redis TIME when the caller sent none.  The ms added to every expiry.
local now, timed = tonumber(ARGV[1]), false
if ARGV[1] == '' then
    local t = call('TIME')
    now, timed = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000), true
end
local buffer = num[ARGV[2]]

-- The stored values of KEYS, in order (false for a missing key): one
-- MGET, in slices that unpack can take.
local function read_all()
    local n = #KEYS
    if n <= 1000 then
        return call('MGET', unpack(KEYS))
    end
    local vals = {}
    for i = 1, n, 1000 do
        local part = call('MGET', unpack(KEYS, i, math.min(i + 999, n)))
        for k = 1, #part do
            vals[i + k - 1] = part[k]
        end
    end
    return vals
end

-- ---- the call modes ----

-- The reply, 4 numbers per check, and whether the script is to write
-- what the checks left.  last[key]: the check whose state is the key's
-- state now; a script chains each check's state to the one of the check
-- before it on the key through it, and a group is undone by putting back
-- the last[key] it found.
local out, last = {}, {}
local reply, writes = out, true

-- The call's mode, its last ARGV (ARGV[3n + 3], or ARGV[6] with one
-- limit triple): nil for '' or none (every check alone).
-- The checks a script's loop decides next: from..to, each with its own
-- cost or, when cost_all is not nil, with cost_all; tentatively, each
-- check's state chained to its key's through last, nothing written.
-- Then, for a call with a mode, the loop asks for the next ones: from =
-- mode and next_checks(), nil when there are none.  The script then
-- writes what the checks left (writes, set here).
local mode = ARGV[3 * #KEYS + 3]
-- Check i's limit triple starts at ARGV[lstep * i + lbase]: 3i, or 3 for
-- every check when the call sends one triple (6 ARGV).
local lstep, lbase = 3, 0
if #ARGV == 6 then
    mode, lstep, lbase = ARGV[6], 0, 3
end
local from, to, cost_all = 1, #KEYS, nil
local next_checks
-- uniq: no key comes twice ('U'), so that every check is its key's last
-- and none needs what an earlier one left: no map of last checks to
-- build (n inserts of strings and their rehashes) and none to look in,
-- about 1,300 Redis instructions per check (6%) under W1.  A hint: a
-- script may ignore it and treat 'U' as ''.
local uniq = mode == 'U'
if mode == '' or uniq then
    mode = nil
end

-- The driver of the modes other than '' (docs/algorithms.md, 10), made
-- only for a call that has one (a function is a closure each run makes
-- anew: mode '' makes none here): 'P', or groups "g1,...,gk" (digits,
-- each >= 1, summing to n), each all or nothing; an error reply, nothing
-- written, for any other mode.  A coroutine: it hands the loop of the
-- script each range of checks to decide (the loop runs them), and reads
-- their answers in out.
if mode then
    next_checks = coroutine.wrap(function()
        local n = #KEYS

        -- Has the script's loop decide checks a..b (with cost, if any).
        local function hand(a, b, cost)
            to, cost_all = b, cost
            coroutine.yield(a)
        end

        -- The group lengths, or nil when mode is not a list of them.
        local function lengths()
            if not match(mode, '^[%d,]+$') then
                return nil
            end
            local sizes, sum = {}, 0
            for s in string.gmatch(mode .. ',', '([^,]*),') do
                local g = tonumber(s)
                if not g or g < 1 then
                    return nil
                end
                sum = sum + g
                sizes[#sizes + 1] = g
            end
            return sum == n and sizes or nil
        end

        -- Checks a..b as one group: decided in order; when one denies,
        -- the group is undone and every check that admitted gets allowed
        -- 0, retry 0 and the remaining and reset of a check of cost 0 on
        -- the state before the group (a denier keeps its own).
        local function group(a, b)
            local before, denied = {}, false
            for i = a, b do
                local key = KEYS[i]
                if before[key] == nil then
                    before[key] = last[key] or false
                end
            end
            hand(a, b)
            for i = a, b do
                denied = denied or out[4 * i - 3] == 0
            end
            if not denied then
                return
            end
            for i = a, b do
                last[KEYS[i]] = before[KEYS[i]] or nil
            end
            for i = a, b do
                local o, key = 4 * i, KEYS[i]
                if out[o - 3] == 1 then
                    hand(i, i, 0)
                    last[key] = before[key] or nil
                    out[o - 3], out[o] = 0, 0
                end
            end
        end

        if mode == 'P' then
            writes = false
            hand(1, n)
            return
        end
        local sizes = lengths()
        if not sizes then
            reply, writes = redis.error_reply('ERR bad mode: ' .. mode), false
            return
        end
        local a = 1
        for k = 1, #sizes do
            group(a, a + sizes[k] - 1)
            a = a + sizes[k]
        end
    end)
    from = next_checks()
end

-- ---- for the scripts that write in their decide loop ----

-- In mode '', final[key] is the index of key's last check: every script
-- but the sliding log writes each key there, in its loop (in mode 'U',
-- at every check: uniq).  False with a mode, whose writes wait for the
-- groups' verdicts, after the loop, and in mode 'U'.  Either way a key is
-- written once per run.
local function last_checks()
    if mode or uniq then
        return false
    end
    local final = {}
    for i = 1, #KEYS do
        final[KEYS[i]] = i
    end
    return final
end

-- The max, window and cost of every check when the call sends one triple
-- (lstep 0), read once; nothing otherwise (each check reads its own).
local function shared_limit()
    if lstep == 0 then
        return num[ARGV[3]], num[ARGV[4]], num[ARGV[5]]
    end
end
