--[[
token_bucket.lua: the token bucket rate limit, run in Redis.  The twin of
src/algo_token_bucket.c: both follow docs/algorithms.md (section 5) to the
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

-- The stored "v0:v1:v2:max:w" as numbers; false when there is none
-- (fresh).  Token counts are small and limits repeat: they go through
-- num; times and fractions seldom repeat.
local function parse(v)
    if not v then
        return false
    end
    local v0, v1, v2, smax, sw =
        match(v, '^(%d+):(%d+):(%d+):(%d+):(%d+)$')
    return num[v0], tonumber(v1), tonumber(v2), num[smax], num[sw]
end

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

local now, timed = clock(ARGV[1])
local buffer = num[ARGV[2]]
local vals = read_all()
local out, last = {}, {}
-- After check i: its key's state and expire_at, and whether every check
-- of the key so far left the stored state as it was.
local S0, S1, S2, SM, SW, EXP, SAME = {}, {}, {}, {}, {}, {}, {}

for i = 1, #KEYS do
    local key = KEYS[i]
    local j = last[key]
    local v0, v1, v2, smax, sw, same = false, nil, nil, nil, nil, true
    if j then
        v0, v1, v2, smax, sw, same =
            S0[j], S1[j], S2[j], SM[j], SW[j], SAME[j]
    else
        v0, v1, v2, smax, sw = parse(vals[i])
    end
    last[key] = i
    local a, o = 3 * i, 4 * i
    local max, w = num[ARGV[a]], num[ARGV[a + 1]]
    local allowed, remaining, reset, retry, expire_at, tokens, t, acc =
        decide(v0, v1, v2, smax, sw, now, max, w, num[ARGV[a + 2]])
    S0[i], S1[i], S2[i], SM[i], SW[i], EXP[i] =
        tokens, t, acc, max, w, expire_at
    SAME[i] = same and tokens == v0 and t == v1 and acc == v2 and
        max == smax and w == sw
    out[o - 3], out[o - 2], out[o - 1], out[o] =
        allowed, remaining, reset, retry
end

-- Write each key after its last check.
for i = 1, #KEYS do
    if last[KEYS[i]] == i and not (timed and SAME[i]) then
        call('SET', KEYS[i],
            format('%d:%d:%d:%d:%d', S0[i], S1[i], S2[i], SM[i], SW[i]),
            'PX', format('%d', EXP[i] - now + buffer))
    end
end
return out
