--[[
incr.lua: the bare batch script, a floor for bench/floor.sh.  Built into
a copy of the tree in place of lua/fixed_window.lua, so that rl-bench
--algo fixed-window runs it with the library's own client, pipeline and
batching, after common.lua as the real script is (its preamble, Redis
TIME and the mode, is counted here too).

Per check: INCR key, and PEXPIRE key when the INCR made the key, so that
every key still lives one window; then the same valid answer for W1's
limit (100 per 60000 ms): allowed, 5 left, reset in 1 s, no retry.

Left out, next to a real limit: the read of the stored state (no MGET),
its parse, the decision, a key that comes twice seen as one state, and
the modes (a batch with a mode is answered as one in mode '').  Not a
rate limit: only a measure of what a script that touches every key once
costs Redis.
]]

-- KEYS as a local, as in fixed_window.lua: a global is a lookup by name
-- per check, which the floor must not pay when the library does not.
local KEYS = KEYS

for i = 1, #KEYS do
    local key = KEYS[i]
    if call('INCR', key) == 1 then
        call('PEXPIRE', key, '61000')
    end
    local o = 4 * i
    out[o - 3], out[o - 2], out[o - 1], out[o] = 1, 5, 1000, 0
end
return reply
