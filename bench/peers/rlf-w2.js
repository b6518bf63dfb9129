#!/usr/bin/env node
/*
 * rlf-w2.js: workload W2 of bench/rl-bench (one hot key, the decision
 * cache's workload) run through rate-limiter-flexible's RateLimiterRedis
 * on ioredis with its in-memory block, the peer's answer to the same
 * problem: once a key is over its limit, later consumes are rejected from
 * process memory without asking Redis.
 *
 * Install and run as rlf-w1.js (npm install --prefix bench/peers);
 * bench/run-w2.sh runs it after rl-bench, against the same server:
 *
 *     node bench/peers/rlf-w2.js --host 127.0.0.1 --port 6379
 *
 * The options, the closed loop and the report are common.js's; the
 * defaults are rl-bench --workload w2's: 1,000,000 checks, all on the key
 * "rlb:0", 1,024 in flight, 100 per 1,000 ms (rl-bench.c's header says
 * why one second).  --keys must stay 1.
 *
 * The limiter: new RateLimiterRedis({ storeClient, points: max,
 * duration: window / 1000, keyPrefix, inMemoryBlockOnConsumed: max + 1,
 * inMemoryBlockDuration: window / 1000 }), no insuranceLimiter (so a
 * Redis failure is an error, not a silent local answer) and consume(key).
 * With inMemoryBlockDuration set, a consume that Redis answers over the
 * limit blocks the key in memory for that many seconds, when its
 * consumed points reach inMemoryBlockOnConsumed; the library wants that
 * at least `points`, and since the block can only start over the limit,
 * points and points + 1 act the same here: the first denial from Redis
 * starts the block.  A blocked consume is rejected at once with a
 * RateLimiterRes of 0 consumed points: the report counts those as the
 * "cache" source and their share of the checks as its hit rate.
 */
'use strict';

const { RateLimiterRedis } = require('rate-limiter-flexible');
const { run } = require('./common');

run({
    name: 'rlf-w2',
    workload: 'w2',
    cache: 'inmem',
    describe: 'in-memory block',
    defaults: { keys: 1, window: 1000 },
    check: (o) => {
        if (o.keys !== 1)
            throw new Error('--keys: W2 is one key');
    },
    makeLimiter: (o, redis) => new RateLimiterRedis({
        storeClient: redis, points: o.max, duration: o.window / 1000,
        keyPrefix: o.keyPrefix,
        inMemoryBlockOnConsumed: o.max + 1,
        inMemoryBlockDuration: o.window / 1000,
    }),
});
