--[[
read_write.lua: the least a script that reads and writes each key's own
Redis string must do, a floor for bench/floor.sh.  Built into a copy of
the tree in place of lua/fixed_window.lua, so that rl-bench --algo
fixed-window runs it with the library's own client, pipeline and
batching, after common.lua as the real script is (its preamble, Redis
TIME and the mode, is counted here too).

The calls are those fixed_window.lua makes in W1's common case: one MGET
of every key (read_all), then per key SETRANGE key 0 over the value when
it exists (the expiry stays), else SET ... PX for a new key.  The values
are constants of the stored format's length; every check gets the same
valid answer for W1's limit (100 per 60000 ms): allowed, 5 left, reset
in 1 s, no retry.

Left out: the parse of the stored values, the decision, the formatting
of the new ones, a key that comes twice seen as one state (each check
writes its key), and the modes (a batch with a mode is answered as one
in mode '').  What fixed_window.lua costs above this is its Lua, not its
calls.
]]

-- KEYS as a local, as in fixed_window.lua: a global is a lookup by name
-- per check, which the floor must not pay when the library does not.
local KEYS = KEYS

local vals = read_all()
for i = 1, #KEYS do
    local key = KEYS[i]
    if vals[i] then
        call('SETRANGE', key, '0', '1700000000000:5:60000')
    else
        call('SET', key, '1700000000000:1:60000', 'PX', '61000')
    end
    local o = 4 * i
    out[o - 3], out[o - 2], out[o - 1], out[o] = 1, 5, 1000, 0
end
return reply
