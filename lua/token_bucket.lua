--[[
token_bucket.lua: the token bucket rate limit, run in Redis.  The twin of
src/algo_token_bucket.c: both follow docs/algorithms.md (section 5) to the
unit, and tests/test_diff_lua_c.c holds them together.

Call and reply: as common.lua says, the same for every script.

Storage: one string per key, "v0:v1:v2:max:w" in decimal (string.format
'%d'): whole tokens, the time of the level, acc (the fraction of a token
in 1/w of one) and the limit that wrote them.  No key is the fresh state
(a full bucket).

Cost per check, about one redis.call: the keys are read with one MGET; a
key that comes again is decided on the state kept in Lua, and written
once, after its last check, by SET ... PX (expire_at - now +
ttl_buffer_ms).  With Redis TIME, a key whose checks all left its state
as it was is not written at all: its value is the same, and so is its
expiry (expire_at is a function of the state).
]]

-- The level after d ms of refill at M tokens per W ms, capped at M.
local function refill(tokens, acc, d, M, W)
    if d >= W then
        return M, 0
    end
    local q, r = muldiv(M, d, W)
    acc = acc + r
    if acc >= W then
        acc = acc - W
        q = q + 1
    end
    tokens = tokens + q
    if tokens >= M then
        return M, 0
    end
    return tokens, acc
end

-- The limit changed from (smax, sw) to (max, w): the units in use stay
-- in use; a fraction counted in 1/sw of a token is dropped (rounded down).
local function change_limit(tokens, acc, smax, sw, max, w)
    tokens = tokens + max - smax
    if sw ~= w then
        acc = 0
    end
    if tokens < 0 then
        return 0, 0
    end
    if tokens >= max then
        return max, 0
    end
    return tokens, acc
end

-- The ms until k >= 1 more tokens, acc/w of one being there already:
-- ceil((k * w - acc) / max), split so that every value stays small.
local function time_to(k, acc, max, w)
    local q, r = muldiv(k, w, max)
    local qa, ra = divmod(acc, max)
    if r > ra then
        return q - qa + 1
    end
    return q - qa
end

-- One check on the state (v0, v1, v2, smax, sw), v0 false when fresh.
-- Returns allowed, remaining, reset, retry, expire_at and the new v0, v1,
-- v2.
local function decide(v0, v1, v2, smax, sw, now, max, w, cost)
    local t, tokens, acc = now, max, 0
    if v0 then
        -- A clock that steps back stands still at the level's time.
        if v1 > t then
            t = v1
        end
        tokens, acc = refill(v0, v2, t - v1, smax, sw)
        if smax ~= max or sw ~= w then
            tokens, acc = change_limit(tokens, acc, smax, sw, max, w)
        end
    end
    local allowed, retry, reset = 0, 0, 0
    if tokens >= cost then
        allowed = 1
        tokens = tokens - cost
    else
        retry = time_to(cost - tokens, acc, max, w)
    end
    if tokens < max then
        reset = time_to(max - tokens, acc, max, w)
    end
    return allowed, tokens, reset, retry, t + reset, tokens, t, acc
end

local vals = read_all()
-- After check i, ST[7i - 6 .. 7i]: its key's state (v0, v1, v2, max, w),
-- expire_at, and whether every check of the key so far left the stored
-- state as it was.  One table, not seven: fewer to make, grow and
-- collect per run.  Kept only for a check whose state a later one
-- needs: all of them with a mode, a key's checks but its last in mode ''.
local ST = {}

-- Each key's last check in mode '' (in 'U', uniq: every check is), and
-- the limit the call shares, if any (common.lua).
local final = last_checks()
local max, w, cost = shared_limit()

-- Decides the checks (all, or the ranges a mode asks for: common.lua)
-- in order: each takes the bucket its key's last check left, or the
-- stored one, parsed here, and becomes its key's last.  In mode '' a
-- key's last check writes its state (with Redis TIME only when it
-- changed), here in the loop.
while from do
    for i = from, to do
        local key = KEYS[i]
        local j, v = not uniq and last[key], vals[i]
        local v0, v1, v2, smax, sw, same = false, nil, nil, nil, nil, true
        if j then
            j = 7 * j
            v0, v1, v2, smax, sw, same = ST[j - 6], ST[j - 5], ST[j - 4],
                ST[j - 3], ST[j - 2], ST[j]
        elseif v then
            -- The stored "v0:v1:v2:max:w": token counts are small and
            -- limits repeat, so they go through num; times and fractions
            -- seldom repeat.
            local s0, s1, s2, s3, s4 =
                match(v, '^(%d+):(%d+):(%d+):(%d+):(%d+)$')
            v0, v1, v2, smax, sw =
                num[s0], tonumber(s1), tonumber(s2), num[s3], num[s4]
        end
        if lstep ~= 0 then
            local c = lstep * i + lbase
            max, w, cost = num[ARGV[c]], num[ARGV[c + 1]], num[ARGV[c + 2]]
        end
        local allowed, remaining, reset, retry, expire_at, tokens, t, acc =
            decide(v0, v1, v2, smax, sw, now, max, w, cost_all or cost)
        local o = 4 * i
        out[o - 3], out[o - 2], out[o - 1], out[o] =
            allowed, remaining, reset, retry
        same = same and tokens == v0 and t == v1 and acc == v2 and
            max == smax and w == sw
        if uniq or final and final[key] == i then
            if not (timed and same) then
                call('SET', key, format('%d:%d:%d:%d:%d', tokens, t, acc,
                    max, w), 'PX', format('%d', expire_at - now + buffer))
            end
        else
            last[key] = i
            local c = 7 * i
            ST[c - 6], ST[c - 5], ST[c - 4], ST[c - 3], ST[c - 2], ST[c - 1],
                ST[c] = tokens, t, acc, max, w, expire_at, same
        end
    end
    from = mode and next_checks()
end

-- With a mode: write each key after its last check, as the loop does in
-- mode ''.
for i = 1, mode and writes and #KEYS or 0 do
    local c = 7 * i
    if last[KEYS[i]] == i and not (timed and ST[c]) then
        call('SET', KEYS[i], format('%d:%d:%d:%d:%d', ST[c - 6], ST[c - 5],
            ST[c - 4], ST[c - 3], ST[c - 2]),
            'PX', format('%d', ST[c - 1] - now + buffer))
    end
end
return reply
