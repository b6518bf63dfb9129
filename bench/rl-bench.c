/*
 * rl-bench.c: how many checks per second a limiter decides, and at what
 * latency, client CPU and (against Redis) server cost.
 *
 * Workload W1 (--workload w1, the default), closed loop: N checks
 * (--checks) over K keys (--keys, default 100,000) with at most F pending
 * (--inflight).  It submits F checks, then each callback submits the next
 * one, until N were answered.  Keys come from a fixed-seed PRNG, so every
 * run and every algorithm sees the same sequence (bench/peers/rlf-w1.js
 * draws the same one); the limit is --max (100) per --window ms (60,000).
 * Per run it reports checks per second of wall time, submit-to-callback
 * latency (p50, p99, p999, CLOCK_MONOTONIC, log-linear histogram of ~3%
 * buckets), allowed and denied counts, where the answers came from
 * (rl_metric SOURCE_BACKEND, SOURCE_CACHE, SOURCE_FALLBACK over the
 * measured phase), and client CPU (getrusage user + sys) per check.
 * --csv prints one machine-readable line per run under a header; --quiet
 * the lines alone.  The bench's own cost per check is a PRNG draw, one
 * clock_gettime and a histogram increment: no malloc, no printf.
 *
 * Workload W2 (--workload w2), the decision cache's: every check on one
 * hot key, "rlb:0", limit --max (100) per --window ms (default 1,000);
 * the rest as W1 (--checks, --inflight, closed or open loop).  After the
 * first 100 checks of a window every check is denied, so a cache that
 * remembers a blocked key can answer nearly all of them without Redis.
 * Why one second: a run that lasts longer crosses window ends, and at
 * each the block ends, the key goes back to Redis and the cache learns
 * it again; the figures then hold that, not one block learnt once and
 * kept for the whole run as a 60 s window would give.  (With the cache,
 * 1,000,000 checks may all fall in the first window: bench/run-w2.sh
 * also runs a longer W2, and the allowed count, 100 per window, shows
 * how many windows a run touched.)  It is also a limit the peer can
 * express exactly: rate-limiter-flexible counts its duration in whole
 * seconds, and bench/peers/rlf-w2.js runs the same one (bench/run-w2.sh
 * runs both on one server).  --keys must be 1 or left out.
 *
 * --cache turns the decision cache on (cfg.cache.enabled; CACHE_ENABLED=
 * true in the environment does the same, and the other CACHE_* variables
 * apply either way).  The report then has its hit rate over the measured
 * phase, CACHE_HITS / (CACHE_HITS + CACHE_MISSES).  The cache answers
 * only for keys Redis said are blocked: under W1 (100,000 keys, ten
 * checks each on average, none over its limit) it never hits, so W1 with
 * and without it shows what its lookups cost when it does not help.
 *
 * Open loop (--open-loop RATE): checks are offered at RATE per second for
 * --duration seconds, whatever the answers do: a timer every --tick-us
 * (default 1000 us; the base uses timerfd, EVENT_BASE_FLAG_PRECISE_TIMER,
 * so the ticks are on time) sends the checks due by then.  Check i is due
 * at the first tick at or after i / RATE seconds, and its latency is
 * counted from that tick, not from when it was actually sent: a loop that
 * falls behind pays for every check it delays (no coordinated omission).
 * At most --inflight are pending; checks due beyond that wait, their
 * clock running, and go out as answers free their slots.  It reports the
 * achieved rate, p50/p99/p999/max, the worst sending lag and how many
 * answers came from the fallback.
 *
 * --backend local (default, unless RATE_LIMIT_BACKEND, REDIS_URL or
 * REDIS_HOST is set, or --url/--host/--port is given) uses the in-process
 * store; --backend redis takes the server from the environment
 * (rl_config_from_env: REDIS_URL, REDIS_HOST, REDIS_PORT, ...), which
 * --url, or --host and --port, override.  Against Redis, one check first
 * waits for the connection and the script load; then, around the
 * measured phase, a second, synchronous connection reads INFO
 * commandstats and INFO cpu, and the report has:
 *   - EVALSHA per check: cmdstat_evalsha calls / checks;
 *   - client commands per check: rl_metric(RL_METRIC_REDIS_COMMANDS) /
 *     checks, what the library sent (with the checks per batch);
 *   - Redis calls per check: every commandstats call but INFO / checks.
 *     Redis counts the calls that scripts make (GET, SET, TIME, ...)
 *     too, so this is the work inside the server, not the round trips;
 *     it is W2's "Redis commands per check";
 *   - server CPU per check: used_cpu_user + used_cpu_sys / checks.
 * The stats are the whole server's: run on a Redis nobody else uses.
 * State outlives the run: a second run within --window sees the counts
 * of the first (bench/run-w1.sh and run-w2.sh flush between runs).
 * Counting and printing are in bench_stats.c and bench_output.c.
 *
 * Instructions per check, under callgrind (from the build directory; with
 * shared libraries bench/rl-bench is a libtool wrapper, hence the first
 * word, which a --disable-shared build can drop):
 *
 *   ./libtool --mode=execute valgrind --tool=callgrind \
 *       --callgrind-out-file=/tmp/cg.out \
 *       bench/rl-bench --backend local --checks 200000
 *   callgrind_annotate /tmp/cg.out | head -30
 *
 * then divide the PROGRAM TOTALS by the checks.  That total also holds
 * the setup (the key table, the first touch of every key).  To count the
 * measured checks alone, warm every key up first and collect only inside
 * measured_phase (the pattern: the compiler may rename a static function
 * to measured_phase.constprop.0):
 *
 *   ... valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
 *       --toggle-collect='measured_phase*' \
 *       bench/rl-bench --backend local --checks 200000 --warmup 100000
 *
 * The bench's own part of that (submit, on_result, clock_gettime) is
 * about 110 instructions per check.  Against Redis the same works (the
 * client's part only: libratelimit, hiredis, libevent, the syscalls'
 * user side); bench/run-w1.sh --callgrind does it, and bench/run-w2.sh
 * --callgrind compares W1 with and without the cache.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>

#include "bench.h"

#define KEY_STRIDE 16           /* bytes per key in the key table */
#define N_ALGOS RL_ALGORITHM_COUNT

struct bench;

/* One in-flight slot: reused by the check its callback submits. */
struct slot {
    struct bench *b;
    int64_t t0_ns;              /* sent (closed loop) or due (open loop) */
};

struct bench {
    struct event_base *base;
    rl_limiter *rl;
    redisContext *info;         /* INFO connection, NULL: no server stats */
    const char *keys;           /* n_keys * KEY_STRIDE bytes */
    uint32_t n_keys;
    int64_t max, window;
    uint64_t rng;
    bool sequential;            /* warmup: keys in turn, not random */
    uint32_t next_key;
    uint32_t ahead;             /* next random key, UINT32_MAX: none */
    int64_t to_submit;          /* checks of this phase not yet submitted */
    int64_t inflight;
    int64_t allowed, denied, fallback, refused;
    int last_error;
    int64_t max_ns;             /* slowest answer */
    struct slot *slots;
    /* open loop */
    struct slot **free_slots;   /* stack of the slots not in flight */
    int64_t n_free;
    struct event *tick_ev;
    int64_t start_ns, tick_ns, per_tick_den; /* den: rate * tick_ns */
    int64_t sent, total, lag_ns, last_done_ns;
    struct hist hist;
};

/* ---- clocks and randomness ---- */

static int64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double
cpu_seconds(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* splitmix64: a few instructions, the same sequence everywhere. */
static inline uint64_t
rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ---- the closed loop ---- */

static void on_result(const rl_result *res, void *arg);

/* Lemire's multiply-shift: uniform enough, no division. */
static inline uint32_t
draw_key(struct bench *b)
{
    return (uint32_t)(((rng_next(&b->rng) >> 32) * b->n_keys) >> 32);
}

/* The random key is drawn one check ahead and prefetched: the key table
   is larger than the caches, and a miss on it is the bench's cost, not
   the library's. */
static inline const char *
next_key(struct bench *b)
{
    uint32_t i;

    if (b->sequential) {
        i = b->next_key++;
        if (b->next_key == b->n_keys)
            b->next_key = 0;
    } else {
        if (b->ahead == UINT32_MAX)
            b->ahead = draw_key(b);
        i = b->ahead;
        b->ahead = draw_key(b);
        __builtin_prefetch(b->keys + (size_t)b->ahead * KEY_STRIDE);
    }
    return b->keys + (size_t)i * KEY_STRIDE;
}

/* One answer, timed from t0_ns: the histogram and the counts. */
static inline void
record(struct bench *b, const rl_result *res, int64_t ns)
{
    hist_add(&b->hist, ns);
    if (ns > b->max_ns)
        b->max_ns = ns;
    b->inflight--;
    if (res->allowed)
        b->allowed++;
    else
        b->denied++;
    if (res->status != RL_OK) {
        b->fallback++;
        b->last_error = res->status;
    }
}

static void
submit(struct bench *b, struct slot *s, int64_t now_ns)
{
    int rc;

    s->t0_ns = now_ns;
    rc = rl_check_async(b->rl, next_key(b), b->max, b->window, on_result, s);
    if (rc != RL_OK) {
        b->refused++;           /* stops the phase: see run_phase */
        b->last_error = rc;
        b->to_submit = 0;
        return;
    }
    b->inflight++;
    b->to_submit--;
}

static void
on_result(const rl_result *res, void *arg)
{
    struct slot *s = arg;
    struct bench *b = s->b;
    int64_t now = mono_ns();

    record(b, res, now - s->t0_ns);
    if (b->to_submit > 0)
        submit(b, s, now);
}

/* Runs the loop until nothing is pending; 0, or -1 when it failed. */
static int
drain(struct bench *b)
{
    while (b->inflight > 0) {
        if (event_base_loop(b->base, EVLOOP_ONCE) != 0) {
            fprintf(stderr, "rl-bench: %lld checks never answered\n",
                    (long long)b->inflight);
            return -1;
        }
    }
    return 0;
}

/* n checks, closed loop; returns 0, or -1 when the loop failed. */
static int
run_phase(struct bench *b, int64_t n, int64_t inflight)
{
    int64_t i;

    b->to_submit = n;
    for (i = 0; i < inflight && b->to_submit > 0; i++)
        submit(b, &b->slots[i], mono_ns());
    return drain(b);
}

/* ---- the open loop ---- */

static void on_open_result(const rl_result *res, void *arg);

/* When check i is due: the first tick at or after i / rate seconds. */
static inline int64_t
due_ns(const struct bench *b, int64_t i)
{
    int64_t num = (i + 1) * 1000000000;
    int64_t ticks = (num + b->per_tick_den - 1) / b->per_tick_den;

    return b->start_ns + ticks * b->tick_ns;
}

/* Sends every check due by `now` that a free slot can carry. */
static void
open_pump(struct bench *b, int64_t now)
{
    struct slot *s;
    int64_t due;
    int rc;

    while (b->sent < b->total && b->n_free > 0) {
        due = due_ns(b, b->sent);
        if (due > now)
            break;
        s = b->free_slots[--b->n_free];
        s->t0_ns = due;
        if (now - due > b->lag_ns)
            b->lag_ns = now - due;
        rc = rl_check_async(b->rl, next_key(b), b->max, b->window,
                            on_open_result, s);
        if (rc != RL_OK) {
            b->refused++;
            b->last_error = rc;
            b->free_slots[b->n_free++] = s;
            b->total = b->sent;  /* stop offering */
            break;
        }
        b->inflight++;
        b->sent++;
    }
    if (b->sent >= b->total)
        event_del(b->tick_ev);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    open_pump(arg, mono_ns());
}

static void
on_open_result(const rl_result *res, void *arg)
{
    struct slot *s = arg;
    struct bench *b = s->b;
    int64_t now = mono_ns();

    record(b, res, now - s->t0_ns);
    b->free_slots[b->n_free++] = s;
    b->last_done_ns = now;
    if (b->sent < b->total)
        open_pump(b, now);      /* a backlog waits for this slot */
}

/* RATE checks a second for `duration` s; 0, or -1 when it failed. */
static int
open_phase(struct bench *b, const struct options *o)
{
    struct timeval tv = { (time_t)(o->tick_us / 1000000),
                          (suseconds_t)(o->tick_us % 1000000) };
    int64_t i;
    int rc;

    b->tick_ev = event_new(b->base, -1, EV_PERSIST, on_tick, b);
    if (b->tick_ev == NULL)
        return -1;
    for (i = 0; i < o->inflight; i++)
        b->free_slots[i] = &b->slots[i];
    b->n_free = o->inflight;
    b->tick_ns = o->tick_us * 1000;
    b->per_tick_den = o->rate * b->tick_ns;
    b->total = o->rate * o->duration;
    b->sent = b->lag_ns = 0;
    b->start_ns = b->last_done_ns = mono_ns();
    event_add(b->tick_ev, &tv);
    rc = 0;
    while (rc == 0 && (b->sent < b->total || b->inflight > 0))
        rc = event_base_loop(b->base, EVLOOP_ONCE) == 0 ? 0 : -1;
    event_free(b->tick_ev);
    b->tick_ev = NULL;
    if (rc != 0)
        fprintf(stderr, "rl-bench: the open loop stopped with %lld checks "
                "pending\n", (long long)b->inflight);
    return rc;
}

/* Not inlined, so that callgrind --toggle-collect='measured_phase*'
   counts exactly the measured checks. */
static __attribute__((noinline)) int
measured_phase(struct bench *b, const struct options *o)
{
    if (o->rate > 0)
        return open_phase(b, o);
    return run_phase(b, o->checks, o->inflight);
}

/* ---- one measured run ---- */

static void
reset_counts(struct bench *b)
{
    b->allowed = b->denied = b->fallback = b->refused = 0;
    b->max_ns = 0;
    memset(&b->hist, 0, sizeof(b->hist));
}

/* Redis: one check that waits for the connection and the script load. */
static int
connect_probe(struct bench *b, const rl_config *cfg)
{
    if (cfg->backend != RL_BACKEND_REDIS)
        return 0;
    b->sequential = true;
    return run_phase(b, 1, 1);
}

/* The loop's own figures into the report: counts, CPU, latency. */
static void
fill_report(const struct bench *b, const struct rusage *ru0,
            const struct rusage *ru1, struct report *rep)
{
    rep->allowed = b->allowed;
    rep->denied = b->denied;
    rep->fallback = b->fallback;
    rep->cpu_user_s = cpu_seconds(&ru1->ru_utime) -
                      cpu_seconds(&ru0->ru_utime);
    rep->cpu_sys_s = cpu_seconds(&ru1->ru_stime) -
                     cpu_seconds(&ru0->ru_stime);
    rep->p50_us = bench_hist_percentile_us(&b->hist, 0.50);
    rep->p99_us = bench_hist_percentile_us(&b->hist, 0.99);
    rep->p999_us = bench_hist_percentile_us(&b->hist, 0.999);
    rep->max_us = (double)b->max_ns / 1000.0;
    rep->lag_us = (double)b->lag_ns / 1000.0;
}

/* The warmup (keys in turn), then the measured phase. */
static int
run_bench(struct bench *b, const struct options *o, const rl_config *cfg,
          struct report *rep)
{
    struct snapshot s0, s1;
    struct rusage ru0, ru1;
    int64_t t0;
    int rc;

    b->sequential = true;
    rc = connect_probe(b, cfg);
    if (rc == 0)
        rc = run_phase(b, o->warmup, o->inflight);
    if (rc != 0 || b->refused > 0)
        return -1;
    b->sequential = false;
    reset_counts(b);
    bench_snapshot(b->rl, b->info, &s0);
    getrusage(RUSAGE_SELF, &ru0);
    t0 = mono_ns();
    rc = measured_phase(b, o);
    rep->wall_s = (double)((o->rate > 0 ? b->last_done_ns : mono_ns()) -
                           t0) / 1e9;
    getrusage(RUSAGE_SELF, &ru1);
    bench_snapshot(b->rl, b->info, &s1);
    bench_snapshot_delta(&s0, &s1, rep);
    fill_report(b, &ru0, &ru1, rep);
    return rc;
}

/* ---- one run per algorithm ---- */

static int
run_algorithm(struct bench *b, const struct options *o, rl_config *cfg,
              int i)
{
    struct report rep;
    int rc;

    memset(&rep, 0, sizeof(rep));
    cfg->algorithm = (rl_algorithm)i;
    b->rng = 0x5eed;
    b->ahead = UINT32_MAX;
    b->next_key = 0;
    rc = rl_new(b->base, cfg, &b->rl);
    if (rc != RL_OK) {
        fprintf(stderr, "rl-bench: rl_new (%s backend): %s\n",
                cfg->backend == RL_BACKEND_REDIS ? "redis" : "local",
                rl_strerror(rc));
        return -1;
    }
    if (o->no_metrics)
        rl_metrics_enable(b->rl, false);
    rc = run_bench(b, o, cfg, &rep);
    if (rc == 0 && b->refused == 0)
        bench_print_report(o, cfg, &rep);
    fflush(stdout);
    rl_free(b->rl);
    b->rl = NULL;
    if (b->refused > 0 || b->fallback > 0)
        fprintf(stderr, "rl-bench: %s: %lld refused, %lld by the "
                "fallback; last: %s\n", rl_algorithm_name(i),
                (long long)b->refused, (long long)b->fallback,
                rl_strerror(b->last_error));
    return rc == 0 && b->refused == 0 && b->fallback == 0 ? 0 : -1;
}

/* Keys "rlb:0" ... in a table of fixed strides. */
static char *
make_keys(uint32_t n)
{
    char *keys = malloc((size_t)n * KEY_STRIDE);
    uint32_t i;

    if (keys == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        snprintf(keys + (size_t)i * KEY_STRIDE, KEY_STRIDE, "rlb:%u", i);
    return keys;
}

/* ---- main ---- */

static int
bench_init(struct bench *b, const struct options *o, const rl_config *cfg)
{
    int64_t i;

    b->n_keys = (uint32_t)o->keys;
    b->max = o->max;
    b->window = o->window;
    b->base = bench_base_new(o->rate > 0);
    b->keys = make_keys(b->n_keys);
    b->slots = calloc((size_t)o->inflight, sizeof(*b->slots));
    b->free_slots = calloc((size_t)o->inflight, sizeof(*b->free_slots));
    if (b->base == NULL || b->keys == NULL || b->slots == NULL ||
        b->free_slots == NULL)
        return -1;
    for (i = 0; i < o->inflight; i++)
        b->slots[i].b = b;
    if (cfg->backend == RL_BACKEND_REDIS)
        b->info = bench_info_open(cfg);
    return 0;
}

int
main(int argc, char **argv)
{
    static struct bench b;      /* large (the histogram): not on the stack */
    struct options o;
    rl_config cfg;
    int i, rc;

    rc = bench_parse_options(argc, argv, &o);
    if (rc != 0) {
        bench_usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }
    if (bench_make_config(&o, &cfg) != RL_OK)
        return 1;
    if (bench_init(&b, &o, &cfg) != 0) {
        fprintf(stderr, "rl-bench: out of memory\n");
        return 1;
    }
    if (o.csv && !o.quiet)
        bench_print_csv_header();
    for (i = 0; i < N_ALGOS && rc == 0; i++) {
        if (o.algo < 0 || i == o.algo)
            rc = run_algorithm(&b, &o, &cfg, i);
    }
    if (b.info != NULL)
        redisFree(b.info);
    free(b.free_slots);
    free(b.slots);
    free((char *)b.keys);
    event_base_free(b.base);
    return rc == 0 ? 0 : 1;
}
