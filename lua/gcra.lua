--[[
gcra.lua: the generic cell rate algorithm, run in Redis.  The twin of
src/algo_gcra.c: both follow docs/algorithms.md (section 6) to the unit,
and tests/test_diff_lua_c.c holds them together.

Call and reply: as common.lua says, the same for every script.
Unlike the other algorithms, GCRA can give a reset_ms or retry_after_ms
beyond twice the check's window: TAT is kept across a change of limit,
and read from an earlier now when the clock steps back.

Storage: one string per key, "v0:v1:max" in decimal (string.format
'%d'): the theoretical arrival time TAT = v0 + v1 / max ms, and the max
that wrote it (the unit of v1; the spec's st.w is never read, so it is
not stored).  No key is the fresh state.

Cost per check, about one redis.call: the keys are read with one MGET; a
key that comes again is decided on the state kept in Lua, and written
once, after its last check, by SET ... PX (expire_at - now +
ttl_buffer_ms).  With Redis TIME, a key whose checks all left its state
as it was is not written at all: its value is the same, and so is its
expiry (expire_at is a function of the state).
]]

-- Units a burst at now could still take with TAT = T + F / max:
-- floor((now + w - TAT) * max / w), within [0, max].
local function remaining(T, F, now, max, w)
    local a = now + w - T
    if a <= 0 then
        return 0
    elseif a > w then
        return max
    end
    local q, r = muldiv(max, a, w)
    if r < F then
        q = q - (divmod(F - r + w - 1, w))
    end
    if q < 0 then
        return 0
    elseif q > max then
        return max
    end
    return q
end

-- The TAT a check of cost would leave: max(TAT, now) + cost * w / max.
local function pushed(T, F, now, max, w, cost)
    if T < now or (T == now and F == 0) then
        T, F = now, 0
    end
    local q, r = muldiv(cost, w, max)
    T, F = T + q, F + r
    if F >= max then
        T, F = T + 1, F - max
    end
    return T, F
end

-- One check on the state (v0, v1, smax), v0 false when fresh.  Returns
-- allowed, remaining, reset, retry, expire_at and the new v0, v1.
local function decide(v0, v1, smax, now, max, w, cost)
    local T, F = 0, 0
    if v0 then
        T, F = v0, v1
        -- F counts 1/max ms: with a new max, round TAT up to a whole ms.
        if smax ~= max and F > 0 then
            T, F = T + 1, 0
        end
    end
    local N, NF = pushed(T, F, now, max, w, cost)
    local allowed, retry = 0, 0
    if N - now < w or (N - now == w and NF == 0) then
        allowed = 1
        T, F = N, NF
    else
        retry = N - w - now
        if NF > 0 then
            retry = retry + 1
        end
    end
    local reset = T - now
    if F > 0 then
        reset = reset + 1
    end
    if reset < 0 then
        reset = 0
    end
    return allowed, remaining(T, F, now, max, w), reset, retry,
        now + reset, T, F
end

local vals = read_all()
-- After check i, ST[5i - 4 .. 5i]: its key's state (v0, v1, max),
-- expire_at, and whether every check of the key so far left the stored
-- state as it was.  One table, not five: fewer to make, grow and collect
-- per run.  Kept only for a check whose state a later one needs: all of
-- them with a mode, a key's checks but its last in mode ''.
local ST = {}

-- Each key's last check in mode '' (in 'U', uniq: every check is), and
-- the limit the call shares, if any (common.lua).
local final = last_checks()
local max, w, cost = shared_limit()

-- Decides the checks (all, or the ranges a mode asks for: common.lua)
-- in order: each pushes the TAT its key's last check left, or the stored
-- one, parsed here, and becomes its key's last.  In mode '' a key's last
-- check writes its state (with Redis TIME only when it changed), here in
-- the loop.
while from do
    for i = from, to do
        local key = KEYS[i]
        local j, v = not uniq and last[key], vals[i]
        local v0, v1, smax, same = false, nil, nil, true
        if j then
            j = 5 * j
            v0, v1, smax, same = ST[j - 4], ST[j - 3], ST[j - 2], ST[j]
        elseif v then
            -- The stored "v0:v1:max": limits repeat, so max goes through
            -- num; TAT seldom repeats.
            local s0, s1, s2 = match(v, '^(%d+):(%d+):(%d+)$')
            v0, v1, smax = tonumber(s0), tonumber(s1), num[s2]
        end
        if lstep ~= 0 then
            local c = lstep * i + lbase
            max, w, cost = num[ARGV[c]], num[ARGV[c + 1]], num[ARGV[c + 2]]
        end
        local allowed, rem, reset, retry, expire_at, T, F =
            decide(v0, v1, smax, now, max, w, cost_all or cost)
        local o = 4 * i
        out[o - 3], out[o - 2], out[o - 1], out[o] =
            allowed, rem, reset, retry
        same = same and T == v0 and F == v1 and max == smax
        if uniq or final and final[key] == i then
            if not (timed and same) then
                call('SET', key, format('%d:%d:%d', T, F, max), 'PX',
                    format('%d', expire_at - now + buffer))
            end
        else
            last[key] = i
            local c = 5 * i
            ST[c - 4], ST[c - 3], ST[c - 2], ST[c - 1], ST[c] = T, F, max,
                expire_at, same
        end
    end
    from = mode and next_checks()
end

-- With a mode: write each key after its last check, as the loop does in
-- mode ''.
for i = 1, mode and writes and #KEYS or 0 do
    local c = 5 * i
    if last[KEYS[i]] == i and not (timed and ST[c]) then
        call('SET', KEYS[i], format('%d:%d:%d', ST[c - 4], ST[c - 3],
            ST[c - 2]), 'PX', format('%d', ST[c - 1] - now + buffer))
    end
end
return reply
