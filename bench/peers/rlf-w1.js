#!/usr/bin/env node
/*
 * rlf-w1.js: workload W1 of bench/rl-bench, run through rate-limiter-flexible
 * (RateLimiterRedis on ioredis), so that libratelimit can be compared with
 * a popular peer against the same redis-server in the same run.
 *
 * README
 * ======
 *
 * Install (into bench/peers only; never a dependency of the library, and
 * node_modules/ is not committed):
 *
 *     npm install --prefix bench/peers
 *
 * Run (bench/run-w1.sh does it after rl-bench, against its own server):
 *
 *     node bench/peers/rlf-w1.js --host 127.0.0.1 --port 6379
 *
 * The options, the closed loop and the report are common.js's (its header
 * lists them); the defaults are rl-bench's W1: 1,000,000 checks over
 * 100,000 keys, 1,024 in flight, 100 per 60 s.  Keys are drawn exactly as
 * rl-bench draws them (splitmix64 from seed 0x5eed, index = ((z >> 32) *
 * keys) >> 32), so both tools see the same key sequence.
 *
 * The limiter is used the normal way: new RateLimiterRedis({ storeClient,
 * points: max, duration: window / 1000, keyPrefix }) and consume(key).
 * Its algorithm is a fixed window that starts at a key's first consume
 * (one EVALSHA per consume; the script runs SET NX, INCRBY and PTTL, and
 * EXPIRE when a key has no TTL).  Note that rate-limiter-flexible counts
 * denied consumes too (INCRBY runs either way).
 */
'use strict';

const { RateLimiterRedis } = require('rate-limiter-flexible');
const { run } = require('./common');

run({
    name: 'rlf-w1',
    workload: 'w1',
    cache: 'off',
    describe: 'no in-memory block',
    defaults: {},
    makeLimiter: (o, redis) => new RateLimiterRedis({
        storeClient: redis, points: o.max, duration: o.window / 1000,
        keyPrefix: o.keyPrefix,
    }),
});
