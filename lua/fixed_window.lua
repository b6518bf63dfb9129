--[[
fixed_window.lua: the fixed window rate limit, run in Redis.  The twin of
src/algo_fixed_window.c: both follow docs/algorithms.md (section 3) to the
unit, and tests/test_diff_lua_c.c holds them together.

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

Storage: one string per key, "v0:v1:w" in decimal (string.format '%d'):
the start of the window counted, the units admitted in it, and the
window that counted them (the spec's st.w; st.max and v2 are never read,
so they are not stored).  No key is the fresh state.

Cost per check, about one redis.call: the keys are read with one MGET; a
key that comes again is decided on the state kept in Lua, and written
once, after its last check, by SET ... PX (expire_at - now +
ttl_buffer_ms).  With Redis TIME, a key whose checks all left its state
as it was is not written at all: its value is the same, and so is its
expiry (expire_at is a function of the state).
]]

-- The stored "v0:v1:w" as numbers; false when there is none (fresh).
-- Keys with one window share its start, counts are small and limits
-- repeat: all three go through num, and a value is parsed once per run
-- (P0, P1, PW by the value's string): keys of one window share values.
local P0, P1, PW = {}, {}, {}
local function parse(v)
    if not v then
        return false
    end
    local v0 = P0[v]
    if v0 then
        return v0, P1[v], PW[v]
    end
    local s0, s1, sw = match(v, '^(%d+):(%d+):(%d+)$')
    v0, s1, sw = num[s0], num[s1], num[sw]
    P0[v], P1[v], PW[v] = v0, s1, sw
    return v0, s1, sw
end

-- Numbers to decimal strings (string.format '%d'), each converted once
-- per run: window starts, counts, windows and expiries repeat.
local str = setmetatable({}, {__index = function(t, x)
    local s = format('%d', x)
    t[x] = s
    return s
end})

local now, timed = clock(ARGV[1])
local buffer = num[ARGV[2]]
local vals = read_all()
local out, last = {}, {}
-- After check i: its key's state and expire_at, whether every check of
-- the key so far left the stored state as it was, and the expire_at of
-- the stored state.
local S0, S1, SW, EXP, SAME, EXP0 = {}, {}, {}, {}, {}, {}

for i = 1, #KEYS do
    local key = KEYS[i]
    local j = last[key]
    local v0, v1, sw, same = false, nil, nil, true
    if j then
        v0, v1, sw, same, EXP0[i] = S0[j], S1[j], SW[j], SAME[j], EXP0[j]
    else
        v0, v1, sw = parse(vals[i])
        EXP0[i] = v0 and v0 + sw
    end
    last[key] = i
    local a, o = 3 * i, 4 * i
    local max, w, cost = num[ARGV[a]], num[ARGV[a + 1]], num[ARGV[a + 2]]
    -- decide, inlined (section 3): a clock that steps back stands still
    -- at the window seen; the count lives while the window that counted
    -- it runs.
    local t, count = now, 0
    if v0 then
        if v0 > t then
            t = v0
        end
        if t < v0 + sw then
            count = v1
        end
    end
    local _, e = divmod(t, w)
    local s = t - e
    local reset = s + w - t
    local allowed, retry = 0, reset
    if count + cost <= max then
        allowed, retry = 1, 0
        count = count + cost
    end
    local remaining = max - count
    if remaining < 0 then
        remaining = 0
    end
    S0[i], S1[i], SW[i], EXP[i] = s, count, w, s + w
    SAME[i] = same and s == v0 and count == v1 and w == sw
    out[o - 3], out[o - 2], out[o - 1], out[o] =
        allowed, remaining, reset, retry
end

-- Write each key after its last check.  With Redis TIME, an unchanged
-- state is not written, and an unchanged expire_at keeps its expiry.
for i = 1, #KEYS do
    if last[KEYS[i]] ~= i or (timed and SAME[i]) then
        -- nothing to write
    elseif timed and EXP[i] == EXP0[i] then
        call('SET', KEYS[i], str[S0[i]] .. ':' .. str[S1[i]] .. ':' ..
            str[SW[i]], 'KEEPTTL')
    else
        call('SET', KEYS[i], str[S0[i]] .. ':' .. str[S1[i]] .. ':' ..
            str[SW[i]], 'PX', str[EXP[i] - now + buffer])
    end
end
return out
