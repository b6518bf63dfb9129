--[[
fixed_window.lua: the fixed window rate limit, run in Redis.  The twin of
src/algo_fixed_window.c: both follow docs/algorithms.md (section 3) to the
unit, and tests/test_diff_lua_c.c holds them together.

Call and reply: as common.lua says, the same for every script.

Storage: one string per key, "v0:v1:w" in decimal (string.format '%d'):
the start of the window counted, the units admitted in it, and the
window that counted them (the spec's st.w; st.max and v2 are never read,
so they are not stored).  No key is the fresh state.

Cost per check, about one redis.call: the keys are read with one MGET; a
key that comes again is decided on the state kept in Lua, and written
once, after its last check, by SET ... PX (expire_at - now +
ttl_buffer_ms).  With Redis TIME, a key whose checks all left its state
as it was is not written at all: its value is the same, and so is its
expiry (expire_at is a function of the state).  And in mode '', a key
whose last check counted in the window stored (same start, same w) is
written with SETRANGE key 0 value: its expiry stays, and the value, whose
count only grew, covers the old one (no shorter), for about 2,000 Redis
instructions less than SET ... KEEPTTL (an integer reply, where SET's
status reply becomes a Lua table).
]]

-- The stored values "v0:v1:w" as numbers (the loop below parses them),
-- each value once per run, by its string: keys of one window share
-- values.  Keys with one window share its start, counts are small and
-- limits repeat: all three go through num.
local P0, P1, PW = {}, {}, {}

-- KEYS and ARGV as locals: the loop reads them for every check, and a
-- global is a lookup by name (about 4% of a check under W1).
local KEYS, ARGV = KEYS, ARGV

-- The start of the window of each length w that holds now: most checks
-- count at now (a stored start later than now is the exception), so the
-- divmod is done once per window length, not once per check (about 2%).
local S = {}

-- Numbers to decimal strings (string.format '%d'), each converted once
-- per run: window starts, counts, windows and expiries repeat.
local str = setmetatable({}, {__index = function(t, x)
    local s = format('%d', x)
    t[x] = s
    return s
end})

local vals = read_all()
-- After check i, ST[6i - 5 .. 6i]: its key's state (v0, v1, w) and
-- expire_at, whether every check of the key so far left the stored state
-- as it was, and the expire_at of the stored state (false: none).  One
-- table, not six: fewer to make, grow and collect per run.  Kept only for
-- a check whose state a later one needs: all of them with a mode, a key's
-- checks but its last in mode ''.
local ST = {}

-- Each key's last check in mode '' (in 'U', uniq: every check is), and
-- the limit the call shares, if any (common.lua).
local final = last_checks()
local max, w, cost = shared_limit()

-- Decides the checks (all, or the ranges a mode asks for: common.lua)
-- in order: each counts in the window its key's last check left, or the
-- stored one, parsed here, and becomes its key's last.  The parse, the
-- decision and the write are inlined: this loop is all a check costs in
-- Lua.
while from do
    for i = from, to do
        local key = KEYS[i]
        local j, v = not uniq and last[key], vals[i]
        local v0, v1, sw, same, exp0 = false, nil, nil, true, false
        if j then
            j = 6 * j
            v0, v1, sw, same, exp0 =
                ST[j - 5], ST[j - 4], ST[j - 3], ST[j - 1], ST[j]
        elseif v then
            v0 = P0[v]
            if v0 then
                v1, sw = P1[v], PW[v]
            else
                local s0, s1, s2 = match(v, '^(%d+):(%d+):(%d+)$')
                v0, v1, sw = num[s0], num[s1], num[s2]
                P0[v], P1[v], PW[v] = v0, v1, sw
            end
            exp0 = v0 + sw
        end
        if lstep ~= 0 then
            local c = lstep * i + lbase
            max, w, cost = num[ARGV[c]], num[ARGV[c + 1]], num[ARGV[c + 2]]
        end
        local cost = cost_all or cost
        -- decide (section 3): a clock that steps back stands still at the
        -- window seen; the count lives while the window that counted it
        -- runs.
        local t, count = now, 0
        if v0 then
            if v0 > t then
                t = v0
            end
            if t < v0 + sw then
                count = v1
            end
        end
        local s = t == now and S[w]
        if not s then
            local _, e = divmod(t, w)
            s = t - e
            if t == now then
                S[w] = s
            end
        end
        local reset = s + w - t
        local allowed, retry = 0, reset
        if count + cost <= max then
            allowed, retry = 1, 0
            count = count + cost
            if count == 0 then
                reset = 0 -- cost 0, nothing counted: whole already
            end
        end
        local remaining = max - count
        if remaining < 0 then
            remaining = 0
        end
        local o = 4 * i
        out[o - 3], out[o - 2], out[o - 1], out[o] =
            allowed, remaining, reset, retry
        local win = s == v0 and w == sw
        same = same and win and count == v1
        if uniq or final and final[key] == i then
            if not (timed and same) then -- else nothing to write
                local value = str[s] .. ':' .. str[count] .. ':' .. str[w]
                if timed and win and t + reset == exp0 then
                    call('SETRANGE', key, '0', value)
                else
                    call('SET', key, value, 'PX',
                        str[t + reset - now + buffer])
                end
            end
        else
            last[key] = i
            local c = 6 * i
            -- The stored expiry goes on only while every check counted
            -- in the stored window: a later SETRANGE needs both.
            ST[c - 5], ST[c - 4], ST[c - 3], ST[c - 2], ST[c - 1], ST[c] =
                s, count, w, t + reset, same, win and exp0
        end
    end
    from = mode and next_checks()
end

-- With a mode: write each key after its last check, as the loop does in
-- mode '' (SET ... KEEPTTL where it would use SETRANGE: ST does not keep
-- whether the window is the stored one, and these calls are rare).
for i = 1, mode and writes and #KEYS or 0 do
    local c = 6 * i
    if last[KEYS[i]] == i and not (timed and ST[c - 1]) then
        local value = str[ST[c - 5]] .. ':' .. str[ST[c - 4]] .. ':'
            .. str[ST[c - 3]]
        if timed and ST[c - 2] == ST[c] then
            call('SET', KEYS[i], value, 'KEEPTTL')
        else
            call('SET', KEYS[i], value, 'PX', str[ST[c - 2] - now + buffer])
        end
    end
end
return reply
