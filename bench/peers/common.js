/*
 * common.js: what the peer scripts (rlf-w1.js, rlf-w2.js) share: their
 * options, rl-bench's key sequence, the closed loop, the Redis counters
 * read around the measured phase, and the report in rl-bench's text and
 * CSV formats.  A script describes its workload to run() and nothing else.
 *
 * Options (defaults are rl-bench's, so both run the same workload; a
 * script may change the defaults):
 *   --url URL | --host H --port P   the server (else REDIS_URL, else
 *                    REDIS_HOST / REDIS_PORT, else 127.0.0.1:6379)
 *   --checks N       measured checks (1000000)
 *   --keys N         distinct keys "rlb:0".."rlb:N-1" (100000)
 *   --inflight N     checks pending at once (1024)
 *   --max N          points per window (100)
 *   --window MS      window, a whole number of seconds in ms (60000)
 *   --warmup N       unmeasured checks first, keys in turn (0)
 *   --key-prefix P   rate-limiter-flexible's keyPrefix (the script's name)
 *   --auto-pipelining  ioredis enableAutoPipelining (off: the default
 *                    client, as the library's docs show it)
 *   --csv, --quiet   rl-bench's CSV columns (under a header, or alone)
 *
 * The closed loop: --inflight async workers each await
 * limiter.consume(key) and then take the next check, until --checks were
 * answered.  A consume over the limit is rejected with a RateLimiterRes:
 * that is a denial, counted as such; only a rejection with an Error is an
 * error (the CSV's fallback column).  A denial with consumedPoints 0 came
 * from the in-memory block without asking Redis (a Redis answer over the
 * limit has consumedPoints > points): those are the "cache" source, the
 * others the "backend".
 *
 * Reports checks/s, latency from the call to the promise settling
 * (performance.now; p50, p99, p999, max), client CPU per check
 * (process.cpuUsage, user + system), and from INFO commandstats / INFO cpu
 * read before and after the measured phase: EVALSHA per check, client
 * commands per check (EVALSHA + EVAL + SCRIPT: the only commands consume
 * sends), every call Redis ran per check (script calls included, INFO
 * left out), and the server's CPU per check.  INFO covers the whole
 * server: run it on a Redis nobody else is using.
 */
'use strict';

const { performance } = require('node:perf_hooks');
const Redis = require('ioredis');

const MASK64 = (1n << 64n) - 1n;

/* ---- options ---- */

function parseArgs(argv, defaults, name) {
    const o = {
        url: process.env.REDIS_URL || null,
        host: process.env.REDIS_HOST || '127.0.0.1',
        port: Number(process.env.REDIS_PORT || 6379),
        checks: 1000000, keys: 100000, inflight: 1024, max: 100,
        window: 60000, warmup: 0, keyPrefix: name,
        autoPipelining: false, csv: false, quiet: false,
        ...defaults,
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
                            'common.js)');
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
   Lemire's multiply-shift, as bench/rl-bench.c next_key().  Computed
   before the measured phase (BigInt is slow). */
function keySequence(n, nKeys) {
    const seq = new Uint32Array(n);
    const k = BigInt(nKeys);
    let s = 0x5eedn;

    if (nKeys === 1)
        return seq;             /* every draw is key 0 */
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

function newCounts() {
    return { allowed: 0, denied: 0, memBlocked: 0, errors: 0,
             lastError: null };
}

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
                    if (e.consumedPoints === 0)
                        counts.memBlocked++;
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
    'checks_per_batch,workload,cache,source_backend,source_cache,' +
    'source_fallback,cache_hit_rate';

/* The server's counts per check: EVALSHA, what clients sent, all. */
function serverCounts(r) {
    const get = (name) => r.srv.calls.get(name) || 0;
    const evalsha = get('evalsha');
    let all = 0;

    for (const v of r.srv.calls.values())
        all += v;
    return { evalsha, all,
             client: evalsha + get('eval') + get('script|load') +
                     get('script') };
}

function printCsv(o, spec, r, c) {
    const n = r.checks;
    const hit = spec.cache === 'off' ? '' : (r.memBlocked / n).toFixed(6);

    if (!o.quiet)
        console.log(CSV_HEADER);
    console.log([
        'rlf', 'fixed-window', n, o.keys, o.inflight, o.max, o.window,
        r.wallS.toFixed(3), (n / r.wallS).toFixed(0),
        r.p50.toFixed(1), r.p99.toFixed(1), r.p999.toFixed(1),
        r.allowed, r.denied, r.errors, (r.cpuUs / n).toFixed(3), 'closed', 0,
        r.maxUs.toFixed(1), (c.evalsha / n).toFixed(6),
        (c.client / n).toFixed(6), (c.all / n).toFixed(6),
        (r.srv.cpuS * 1e6 / n).toFixed(3), '1.0', spec.workload, spec.cache,
        n - r.memBlocked - r.errors, r.memBlocked, r.errors, hit,
    ].join(','));
}

function report(o, spec, r) {
    const n = r.checks;
    const c = serverCounts(r);

    if (o.csv || o.quiet)
        return printCsv(o, spec, r, c);
    const text = [...r.srv.calls].map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(`rate-limiter-flexible ${r.version} (RateLimiterRedis, ` +
                `ioredis ${r.ioredisVersion}${o.autoPipelining ?
                    ', auto-pipelining' : ''}), ${spec.workload}, ` +
                `${spec.describe}: ${n} checks over ${o.keys} ` +
                `key${o.keys === 1 ? '' : 's'}, ${o.inflight} in flight, ` +
                `limit ${o.max} per ${o.window} ms`);
    console.log(`  throughput  ${(n / r.wallS).toFixed(0)} checks/s ` +
                `(${r.wallS.toFixed(3)} s wall)`);
    console.log(`  latency     p50 ${r.p50.toFixed(1)} us, p99 ` +
                `${r.p99.toFixed(1)} us, p999 ${r.p999.toFixed(1)} us, ` +
                `max ${r.maxUs.toFixed(1)} us`);
    console.log(`  decisions   ${r.allowed} allowed, ${r.denied} denied, ` +
                `${r.errors} errors`);
    console.log(`  sources     ${n - r.memBlocked - r.errors} Redis, ` +
                `${r.memBlocked} in-memory block, ${r.errors} errors`);
    console.log(`  client CPU  ${(r.cpuUs / n).toFixed(3)} us/check`);
    console.log(`  commands    ${(c.client / n).toFixed(6)} client ` +
                'commands/check (EVALSHA + EVAL + SCRIPT, INFO ' +
                'commandstats)');
    console.log(`  EVALSHA     ${(c.evalsha / n).toFixed(6)} per check ` +
                `(cmdstat_evalsha: ${c.evalsha})`);
    console.log(`  in Redis    ${(c.all / n).toFixed(6)} calls/check ` +
                `(${c.all}), script calls included: ${text}`);
    console.log(`  server CPU  ${(r.srv.cpuS * 1e6 / n).toFixed(3)} ` +
                `us/check (INFO cpu user + sys ${r.srv.cpuS.toFixed(3)} s)`);
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

/* The measured phase and its counters, after a probe and the warmup. */
async function measure(o, limiter, redis, keyName) {
    const seq = keySequence(o.checks, o.keys);
    const counts = newCounts();

    /* One consume loads the script; the warmup touches keys in turn. */
    await runPhase(limiter, 1 + o.warmup, o.inflight,
                   (i) => keyName[i % o.keys], null, counts);
    Object.assign(counts, newCounts());

    const lat = new Float64Array(o.checks);
    const s0 = await snapshot(redis);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await runPhase(limiter, o.checks, o.inflight, (i) => keyName[seq[i]],
                   lat, counts);
    const wallS = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const s1 = await snapshot(redis);

    lat.sort();
    return {
        ...counts, checks: o.checks, wallS, cpuUs: cpu.user + cpu.system,
        p50: percentile(lat, 0.5) * 1000, p99: percentile(lat, 0.99) * 1000,
        p999: percentile(lat, 0.999) * 1000,
        maxUs: lat[lat.length - 1] * 1000, srv: delta(s0, s1),
    };
}

/*
 * Runs one workload: spec.name (messages, default key prefix),
 * spec.defaults (options), spec.check(o) (throws on options that are not
 * the workload), spec.makeLimiter(o, redis), spec.workload ("w1"),
 * spec.cache (the CSV's cache column) and spec.describe (the text's).
 * Exit status: 0, or 1 when a consume failed with an error.
 */
async function runWorkload(spec) {
    const o = parseArgs(process.argv, spec.defaults, spec.name);
    if (spec.check)
        spec.check(o);
    const keyName = [];
    for (let k = 0; k < o.keys; k++)
        keyName.push(`rlb:${k}`);
    const redis = await connect(o);
    const r = await measure(o, spec.makeLimiter(o, redis), redis, keyName);
    redis.disconnect();

    report(o, spec, {
        ...r, version: require('rate-limiter-flexible/package.json').version,
        ioredisVersion: require('ioredis/package.json').version,
    });
    if (r.errors > 0) {
        console.error(`${spec.name}: ${r.errors} consumes failed; last: ` +
                      `${r.lastError && r.lastError.message}`);
        process.exitCode = 1;
    }
}

function run(spec) {
    runWorkload(spec).catch((e) => {
        console.error(`${spec.name}: ${e.message}`);
        process.exitCode = 1;
    });
}

module.exports = { run };
