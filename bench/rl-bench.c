/*
 * rl-bench.c: how many checks per second a limiter decides, and at what
 * latency and client CPU cost.
 *
 * Workload W1, closed loop: N checks (--checks) over K keys (--keys) with
 * at most F pending (--inflight).  It submits F checks, then each callback
 * submits the next one, until N were answered.  Keys come from a
 * fixed-seed PRNG, so every run and every algorithm sees the same
 * sequence; the limit is --max per --window ms.  Per run it reports
 * checks per second of wall time, submit-to-callback latency (p50, p99,
 * p999, CLOCK_MONOTONIC, log-linear histogram of ~3% buckets), allowed and
 * denied counts, and client CPU (getrusage user + sys) per check.  --csv
 * prints one machine-readable line per run under a header; --quiet the
 * lines alone.  The bench's own cost per check is a PRNG draw, one
 * clock_gettime and a histogram increment: no malloc, no printf.
 *
 * --backend local (default, unless RATE_LIMIT_BACKEND, REDIS_URL or
 * REDIS_HOST is set) uses the in-process store; --backend redis takes the
 * server from REDIS_URL or REDIS_HOST (rl_config_from_env).  Against
 * Redis, state outlives the run: a second run within --window sees the
 * counts of the first.
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
 * about 110 instructions per check.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>
#include <ratelimit.h>

#define KEY_STRIDE 16           /* bytes per key in the key table */
#define KEYS_MAX 10000000
#define HIST_SUB 32             /* sub-buckets per power of two */
#define HIST_BUCKETS (2 * HIST_SUB + 58 * HIST_SUB)
#define N_ALGOS 5

static const struct {
    rl_algorithm alg;
    const char *name;
} algos[N_ALGOS] = {
    { RL_SLIDING_WINDOW, "sliding-window" },
    { RL_TOKEN_BUCKET, "token-bucket" },
    { RL_FIXED_WINDOW, "fixed-window" },
    { RL_SLIDING_LOG, "sliding-log" },
    { RL_GCRA, "gcra" },
};

struct options {
    const char *backend;        /* "local", "redis", or NULL: environment */
    int algo;                   /* index in algos[], -1 for all */
    int64_t checks, keys, inflight, max, window, warmup;
    bool csv, quiet;
};

/* Latencies in ns: exact below 2 * HIST_SUB, then HIST_SUB buckets per
   power of two. */
struct hist {
    uint64_t n[HIST_BUCKETS];
    uint64_t count;
};

struct bench;

/* One in-flight slot: reused by the check its callback submits. */
struct slot {
    struct bench *b;
    int64_t t0_ns;
};

struct bench {
    struct event_base *base;
    rl_limiter *rl;
    const char *keys;           /* n_keys * KEY_STRIDE bytes */
    uint32_t n_keys;
    int64_t max, window;
    uint64_t rng;
    bool sequential;            /* warmup: keys in turn, not random */
    uint32_t next_key;
    int64_t to_submit;          /* checks of this phase not yet submitted */
    int64_t inflight;
    int64_t allowed, denied, fallback, refused;
    int last_error;
    struct slot *slots;
    struct hist hist;
};

/* What one run measured. */
struct report {
    double wall_s, cpu_user_s, cpu_sys_s;
    double p50_us, p99_us, p999_us;
};

/* ---- clocks, randomness, histogram ---- */

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

static inline void
hist_add(struct hist *h, int64_t ns)
{
    uint64_t v = ns > 0 ? (uint64_t)ns : 0;
    unsigned idx;

    if (v < 2 * HIST_SUB) {
        idx = (unsigned)v;
    } else {
        unsigned shift = 63 - (unsigned)__builtin_clzll(v) - 5;

        idx = 2 * HIST_SUB + (shift - 1) * HIST_SUB +
              (unsigned)((v >> shift) - HIST_SUB);
    }
    h->n[idx]++;
    h->count++;
}

/* The middle of bucket idx, in ns. */
static double
hist_value(unsigned idx)
{
    unsigned shift;
    uint64_t low;

    if (idx < 2 * HIST_SUB)
        return (double)idx;
    shift = (idx - 2 * HIST_SUB) / HIST_SUB + 1;
    low = (uint64_t)((idx - 2 * HIST_SUB) % HIST_SUB + HIST_SUB) << shift;
    return (double)low + (double)((uint64_t)1 << shift) / 2.0;
}

/* The value at fraction p of the samples, in microseconds. */
static double
hist_percentile_us(const struct hist *h, double p)
{
    uint64_t seen = 0, rank = (uint64_t)(p * (double)h->count);
    unsigned i;

    for (i = 0; i < HIST_BUCKETS; i++) {
        seen += h->n[i];
        if (seen > rank)
            return hist_value(i) / 1000.0;
    }
    return 0.0;
}

/* ---- the closed loop ---- */

static void on_result(const rl_result *res, void *arg);

static inline const char *
next_key(struct bench *b)
{
    uint32_t i;

    if (b->sequential) {
        i = b->next_key++;
        if (b->next_key == b->n_keys)
            b->next_key = 0;
    } else {
        /* Lemire's multiply-shift: uniform enough, no division. */
        i = (uint32_t)(((rng_next(&b->rng) >> 32) * b->n_keys) >> 32);
    }
    return b->keys + (size_t)i * KEY_STRIDE;
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

    hist_add(&b->hist, now - s->t0_ns);
    b->inflight--;
    if (res->allowed)
        b->allowed++;
    else
        b->denied++;
    if (res->status != RL_OK) {
        b->fallback++;
        b->last_error = res->status;
    }
    if (b->to_submit > 0)
        submit(b, s, now);
}

/* n checks, closed loop; returns 0, or -1 when the loop failed. */
static int
run_phase(struct bench *b, int64_t n, int64_t inflight)
{
    int64_t i;

    b->to_submit = n;
    for (i = 0; i < inflight && b->to_submit > 0; i++)
        submit(b, &b->slots[i], mono_ns());
    while (b->inflight > 0) {
        if (event_base_loop(b->base, EVLOOP_ONCE) != 0) {
            fprintf(stderr, "rl-bench: %lld checks never answered\n",
                    (long long)b->inflight);
            return -1;
        }
    }
    return 0;
}

/* Not inlined, so that callgrind --toggle-collect='measured_phase*'
   counts exactly the measured checks. */
static __attribute__((noinline)) int
measured_phase(struct bench *b, int64_t n, int64_t inflight)
{
    return run_phase(b, n, inflight);
}

static void
reset_counts(struct bench *b)
{
    b->allowed = b->denied = b->fallback = b->refused = 0;
    memset(&b->hist, 0, sizeof(b->hist));
}

/* The warmup (keys in turn), then the measured phase. */
static int
run_bench(struct bench *b, const struct options *o, struct report *rep)
{
    struct rusage ru0, ru1;
    int64_t t0;
    int rc;

    b->sequential = true;
    rc = run_phase(b, o->warmup, o->inflight);
    if (rc != 0 || b->refused > 0)
        return -1;
    b->sequential = false;
    reset_counts(b);
    getrusage(RUSAGE_SELF, &ru0);
    t0 = mono_ns();
    rc = measured_phase(b, o->checks, o->inflight);
    rep->wall_s = (double)(mono_ns() - t0) / 1e9;
    getrusage(RUSAGE_SELF, &ru1);
    rep->cpu_user_s = cpu_seconds(&ru1.ru_utime) - cpu_seconds(&ru0.ru_utime);
    rep->cpu_sys_s = cpu_seconds(&ru1.ru_stime) - cpu_seconds(&ru0.ru_stime);
    rep->p50_us = hist_percentile_us(&b->hist, 0.50);
    rep->p99_us = hist_percentile_us(&b->hist, 0.99);
    rep->p999_us = hist_percentile_us(&b->hist, 0.999);
    return rc;
}

/* ---- output ---- */

static const char *
backend_name(const rl_config *cfg)
{
    return cfg->backend == RL_BACKEND_REDIS ? "redis" : "local";
}

static void
print_csv_header(void)
{
    printf("backend,algorithm,checks,keys,inflight,max,window_ms,wall_s,"
           "checks_per_s,p50_us,p99_us,p999_us,allowed,denied,fallback,"
           "cpu_us_per_check\n");
}

static void
print_report(const struct options *o, const rl_config *cfg,
             const struct bench *b, const struct report *r)
{
    double n = (double)(b->allowed + b->denied);
    double cpu_us = n > 0 ? (r->cpu_user_s + r->cpu_sys_s) * 1e6 / n : 0;
    const char *algo = algos[cfg->algorithm].name;

    if (o->csv || o->quiet) {
        printf("%s,%s,%.0f,%lld,%lld,%lld,%lld,%.3f,%.0f,%.1f,%.1f,%.1f,"
               "%lld,%lld,%lld,%.3f\n", backend_name(cfg), algo, n,
               (long long)o->keys, (long long)o->inflight,
               (long long)o->max, (long long)o->window, r->wall_s,
               n / r->wall_s, r->p50_us, r->p99_us, r->p999_us,
               (long long)b->allowed, (long long)b->denied,
               (long long)b->fallback, cpu_us);
        return;
    }
    printf("%s backend, %s: %.0f checks over %lld keys, %lld in flight, "
           "limit %lld per %lld ms\n", backend_name(cfg), algo, n,
           (long long)o->keys, (long long)o->inflight, (long long)o->max,
           (long long)o->window);
    printf("  throughput  %.0f checks/s (%.3f s wall)\n", n / r->wall_s,
           r->wall_s);
    printf("  latency     p50 %.1f us, p99 %.1f us, p999 %.1f us\n",
           r->p50_us, r->p99_us, r->p999_us);
    printf("  decisions   %lld allowed, %lld denied, %lld by the fallback\n",
           (long long)b->allowed, (long long)b->denied,
           (long long)b->fallback);
    printf("  client CPU  %.3f us/check (user %.3f s, sys %.3f s)\n",
           cpu_us, r->cpu_user_s, r->cpu_sys_s);
}

/* ---- one run per algorithm ---- */

static int
run_algorithm(struct bench *b, const struct options *o, rl_config *cfg,
              int i)
{
    struct report rep;
    int rc;

    cfg->algorithm = algos[i].alg;
    b->rng = 0x5eed;
    b->next_key = 0;
    rc = rl_new(b->base, cfg, &b->rl);
    if (rc != RL_OK) {
        fprintf(stderr, "rl-bench: rl_new (%s backend): %s\n",
                backend_name(cfg), rl_strerror(rc));
        return -1;
    }
    rc = run_bench(b, o, &rep);
    if (rc == 0 && b->refused == 0)
        print_report(o, cfg, b, &rep);
    rl_free(b->rl);
    b->rl = NULL;
    if (b->refused > 0 || b->fallback > 0)
        fprintf(stderr, "rl-bench: %s: %lld refused, %lld by the "
                "fallback; last: %s\n", algos[i].name,
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

/* ---- options and configuration ---- */

static void
usage(FILE *f)
{
    fprintf(f, "usage: rl-bench [options]\n"
            "  --backend local|redis  (default local, or the environment)\n"
            "  --algo NAME|all   sliding-window, token-bucket, fixed-window"
            ",\n"
            "                    sliding-log, gcra (default fixed-window)\n"
            "  --checks N        measured checks (default 1000000)\n"
            "  --keys N          distinct keys (default 100000)\n"
            "  --inflight N      most checks pending (default 1024)\n"
            "  --max N           limit per window (default 100)\n"
            "  --window MS       window in ms (default 60000)\n"
            "  --warmup N        unmeasured checks first, keys in turn\n"
            "  --csv             one CSV line per run, under a header\n"
            "  --quiet           the CSV lines alone\n");
}

static int
parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);

    if (end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "rl-bench: '%s' is not in %lld..%lld\n", s,
                (long long)lo, (long long)hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int
parse_algo(const char *s, int *out)
{
    int i;

    if (strcmp(s, "all") == 0) {
        *out = -1;
        return 0;
    }
    for (i = 0; i < N_ALGOS; i++) {
        if (strcmp(s, algos[i].name) == 0) {
            *out = i;
            return 0;
        }
    }
    fprintf(stderr, "rl-bench: unknown algorithm '%s'\n", s);
    return -1;
}

static int
parse_backend(const char *s, const char **out)
{
    if (strcmp(s, "local") != 0 && strcmp(s, "redis") != 0) {
        fprintf(stderr, "rl-bench: unknown backend '%s'\n", s);
        return -1;
    }
    *out = s;
    return 0;
}

/* One option; returns 0, 1 for --help, -1 when bad. */
static int
parse_one(int c, const char *arg, struct options *o)
{
    switch (c) {
    case 'b': return parse_backend(arg, &o->backend);
    case 'a': return parse_algo(arg, &o->algo);
    case 'n': return parse_i64(arg, 1, INT64_MAX / 2, &o->checks);
    case 'k': return parse_i64(arg, 1, KEYS_MAX, &o->keys);
    case 'f': return parse_i64(arg, 1, 1000000, &o->inflight);
    case 'm': return parse_i64(arg, 1, RL_MAX_REQUESTS_MAX, &o->max);
    case 'w': return parse_i64(arg, 1, RL_WINDOW_MS_MAX, &o->window);
    case 'W': return parse_i64(arg, 0, INT64_MAX / 2, &o->warmup);
    case 'c': o->csv = true; return 0;
    case 'q': o->quiet = true; return 0;
    case 'h': return 1;
    default: return -1;
    }
}

static int
parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        { "backend", required_argument, NULL, 'b' },
        { "algo", required_argument, NULL, 'a' },
        { "checks", required_argument, NULL, 'n' },
        { "keys", required_argument, NULL, 'k' },
        { "inflight", required_argument, NULL, 'f' },
        { "max", required_argument, NULL, 'm' },
        { "window", required_argument, NULL, 'w' },
        { "warmup", required_argument, NULL, 'W' },
        { "csv", no_argument, NULL, 'c' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c, rc = 0;

    /* algos[] is in enum order: an index is an rl_algorithm. */
    *o = (struct options){ .algo = RL_FIXED_WINDOW, .checks = 1000000,
                           .keys = 100000, .inflight = 1024, .max = 100,
                           .window = 60000 };
    while (rc == 0) {
        c = getopt_long(argc, argv, "", longopts, NULL);
        if (c == -1)
            break;
        rc = parse_one(c, optarg, o);
    }
    if (rc == 0 && optind < argc)
        rc = -1;
    return rc;
}

static int
is_set(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0';
}

/* The environment, then --backend over it; local when nothing says. */
static int
make_config(const struct options *o, rl_config *cfg)
{
    int rc;

    rl_config_init(cfg);
    if (!is_set("REDIS_URL") && !is_set("REDIS_HOST") &&
        !is_set("RATE_LIMIT_BACKEND"))
        cfg->backend = RL_BACKEND_LOCAL;
    rc = rl_config_from_env(cfg);
    if (rc != RL_OK) {
        fprintf(stderr, "rl-bench: environment: %s\n", rl_strerror(rc));
        return rc;
    }
    if (o->backend != NULL)
        cfg->backend = strcmp(o->backend, "redis") == 0 ?
                       RL_BACKEND_REDIS : RL_BACKEND_LOCAL;
    if (cfg->max_pending < o->inflight)
        cfg->max_pending = o->inflight;
    return RL_OK;
}

/* ---- main ---- */

static int
bench_init(struct bench *b, const struct options *o)
{
    int64_t i;

    b->n_keys = (uint32_t)o->keys;
    b->max = o->max;
    b->window = o->window;
    b->base = event_base_new();
    b->keys = make_keys(b->n_keys);
    b->slots = calloc((size_t)o->inflight, sizeof(*b->slots));
    if (b->base == NULL || b->keys == NULL || b->slots == NULL)
        return -1;
    for (i = 0; i < o->inflight; i++)
        b->slots[i].b = b;
    return 0;
}

int
main(int argc, char **argv)
{
    static struct bench b;      /* large (the histogram): not on the stack */
    struct options o;
    rl_config cfg;
    int i, rc;

    rc = parse_options(argc, argv, &o);
    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }
    if (make_config(&o, &cfg) != RL_OK)
        return 1;
    if (bench_init(&b, &o) != 0) {
        fprintf(stderr, "rl-bench: out of memory\n");
        return 1;
    }
    if (o.csv && !o.quiet)
        print_csv_header();
    for (i = 0; i < N_ALGOS && rc == 0; i++) {
        if (o.algo < 0 || i == o.algo)
            rc = run_algorithm(&b, &o, &cfg, i);
    }
    free(b.slots);
    free((char *)b.keys);
    event_base_free(b.base);
    return rc == 0 ? 0 : 1;
}
