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
 * Options (defaults are rl-bench's, so both run the same W1):
 *   --url URL | --host H --port P   the server (else REDIS_URL, else
 *                    REDIS_HOST / REDIS_PORT, else 127.0.0.1:6379)
 *   --checks N       measured checks (1000000)
 *   --keys N         distinct keys "rlb:0".."rlb:N-1" (100000)
 *   --inflight N     checks pending at once (1024)
 *   --max N          points per window (100)
 *   --window MS      window, a whole number of seconds in ms (60000)
 *   --warmup N       unmeasured checks first, keys in turn (0)
 *   --key-prefix P   rate-limiter-flexible's keyPrefix ("rlf-w1")
 *   --auto-pipelining  ioredis enableAutoPipelining (off: the default
 *                    client, as the library's docs show it)
 *   --csv, --quiet   rl-bench's CSV columns (under a header, or alone)
 *
 * What it runs: W1 closed loop.  --inflight async workers each await
 * limiter.consume(key) and then take the next check, until --checks were
 * answered.  Keys are drawn exactly as rl-bench draws them: splitmix64
 * from seed 0x5eed, index = ((z >> 32) * keys) >> 32, so both tools see
 * the same key sequence.  The sequence is computed before the measured
 * phase (BigInt is slow), so the measured loop does not pay for it.
 *
 * The limiter is used the normal way: new RateLimiterRedis({ storeClient,
 * points: max, duration: window / 1000, keyPrefix }) and consume(key).
 * Its algorithm is a fixed window that starts at a key's first consume
 * (one EVALSHA per consume; the script runs SET NX, INCRBY and PTTL, and
 * EXPIRE when a key has no TTL).  A consume over the limit is rejected
 * with a RateLimiterRes: that is a denial, counted as such; only a
 * rejection with an Error is an error.  Note that rate-limiter-flexible
 * counts denied consumes too (INCRBY runs either way).
 *
 * Reports checks/s, latency from the call to the promise settling
 * (performance.now; p50, p99, p999, max), client CPU per check
 * (process.cpuUsage, user + system), and from INFO commandstats / INFO cpu
 * read before and after the measured phase: EVALSHA per check, client
 * commands per check (EVALSHA + EVAL + SCRIPT: the only commands consume
 * sends), every call Redis ran per check (script calls included, INFO
 * left out), and the server's CPU per check.  INFO covers the whole
 * server: run it on a Redis nobody else is using.
 *
 * Exit status: 0, or 1 when a consume failed with an error.
 */
'use strict';

const { performance } = require('node:perf_hooks');
const Redis = require('ioredis');
const { RateLimiterRedis } = require('rate-limiter-flexible');

const MASK64 = (1n << 64n) - 1n;

/* ---- options ---- */

function parseArgs(argv) {
    const o = {
        url: process.env.REDIS_URL || null,
        host: process.env.REDIS_HOST || '127.0.0.1',
        port: Number(process.env.REDIS_PORT || 6379),
        checks: 1000000, keys: 100000, inflight: 1024, max: 100,
        window: 60000, warmup: 0, keyPrefix: 'rlf-w1',
        autoPipelining: false, csv: false, quiet: false,
    };
    const num = { '--checks': 'checks', '--keys': 'keys',
                  '--inflight': 'inflight', '--max': 'max',
                  '--window': 'window', '--warmup': 'warmup',
                  '--port': 'port' };
    for (let i = 2; i < argv.length; i++) {
        const a = argv[i];
        if (a in num) {
            const v = Number(argv[++i]);
            if (!Number.isInteger(v) || v < 0)
                throw new Error(`${a}: not a whole number`);
            o[num[a]] = v;
            if (a === '--port')
                o.url = null;
        } else if (a === '--host') {
            o.host = argv[++i];
            o.url = null;
        } else if (a === '--url') {
            o.url = argv[++i];
        } else if (a === '--key-prefix') {
            o.keyPrefix = argv[++i];
        } else if (a === '--auto-pipelining') {
            o.autoPipelining = true;
        } else if (a === '--csv') {
            o.csv = true;
        } else if (a === '--quiet') {
            o.quiet = true;
        } else {
            throw new Error(`unknown option ${a} (see the header of ` +
                            'rlf-w1.js)');
        }
    }
    if (o.window % 1000 !== 0 || o.window === 0)
        throw new Error('--window: RateLimiterRedis counts whole seconds');
    if (o.checks < 1 || o.keys < 1 || o.inflight < 1 || o.max < 1)
        throw new Error('--checks, --keys, --inflight, --max: at least 1');
    return o;
}

/* ---- the key sequence (rl-bench's) ---- */

/* Indices of the measured checks' keys: splitmix64 from 0x5eed and
   Lemire's multiply-shift, as bench/rl-bench.c next_key(). */
function keySequence(n, nKeys) {
    const seq = new Uint32Array(n);
    const k = BigInt(nKeys);
    let s = 0x5eedn;

    for (let i = 0; i < n; i++) {
        s = (s + 0x9e3779b97f4a7c15n) & MASK64;
        let z = s;
        z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
        z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
        z ^= z >> 31n;
        seq[i] = Number(((z >> 32n) * k) >> 32n);
    }
    return seq;
}

/* ---- INFO ---- */

async function snapshot(redis) {
    const cmd = await redis.info('commandstats');
    const cpu = await redis.info('cpu');
    const calls = new Map();

    for (const m of cmd.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
        calls.set(m[1], Number(m[2]));
    const field = (name) => {
        const m = cpu.match(new RegExp(`^${name}:([0-9.]+)`, 'm'));
        return m ? Number(m[1]) : 0;
    };
    return { calls, cpuS: field('used_cpu_user') + field('used_cpu_sys') };
}

function delta(s0, s1) {
    const d = new Map();

    for (const [name, c] of s1.calls) {
        const v = c - (s0.calls.get(name) || 0);
        if (v !== 0 && name !== 'info')
            d.set(name, v);
    }
    return { calls: d, cpuS: s1.cpuS - s0.cpuS };
}

/* ---- the closed loop ---- */

/* n checks, `inflight` at a time; keyOf(i) names check i's key. */
async function runPhase(limiter, n, inflight, keyOf, lat, counts) {
    let next = 0;

    async function worker() {
        while (next < n) {
            const i = next++;
            const t0 = performance.now();
            try {
                await limiter.consume(keyOf(i));
                counts.allowed++;
            } catch (e) {
                if (e instanceof Error) {
                    counts.errors++;
                    counts.lastError = e;
                } else {
                    counts.denied++;    /* a RateLimiterRes: over the limit */
                }
            }
            if (lat !== null)
                lat[i] = performance.now() - t0;
        }
    }
    const workers = [];
    for (let w = 0; w < Math.min(inflight, n); w++)
        workers.push(worker());
    await Promise.all(workers);
}

function percentile(sorted, p) {
    return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/* ---- output ---- */

const CSV_HEADER = 'backend,algorithm,checks,keys,inflight,max,window_ms,' +
    'wall_s,checks_per_s,p50_us,p99_us,p999_us,allowed,denied,fallback,' +
    'cpu_us_per_check,mode,offered_per_s,max_us,evalsha_per_check,' +
    'client_cmds_per_check,redis_calls_per_check,redis_cpu_us_per_check,' +
    'checks_per_batch';

function report(o, r) {
    const n = r.checks;
    const get = (name) => r.srv.calls.get(name) || 0;
    const evalsha = get('evalsha');
    const client = evalsha + get('eval') + get('script|load') + get('script');
    let all = 0;
    for (const v of r.srv.calls.values())
        all += v;
    const cpuUs = r.cpuUs / n;
    const srvUs = r.srv.cpuS * 1e6 / n;

    if (o.csv || o.quiet) {
        if (!o.quiet)
            console.log(CSV_HEADER);
        console.log([
            'rlf', 'fixed-window', n, o.keys, o.inflight, o.max, o.window,
            r.wallS.toFixed(3), (n / r.wallS).toFixed(0),
            r.p50.toFixed(1), r.p99.toFixed(1), r.p999.toFixed(1),
            r.allowed, r.denied, r.errors, cpuUs.toFixed(3), 'closed', 0,
            r.maxUs.toFixed(1), (evalsha / n).toFixed(4),
            (client / n).toFixed(4), (all / n).toFixed(3), srvUs.toFixed(3),
            '1.0',
        ].join(','));
        return;
    }
    const text = [...r.srv.calls].map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(`rate-limiter-flexible ${r.version} (RateLimiterRedis, ` +
                `ioredis ${r.ioredisVersion}${o.autoPipelining ?
                    ', auto-pipelining' : ''}): ${n} checks over ${o.keys} ` +
                `keys, ${o.inflight} in flight, limit ${o.max} per ` +
                `${o.window} ms`);
    console.log(`  throughput  ${(n / r.wallS).toFixed(0)} checks/s ` +
                `(${r.wallS.toFixed(3)} s wall)`);
    console.log(`  latency     p50 ${r.p50.toFixed(1)} us, p99 ` +
                `${r.p99.toFixed(1)} us, p999 ${r.p999.toFixed(1)} us, ` +
                `max ${r.maxUs.toFixed(1)} us`);
    console.log(`  decisions   ${r.allowed} allowed, ${r.denied} denied, ` +
                `${r.errors} errors`);
    console.log(`  client CPU  ${cpuUs.toFixed(3)} us/check`);
    console.log(`  commands    ${(client / n).toFixed(4)} client ` +
                'commands/check (EVALSHA + EVAL + SCRIPT, INFO ' +
                'commandstats)');
    console.log(`  EVALSHA     ${(evalsha / n).toFixed(4)} per check ` +
                `(cmdstat_evalsha: ${evalsha})`);
    console.log(`  in Redis    ${(all / n).toFixed(3)} calls/check, ` +
                `script calls included: ${text}`);
    console.log(`  server CPU  ${srvUs.toFixed(3)} us/check (INFO cpu ` +
                `user + sys ${r.srv.cpuS.toFixed(3)} s)`);
}

/* ---- main ---- */

function connect(o) {
    const opts = { enableOfflineQueue: false, maxRetriesPerRequest: 1,
                   enableAutoPipelining: o.autoPipelining };
    const redis = o.url ? new Redis(o.url, opts)
                        : new Redis({ host: o.host, port: o.port, ...opts });
    return new Promise((resolve, reject) => {
        redis.once('ready', () => resolve(redis));
        redis.once('error', (e) => {
            redis.disconnect();
            reject(e);
        });
    });
}

async function main() {
    const o = parseArgs(process.argv);
    const keyName = [];
    for (let k = 0; k < o.keys; k++)
        keyName.push(`rlb:${k}`);
    const seq = keySequence(o.checks, o.keys);
    const redis = await connect(o);
    const limiter = new RateLimiterRedis({
        storeClient: redis, points: o.max, duration: o.window / 1000,
        keyPrefix: o.keyPrefix,
    });
    const counts = { allowed: 0, denied: 0, errors: 0, lastError: null };

    /* One consume loads the script; the warmup touches keys in turn. */
    await runPhase(limiter, 1 + o.warmup, o.inflight,
                   (i) => keyName[i % o.keys], null, counts);
    Object.assign(counts, { allowed: 0, denied: 0, errors: 0 });

    const lat = new Float64Array(o.checks);
    const s0 = await snapshot(redis);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await runPhase(limiter, o.checks, o.inflight, (i) => keyName[seq[i]],
                   lat, counts);
    const wallS = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const s1 = await snapshot(redis);
    redis.disconnect();

    lat.sort();
    report(o, {
        checks: o.checks, wallS, cpuUs: cpu.user + cpu.system,
        p50: percentile(lat, 0.5) * 1000, p99: percentile(lat, 0.99) * 1000,
        p999: percentile(lat, 0.999) * 1000,
        maxUs: lat[lat.length - 1] * 1000,
        allowed: counts.allowed, denied: counts.denied,
        errors: counts.errors, srv: delta(s0, s1),
        version: require('rate-limiter-flexible/package.json').version,
        ioredisVersion: require('ioredis/package.json').version,
    });
    if (counts.errors > 0) {
        console.error(`rlf-w1: ${counts.errors} consumes failed; last: ` +
                      `${counts.lastError && counts.lastError.message}`);
        process.exitCode = 1;
    }
}

main().catch((e) => {
    console.error(`rlf-w1: ${e.message}`);
    process.exitCode = 1;
});
