--[[
sliding_window.lua: the sliding window rate limit (the default), run in
Redis.  The twin of src/algo_sliding_window.c: both follow
docs/algorithms.md (section 4) to the unit, and tests/test_diff_lua_c.c
holds them together.

Call and reply: as common.lua says, the same for every script.

Storage: one string per key, "v0:v1:v2:w" in decimal (string.format
'%d'): the start of the current window, the units of the window before
it (prev), the units of the current one (cur), and the window that
counted them (the spec's st.w; st.max is never read, so it is not
stored).  No key is the fresh state.

Cost per check, about one redis.call: the keys are read with one MGET; a
key that comes again is decided on the state kept in Lua, and written
once, after its last check, by SET ... PX (expire_at - now +
ttl_buffer_ms), or by SETRANGE when it still counts in the window stored
(the loop below says why).  With Redis TIME, a key whose checks all left
its state as it was is not written at all: its value is the same, and so
is its expiry (expire_at is a function of the state).
]]

-- The stored values "v0:v1:v2:w" as numbers (the loop below parses
-- them), each value once per run, by its string: keys in one window
-- share values.
-- Keys with one window share its start, counts are small and limits
-- repeat: all four go through num.
local P0, P1, P2, PW = {}, {}, {}, {}

-- Numbers to decimal strings (string.format '%d'), each converted once
-- per run: window starts, counts, windows and expiries repeat.
local str = setmetatable({}, {__index = function(t, x)
    local s = format('%d', x)
    t[x] = s
    return s
end})

-- The stored counts seen from t with windows of W ms: the start of t's
-- window, t's offset in it, prev and cur.
local function roll(v0, v1, v2, t, W)
    local _, e = divmod(t, W)
    local s = t - e
    if v0 == s then
        return s, e, v1, v2
    elseif v0 == s - W then
        return s, e, v2, 0
    end
    return s, e, 0, 0
end

-- The estimate cur + ceil(prev * (W - e) / W), rounded up: errs towards
-- denying.
local function estimate(prev, cur, e, W)
    local q, r = muldiv(prev, W - e, W)
    if r > 0 then
        q = q + 1
    end
    return cur + q
end

-- The time > t at which a denied check passes if nothing else happens:
-- later in this window when cur leaves room, else in the next one.
local function retry_at(s, prev, cur, w, max, cost)
    local need = max - cost - cur
    if need >= 0 then
        return s + w - (muldiv(need, w, prev))
    end
    return s + 2 * w - (muldiv(max - cost, w, cur))
end

-- One check on the state (v0, v1, v2, sw), v0 false when fresh.  Returns
-- allowed, remaining, reset, retry, expire_at and the new v0, v1, v2.
local function decide(v0, v1, v2, sw, now, max, w, cost)
    local t, s, e, prev, cur = now, 0, 0, 0, 0
    if v0 then
        -- A clock that steps back stands still at the window seen.
        if v0 > t then
            t = v0
        end
        s, e, prev, cur = roll(v0, v1, v2, t, w)
        if sw ~= w then
            -- A new window length: the old limit's estimate at t becomes
            -- the count of t's new window.
            local _, e0, p0, c0 = roll(v0, v1, v2, t, sw)
            prev, cur = 0, estimate(p0, c0, e0, sw)
        end
    else
        local _, r = divmod(t, w)
        s, e = t - r, r
    end
    local est = estimate(prev, cur, e, w)
    local allowed, retry = 0, 0
    if est + cost <= max then
        allowed = 1
        cur = cur + cost
        est = est + cost
    else
        retry = retry_at(s, prev, cur, w, max, cost) - t
    end
    local remaining = max - est
    if remaining < 0 then
        remaining = 0
    end
    local reset = 0
    if cur > 0 then
        reset = s + 2 * w - t
    elseif prev > 0 then
        reset = s + w - t
    end
    return allowed, remaining, reset, retry, t + reset, s, prev, cur
end

local vals = read_all()
-- After check i, ST[7i - 6 .. 7i]: its key's state (v0, v1, v2, w) and
-- expire_at, whether every check of the key so far left the stored state
-- as it was, and the expire_at of the stored state (false: none).  One
-- table, not seven: fewer to make, grow and collect per run.  Kept only
-- for a check whose state a later one needs: all of them with a mode, a
-- key's checks but its last in mode ''.
local ST = {}

-- Each key's last check in mode '' (in 'U', uniq: every check is), and
-- the limit the call shares, if any (common.lua).
local final = last_checks()
local max, w, cost = shared_limit()

-- Decides the checks (all, or the ranges a mode asks for: common.lua)
-- in order, each on the counts its key's last check left, or on the
-- stored ones, parsed here; each check becomes its key's last.  In mode
-- '' a key's last check writes its state, with Redis TIME only when it
-- changed: SETRANGE key 0 value when it still counts in the window stored
-- (start, window and prev the same, so cur only grew and the value is no
-- shorter: its expiry stays, and SETRANGE's integer reply costs Lua less
-- than SET's status), SET ... PX otherwise.
while from do
    for i = from, to do
        local key = KEYS[i]
        local j, v = not uniq and last[key], vals[i]
        local v0, v1, v2, sw, same, exp0 = false, nil, nil, nil, true, false
        if j then
            j = 7 * j
            v0, v1, v2, sw, same, exp0 = ST[j - 6], ST[j - 5], ST[j - 4],
                ST[j - 3], ST[j - 1], ST[j]
        elseif v then
            v0 = P0[v]
            if v0 then
                v1, v2, sw = P1[v], P2[v], PW[v]
            else
                local s0, s1, s2, s3 =
                    match(v, '^(%d+):(%d+):(%d+):(%d+)$')
                v0, v1, v2, sw = num[s0], num[s1], num[s2], num[s3]
                P0[v], P1[v], P2[v], PW[v] = v0, v1, v2, sw
            end
            -- Its estimate is 0 from the end of the window after the one
            -- that holds cur, or of the one after prev's.
            exp0 = v0 + (v2 > 0 and 2 * sw or sw)
        end
        if lstep ~= 0 then
            local c = lstep * i + lbase
            max, w, cost = num[ARGV[c]], num[ARGV[c + 1]], num[ARGV[c + 2]]
        end
        local allowed, remaining, reset, retry, expire_at, s, prev, cur =
            decide(v0, v1, v2, sw, now, max, w, cost_all or cost)
        local o = 4 * i
        out[o - 3], out[o - 2], out[o - 1], out[o] =
            allowed, remaining, reset, retry
        local win = s == v0 and w == sw and prev == v1
        same = same and win and cur == v2
        if uniq or final and final[key] == i then
            if not (timed and same) then -- else nothing to write
                local value = str[s] .. ':' .. str[prev] .. ':' .. str[cur]
                    .. ':' .. str[w]
                if timed and win and expire_at == exp0 then
                    call('SETRANGE', key, '0', value)
                else
                    call('SET', key, value, 'PX',
                        str[expire_at - now + buffer])
                end
            end
        else
            last[key] = i
            local c = 7 * i
            -- The stored expiry goes on only while every check counted
            -- in the stored window: a later SETRANGE needs both.
            ST[c - 6], ST[c - 5], ST[c - 4], ST[c - 3], ST[c - 2], ST[c - 1],
                ST[c] = s, prev, cur, w, expire_at, same, win and exp0
        end
    end
    from = mode and next_checks()
end

-- With a mode: write each key after its last check, as the loop does in
-- mode '' (SET ... KEEPTTL where it would use SETRANGE: ST does not keep
-- whether the window is the stored one, and these calls are rare).
for i = 1, mode and writes and #KEYS or 0 do
    local c = 7 * i
    if last[KEYS[i]] == i and not (timed and ST[c - 1]) then
        local value = str[ST[c - 6]] .. ':' .. str[ST[c - 5]] .. ':'
            .. str[ST[c - 4]] .. ':' .. str[ST[c - 3]]
        if timed and ST[c - 2] == ST[c] then
            call('SET', KEYS[i], value, 'KEEPTTL')
        else
            call('SET', KEYS[i], value, 'PX', str[ST[c - 2] - now + buffer])
        end
    end
end
return reply
