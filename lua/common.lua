--[[
common.lua: what every algorithm script shares, placed before each of
them when build-aux/lua2c.sh embeds lua/<name>.lua into the library (so
the script Redis runs, and hashes, is common.lua followed by the
algorithm's file).  Exact integer helpers of docs/algorithms.md (section
2), the clock (the caller's time or Redis TIME), a cache of decimal
conversions, and the one MGET that reads every key of the batch.
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

-- Now in ms, and whether it is the server's: the caller's time, or Redis
-- TIME when the caller sent none.
local function clock(arg)
    if arg ~= '' then
        return tonumber(arg), false
    end
    local t = call('TIME')
    return tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000), true
end

-- Decimal strings to numbers, each string converted once per run: a batch
-- repeats the same few limits, and stored states share many numbers
-- (tonumber, strtod, is costly next to a table lookup).
local num = setmetatable({}, {__index = function(t, s)
    local v = tonumber(s)
    t[s] = v
    return v
end})

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
