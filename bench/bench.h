/*
 * bench.h: what the files of rl-bench share: its options, the latency
 * histogram, the counters read before and after a measured phase and the
 * report of one run.  rl-bench.c runs the loops; bench_stats.c reads the
 * counters (the library's and the Redis server's); bench_output.c prints;
 * bench_options.c parses the command line into a configuration.
 */
#ifndef RL_BENCH_H
#define RL_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <ratelimit.h>

#define KEYS_MAX 10000000
#define HIST_SUB 32             /* sub-buckets per power of two */
#define HIST_BUCKETS (2 * HIST_SUB + 58 * HIST_SUB)
#define CMDSTAT_MAX 64          /* commands remembered from commandstats */
#define CMDNAME_MAX 32

/* The workloads (the header of rl-bench.c describes them). */
enum workload {
    W1 = 1,                     /* random keys out of --keys */
    W2 = 2                      /* every check on one hot key */
};

struct options {
    const char *backend;        /* "local", "redis", or NULL: environment */
    const char *url, *host;     /* NULL: from the environment */
    int64_t port;               /* 0: from the environment */
    int algo;                   /* an rl_algorithm, -1 for all */
    int workload;               /* an enum workload */
    bool cache;                 /* --cache: the decision cache on */
    int64_t checks, keys, inflight, max, window, warmup;
    int64_t rate, duration, tick_us; /* open loop when rate > 0 */
    bool csv, quiet;
    bool no_metrics;            /* latency recording off (hub cost) */
};

/* ---- latency histogram ---- */

/* Latencies in ns: exact below 2 * HIST_SUB, then HIST_SUB buckets per
   power of two. */
struct hist {
    uint64_t n[HIST_BUCKETS];
    uint64_t count;
};

/* Inline: it runs once per check, inside the measured loop. */
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

/* ---- counters around the measured phase ---- */

/* The library's counters that a report shows (rl_metric ids in
   bench_stats.c). */
enum lib_counter {
    LIB_CMDS,                   /* commands sent to Redis */
    LIB_BATCHES,                /* coalesced batches */
    LIB_BATCHED,                /* checks those batches carried */
    LIB_SRC_BACKEND,            /* answers by source */
    LIB_SRC_CACHE,
    LIB_SRC_FALLBACK,
    LIB_CACHE_HITS,             /* the decision cache */
    LIB_CACHE_MISSES,
    LIB_COUNT_
};

struct cmdstat {
    char name[CMDNAME_MAX];
    int64_t calls;
};

/* The counters at one moment. */
struct snapshot {
    bool server;                /* the INFO part was read */
    double cpu_s;               /* used_cpu_user + used_cpu_sys */
    int n;
    struct cmdstat cmd[CMDSTAT_MAX];
    int64_t lib[LIB_COUNT_];
};

/* What one run measured. */
struct report {
    double wall_s, cpu_user_s, cpu_sys_s;
    double p50_us, p99_us, p999_us, max_us, lag_us;
    int64_t allowed, denied, fallback;
    int64_t lib[LIB_COUNT_];    /* deltas over the measured phase */
    bool server;
    double evalsha, calls, srv_cpu_s;   /* server deltas */
    char calls_text[256];       /* "evalsha 15625, get 1000000, ..." */
};

/* ---- bench_stats.c ---- */

/* A synchronous connection to the backend's server for INFO, or NULL
   (said on stderr).  The caller frees it with redisFree. */
redisContext *bench_info_open(const rl_config *cfg);

/* The library's counters and, when info is not NULL, the server's. */
void bench_snapshot(const rl_limiter *rl, redisContext *info,
                    struct snapshot *s);

/* The differences s1 - s0 into r (the counters and the server part). */
void bench_snapshot_delta(const struct snapshot *s0,
                          const struct snapshot *s1, struct report *r);

/* ---- bench_output.c ---- */

/* The value at fraction p of the samples, in microseconds. */
double bench_hist_percentile_us(const struct hist *h, double p);

void bench_print_csv_header(void);

/* One run: text, or one CSV line with --csv or --quiet. */
void bench_print_report(const struct options *o, const rl_config *cfg,
                        const struct report *r);

/* ---- bench_options.c ---- */

void bench_usage(FILE *f);

/* The command line into *o: 0, 1 for --help, -1 when bad (said). */
int bench_parse_options(int argc, char **argv, struct options *o);

/* The environment, then the options over it: RL_OK or a code (said). */
int bench_make_config(const struct options *o, rl_config *cfg);

/*
 * An event_base, with libevent's precise timer when asked: its default
 * clock (CLOCK_MONOTONIC_COARSE) moves in kernel ticks, 4 ms here, and
 * epoll rounds timeouts up to the millisecond, so an open loop's ticks
 * need timerfd precision.  NULL when out of memory.
 */
static inline struct event_base *
bench_base_new(bool precise)
{
    struct event_config *ec;
    struct event_base *base;

    if (!precise)
        return event_base_new();
    ec = event_config_new();
    if (ec == NULL)
        return NULL;
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    base = event_base_new_with_config(ec);
    event_config_free(ec);
    return base;
}

#endif /* RL_BENCH_H */
