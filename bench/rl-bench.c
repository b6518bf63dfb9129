/*
 * rl-bench.c: how many checks per second a limiter decides, and at what
 * latency, client CPU and (against Redis) server cost.
 *
 * Workload W1, closed loop: N checks (--checks) over K keys (--keys) with
 * at most F pending (--inflight).  It submits F checks, then each callback
 * submits the next one, until N were answered.  Keys come from a
 * fixed-seed PRNG, so every run and every algorithm sees the same
 * sequence (bench/peers/rlf-w1.js draws the same one); the limit is --max
 * per --window ms.  Per run it reports checks per second of wall time,
 * submit-to-callback latency (p50, p99, p999, CLOCK_MONOTONIC, log-linear
 * histogram of ~3% buckets), allowed and denied counts, and client CPU
 * (getrusage user + sys) per check.  --csv prints one machine-readable
 * line per run under a header; --quiet the lines alone.  The bench's own
 * cost per check is a PRNG draw, one clock_gettime and a histogram
 * increment: no malloc, no printf.
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
 *   - server CPU per check: used_cpu_user + used_cpu_sys / checks.
 * The stats are the whole server's: run on a Redis nobody else uses.
 * State outlives the run: a second run within --window sees the counts
 * of the first (bench/run-w1.sh flushes between runs).
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
 * user side); bench/run-w1.sh --callgrind does it.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <ratelimit.h>

#define KEY_STRIDE 16           /* bytes per key in the key table */
#define KEYS_MAX 10000000
#define HIST_SUB 32             /* sub-buckets per power of two */
#define HIST_BUCKETS (2 * HIST_SUB + 58 * HIST_SUB)
#define N_ALGOS RL_ALGORITHM_COUNT
#define CMDSTAT_MAX 64          /* commands remembered from commandstats */
#define CMDNAME_MAX 32


struct options {
    const char *backend;        /* "local", "redis", or NULL: environment */
    const char *url, *host;     /* NULL: from the environment */
    int64_t port;               /* 0: from the environment */
    int algo;                   /* an rl_algorithm, -1 for all */
    int64_t checks, keys, inflight, max, window, warmup;
    int64_t rate, duration, tick_us; /* open loop when rate > 0 */
    bool csv, quiet;
    bool no_metrics;            /* latency recording off (hub cost) */
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

/* Counters read before and after the measured phase. */
struct cmdstat {
    char name[CMDNAME_MAX];
    int64_t calls;
};

struct snapshot {
    bool server;                /* the INFO part was read */
    double cpu_s;               /* used_cpu_user + used_cpu_sys */
    int n;
    struct cmdstat cmd[CMDSTAT_MAX];
    int64_t lib_cmds, lib_evalsha, lib_batches, lib_batched;
};

/* What one run measured. */
struct report {
    double wall_s, cpu_user_s, cpu_sys_s;
    double p50_us, p99_us, p999_us, max_us, lag_us;
    bool server;
    double evalsha, calls, srv_cpu_s;   /* server deltas */
    int64_t lib_cmds, lib_evalsha, lib_batches, lib_batched;
    char calls_text[256];       /* "evalsha 15625, get 1000000, ..." */
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

/* ---- Redis server statistics (INFO, own connection) ---- */

/* Where INFO goes: the backend's server and credentials. */
struct target {
    char buf[1024];
    const char *host, *path, *user, *pass;
    int port;
};

/* The URL's parts in t->buf; its user and password are taken as written
   (no percent-decoding). */
static void
parse_url(const char *url, struct target *t)
{
    char *host = t->buf, *at, *p;

    snprintf(t->buf, sizeof(t->buf), "%s", url + 8);
    t->buf[strcspn(t->buf, "/")] = '\0';
    at = strrchr(t->buf, '@');
    if (at != NULL) {
        *at = '\0';
        host = at + 1;
        p = strchr(t->buf, ':');
        if (p != NULL) {
            *p = '\0';
            t->pass = p + 1;
        }
        t->user = t->buf[0] != '\0' ? t->buf : NULL;
    }
    t->port = 6379;
    p = host;
    if (host[0] == '[' && strchr(host, ']') != NULL) {
        p = strchr(host, ']');
        *p++ = '\0';
        host++;
    }
    p = strrchr(p, ':');
    if (p != NULL) {
        *p = '\0';
        t->port = atoi(p + 1);
    }
    t->host = host;
}

static void
make_target(const rl_config *cfg, struct target *t)
{
    const char *url = cfg->redis.url;

    memset(t, 0, sizeof(*t));
    t->host = cfg->redis.host;
    t->port = cfg->redis.port;
    t->user = cfg->redis.username;
    t->pass = cfg->redis.password;
    if (url != NULL && strncasecmp(url, "unix://", 7) == 0) {
        snprintf(t->buf, sizeof(t->buf), "%s", url + 7);
        t->buf[strcspn(t->buf, "?")] = '\0';
        t->path = t->buf;
    } else if (url != NULL && strncasecmp(url, "redis://", 8) == 0) {
        parse_url(url, t);
    }
}

/* AUTH on the INFO connection, when the backend has a password. */
static int
info_auth(redisContext *c, const struct target *t)
{
    redisReply *r;
    int ok;

    if (t->pass == NULL)
        return 0;
    if (t->user != NULL)
        r = redisCommand(c, "AUTH %s %s", t->user, t->pass);
    else
        r = redisCommand(c, "AUTH %s", t->pass);
    ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* A synchronous connection for INFO, or NULL (said on stderr). */
static redisContext *
info_open(const rl_config *cfg)
{
    struct timeval tv = { 2, 0 };
    struct target t;
    redisContext *c;

    make_target(cfg, &t);
    if (t.path != NULL)
        c = redisConnectUnixWithTimeout(t.path, tv);
    else
        c = redisConnectWithTimeout(t.host, t.port, tv);
    if (c == NULL || c->err) {
        fprintf(stderr, "rl-bench: INFO connection: %s; no server stats\n",
                c != NULL ? c->errstr : "out of memory");
        goto out_free;
    }
    if (info_auth(c, &t) != 0) {
        fprintf(stderr, "rl-bench: INFO connection: AUTH refused; no "
                "server stats\n");
        goto out_free;
    }
    return c;

out_free:
    if (c != NULL)
        redisFree(c);
    return NULL;
}

/* "cmdstat_NAME:calls=N,..." lines into s->cmd[]. */
static void
parse_commandstats(const char *text, struct snapshot *s)
{
    const char *line, *colon, *calls;
    size_t len;

    for (line = strstr(text, "cmdstat_"); line != NULL && s->n < CMDSTAT_MAX;
         line = strstr(line + 1, "\ncmdstat_")) {
        if (line[0] == '\n')
            line++;
        colon = strchr(line, ':');
        calls = strstr(line, "calls=");
        if (colon == NULL || calls == NULL)
            break;
        len = (size_t)(colon - line - 8);
        if (len >= CMDNAME_MAX)
            continue;
        memcpy(s->cmd[s->n].name, line + 8, len);
        s->cmd[s->n].name[len] = '\0';
        s->cmd[s->n++].calls = strtoll(calls + 6, NULL, 10);
    }
}

static double
info_field(const char *text, const char *name)
{
    const char *p = strstr(text, name);

    return p != NULL ? strtod(p + strlen(name), NULL) : 0.0;
}

/* The server's counters now; s->server stays false without them. */
static void
read_server(redisContext *c, struct snapshot *s)
{
    redisReply *cmd = redisCommand(c, "INFO commandstats");
    redisReply *cpu = redisCommand(c, "INFO cpu");

    if (cmd != NULL && cmd->type == REDIS_REPLY_STRING && cpu != NULL &&
        cpu->type == REDIS_REPLY_STRING) {
        parse_commandstats(cmd->str, s);
        s->cpu_s = info_field(cpu->str, "used_cpu_user:") +
                   info_field(cpu->str, "used_cpu_sys:");
        s->server = true;
    }
    freeReplyObject(cmd);
    freeReplyObject(cpu);
}

static void
take_snapshot(struct bench *b, struct snapshot *s)
{
    memset(s, 0, sizeof(*s));
    s->lib_cmds = rl_metric(b->rl, RL_METRIC_REDIS_COMMANDS);
    s->lib_evalsha = rl_metric(b->rl, RL_METRIC_REDIS_EVALSHA);
    s->lib_batches = rl_metric(b->rl, RL_METRIC_BATCHES);
    s->lib_batched = rl_metric(b->rl, RL_METRIC_BATCHED_CHECKS);
    if (b->info != NULL)
        read_server(b->info, s);
}

static int64_t
calls_of(const struct snapshot *s, const char *name)
{
    int i;

    for (i = 0; i < s->n; i++)
        if (strcmp(s->cmd[i].name, name) == 0)
            return s->cmd[i].calls;
    return 0;
}

/* The differences a1 - a0 into the report. */
static void
snapshot_delta(const struct snapshot *a0, const struct snapshot *a1,
               struct report *r)
{
    size_t used = 0;
    int64_t d;
    int i;

    r->lib_cmds = a1->lib_cmds - a0->lib_cmds;
    r->lib_evalsha = a1->lib_evalsha - a0->lib_evalsha;
    r->lib_batches = a1->lib_batches - a0->lib_batches;
    r->lib_batched = a1->lib_batched - a0->lib_batched;
    r->server = a0->server && a1->server;
    if (!r->server)
        return;
    r->srv_cpu_s = a1->cpu_s - a0->cpu_s;
    r->evalsha = (double)(calls_of(a1, "evalsha") - calls_of(a0, "evalsha"));
    for (i = 0; i < a1->n; i++) {
        d = a1->cmd[i].calls - calls_of(a0, a1->cmd[i].name);
        if (d == 0 || strcmp(a1->cmd[i].name, "info") == 0)
            continue;
        r->calls += (double)d;
        if (used + CMDNAME_MAX + 24 < sizeof(r->calls_text))
            used += (size_t)snprintf(r->calls_text + used,
                                     sizeof(r->calls_text) - used, "%s%s %lld",
                                     used ? ", " : "", a1->cmd[i].name,
                                     (long long)d);
    }
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
    take_snapshot(b, &s0);
    getrusage(RUSAGE_SELF, &ru0);
    t0 = mono_ns();
    rc = measured_phase(b, o);
    rep->wall_s = (double)((o->rate > 0 ? b->last_done_ns : mono_ns()) -
                           t0) / 1e9;
    getrusage(RUSAGE_SELF, &ru1);
    take_snapshot(b, &s1);
    snapshot_delta(&s0, &s1, rep);
    rep->cpu_user_s = cpu_seconds(&ru1.ru_utime) - cpu_seconds(&ru0.ru_utime);
    rep->cpu_sys_s = cpu_seconds(&ru1.ru_stime) - cpu_seconds(&ru0.ru_stime);
    rep->p50_us = hist_percentile_us(&b->hist, 0.50);
    rep->p99_us = hist_percentile_us(&b->hist, 0.99);
    rep->p999_us = hist_percentile_us(&b->hist, 0.999);
    rep->max_us = (double)b->max_ns / 1000.0;
    rep->lag_us = (double)b->lag_ns / 1000.0;
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
           "cpu_us_per_check,mode,offered_per_s,max_us,evalsha_per_check,"
           "client_cmds_per_check,redis_calls_per_check,"
           "redis_cpu_us_per_check,checks_per_batch\n");
}

/* The Redis columns of a CSV line: empty when not measured. */
static void
print_csv_redis(const struct report *r, double n)
{
    double per_batch = r->lib_batches > 0 ?
                       (double)r->lib_batched / (double)r->lib_batches : 0;

    if (!r->server) {
        printf(",,,,,\n");
        return;
    }
    printf(",%.4f,%.4f,%.3f,%.3f,%.1f\n", r->evalsha / n,
           (double)r->lib_cmds / n, r->calls / n, r->srv_cpu_s * 1e6 / n,
           per_batch);
}

static void
print_csv(const struct options *o, const rl_config *cfg,
          const struct bench *b, const struct report *r, double n)
{
    double cpu_us = (r->cpu_user_s + r->cpu_sys_s) * 1e6 / n;

    printf("%s,%s,%.0f,%lld,%lld,%lld,%lld,%.3f,%.0f,%.1f,%.1f,%.1f,"
           "%lld,%lld,%lld,%.3f,%s,%lld,%.1f", backend_name(cfg),
           rl_algorithm_name(cfg->algorithm), n, (long long)o->keys,
           (long long)o->inflight, (long long)o->max, (long long)o->window,
           r->wall_s, n / r->wall_s, r->p50_us, r->p99_us, r->p999_us,
           (long long)b->allowed, (long long)b->denied,
           (long long)b->fallback, cpu_us, o->rate > 0 ? "open" : "closed",
           (long long)o->rate, r->max_us);
    if (cfg->backend == RL_BACKEND_REDIS)
        print_csv_redis(r, n);
    else
        printf(",,,,,\n");
}

static void
print_redis(const struct report *r, double n)
{
    printf("  commands    %.4f client commands/check (rl_metric "
           "REDIS_COMMANDS: %lld), %.1f checks per EVALSHA\n",
           (double)r->lib_cmds / n, (long long)r->lib_cmds,
           r->lib_batches > 0 ? (double)r->lib_batched /
                                (double)r->lib_batches : 0.0);
    if (!r->server) {
        printf("  server      no INFO stats\n");
        return;
    }
    printf("  EVALSHA     %.4f per check (INFO commandstats "
           "cmdstat_evalsha: %.0f)\n", r->evalsha / n, r->evalsha);
    printf("  in Redis    %.3f calls/check, script calls included: %s\n",
           r->calls / n, r->calls_text);
    printf("  server CPU  %.3f us/check (INFO cpu user + sys %.3f s)\n",
           r->srv_cpu_s * 1e6 / n, r->srv_cpu_s);
}

static void
print_report(const struct options *o, const rl_config *cfg,
             const struct bench *b, const struct report *r)
{
    double n = (double)(b->allowed + b->denied);
    double cpu_us;

    if (n <= 0)
        n = 1;
    cpu_us = (r->cpu_user_s + r->cpu_sys_s) * 1e6 / n;
    if (o->csv || o->quiet) {
        print_csv(o, cfg, b, r, n);
        return;
    }
    printf("%s backend, %s: %.0f checks over %lld keys, %lld in flight, "
           "limit %lld per %lld ms\n", backend_name(cfg),
           rl_algorithm_name(cfg->algorithm), n, (long long)o->keys,
           (long long)o->inflight, (long long)o->max, (long long)o->window);
    if (o->rate > 0)
        printf("  open loop   %lld checks/s offered for %lld s, tick %lld "
               "us; worst sending lag %.1f us\n", (long long)o->rate,
               (long long)o->duration, (long long)o->tick_us, r->lag_us);
    printf("  throughput  %.0f checks/s (%.3f s wall)\n", n / r->wall_s,
           r->wall_s);
    printf("  latency     p50 %.1f us, p99 %.1f us, p999 %.1f us, max %.1f "
           "us%s\n", r->p50_us, r->p99_us, r->p999_us, r->max_us,
           o->rate > 0 ? " (from the time due)" : "");
    printf("  decisions   %lld allowed, %lld denied, %lld by the fallback\n",
           (long long)b->allowed, (long long)b->denied,
           (long long)b->fallback);
    printf("  client CPU  %.3f us/check (user %.3f s, sys %.3f s)\n",
           cpu_us, r->cpu_user_s, r->cpu_sys_s);
    if (cfg->backend == RL_BACKEND_REDIS)
        print_redis(r, n);
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
                backend_name(cfg), rl_strerror(rc));
        return -1;
    }
    if (o->no_metrics)
        rl_metrics_enable(b->rl, false);
    rc = run_bench(b, o, cfg, &rep);
    if (rc == 0 && b->refused == 0)
        print_report(o, cfg, b, &rep);
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

/* ---- options and configuration ---- */

static void
usage(FILE *f)
{
    fprintf(f, "usage: rl-bench [options]\n"
            "  --backend local|redis  (default local, or the environment)\n"
            "  --url URL         redis://host:port or unix:///path (over "
            "REDIS_URL)\n"
            "  --host H, --port P    the Redis server (over REDIS_HOST, "
            "REDIS_PORT)\n"
            "  --algo NAME|all   sliding-window, token-bucket, fixed-window"
            ",\n"
            "                    sliding-log, gcra (default fixed-window)\n"
            "  --checks N        measured checks, closed loop (default "
            "1000000)\n"
            "  --keys N          distinct keys (default 100000)\n"
            "  --inflight N      most checks pending (default 1024)\n"
            "  --max N           limit per window (default 100)\n"
            "  --window MS       window in ms (default 60000)\n"
            "  --warmup N        unmeasured checks first, keys in turn\n"
            "  --open-loop RATE  offer RATE checks/s instead (open loop)\n"
            "  --duration S      open loop: seconds offered (default 5)\n"
            "  --tick-us US      open loop: send period (default 1000)\n"
            "  --csv             one CSV line per run, under a header\n"
            "  --quiet           the CSV lines alone\n"
            "  --no-metrics      latency recording off (measures the hub)\n");
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
    rl_algorithm alg;

    if (strcmp(s, "all") == 0) {
        *out = -1;
        return 0;
    }
    if (rl_algorithm_parse(s, &alg) == RL_OK) {
        *out = (int)alg;
        return 0;
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

/* One option; returns 0, 1 for --help, -1 when bad.  The open loop's
   bounds keep (sent + 1) * 10^9 and rate * tick_ns within int64_t. */
static int
parse_one(int c, const char *arg, struct options *o)
{
    switch (c) {
    case 'b': return parse_backend(arg, &o->backend);
    case 'u': o->url = arg; return 0;
    case 'H': o->host = arg; return 0;
    case 'p': return parse_i64(arg, 1, 65535, &o->port);
    case 'a': return parse_algo(arg, &o->algo);
    case 'n': return parse_i64(arg, 1, INT64_MAX / 2, &o->checks);
    case 'k': return parse_i64(arg, 1, KEYS_MAX, &o->keys);
    case 'f': return parse_i64(arg, 1, 1000000, &o->inflight);
    case 'm': return parse_i64(arg, 1, RL_MAX_REQUESTS_MAX, &o->max);
    case 'w': return parse_i64(arg, 1, RL_WINDOW_MS_MAX, &o->window);
    case 'W': return parse_i64(arg, 0, INT64_MAX / 2, &o->warmup);
    case 'o': return parse_i64(arg, 1, 10000000, &o->rate);
    case 'd': return parse_i64(arg, 1, 600, &o->duration);
    case 't': return parse_i64(arg, 10, 100000, &o->tick_us);
    case 'c': o->csv = true; return 0;
    case 'q': o->quiet = true; return 0;
    case 'M': o->no_metrics = true; return 0;
    case 'h': return 1;
    default: return -1;
    }
}

static int
parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        { "backend", required_argument, NULL, 'b' },
        { "url", required_argument, NULL, 'u' },
        { "host", required_argument, NULL, 'H' },
        { "port", required_argument, NULL, 'p' },
        { "algo", required_argument, NULL, 'a' },
        { "checks", required_argument, NULL, 'n' },
        { "keys", required_argument, NULL, 'k' },
        { "inflight", required_argument, NULL, 'f' },
        { "max", required_argument, NULL, 'm' },
        { "window", required_argument, NULL, 'w' },
        { "warmup", required_argument, NULL, 'W' },
        { "open-loop", required_argument, NULL, 'o' },
        { "duration", required_argument, NULL, 'd' },
        { "tick-us", required_argument, NULL, 't' },
        { "csv", no_argument, NULL, 'c' },
        { "quiet", no_argument, NULL, 'q' },
        { "no-metrics", no_argument, NULL, 'M' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c, rc = 0;

    *o = (struct options){ .algo = RL_FIXED_WINDOW, .checks = 1000000,
                           .keys = 100000, .inflight = 1024, .max = 100,
                           .window = 60000, .duration = 5, .tick_us = 1000 };
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

/* --url, or --host and --port, over the environment's server. */
static void
apply_server(const struct options *o, rl_config *cfg)
{
    if (o->url != NULL) {
        cfg->redis.url = o->url;
        return;
    }
    if (o->host != NULL || o->port != 0)
        cfg->redis.url = NULL;  /* the URL would win over host and port */
    if (o->host != NULL)
        cfg->redis.host = o->host;
    if (o->port != 0)
        cfg->redis.port = (int)o->port;
}

/* The environment, then the options over it; local when nothing says. */
static int
make_config(const struct options *o, rl_config *cfg)
{
    bool server = o->url != NULL || o->host != NULL || o->port != 0;
    int rc;

    rl_config_init(cfg);
    if (!is_set("REDIS_URL") && !is_set("REDIS_HOST") &&
        !is_set("RATE_LIMIT_BACKEND") && !server)
        cfg->backend = RL_BACKEND_LOCAL;
    rc = rl_config_from_env(cfg);
    if (rc != RL_OK) {
        fprintf(stderr, "rl-bench: environment: %s\n", rl_strerror(rc));
        return rc;
    }
    if (server)
        cfg->backend = RL_BACKEND_REDIS;
    if (o->backend != NULL)
        cfg->backend = strcmp(o->backend, "redis") == 0 ?
                       RL_BACKEND_REDIS : RL_BACKEND_LOCAL;
    apply_server(o, cfg);
    if (cfg->max_pending < o->inflight)
        cfg->max_pending = o->inflight;
    return RL_OK;
}

/* ---- main ---- */

/* The open loop's ticks need timerfd precision: epoll alone rounds every
   timeout up to the next millisecond. */
static struct event_base *
make_base(bool precise)
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

static int
bench_init(struct bench *b, const struct options *o, const rl_config *cfg)
{
    int64_t i;

    b->n_keys = (uint32_t)o->keys;
    b->max = o->max;
    b->window = o->window;
    b->base = make_base(o->rate > 0);
    b->keys = make_keys(b->n_keys);
    b->slots = calloc((size_t)o->inflight, sizeof(*b->slots));
    b->free_slots = calloc((size_t)o->inflight, sizeof(*b->free_slots));
    if (b->base == NULL || b->keys == NULL || b->slots == NULL ||
        b->free_slots == NULL)
        return -1;
    for (i = 0; i < o->inflight; i++)
        b->slots[i].b = b;
    if (cfg->backend == RL_BACKEND_REDIS)
        b->info = info_open(cfg);
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
    if (bench_init(&b, &o, &cfg) != 0) {
        fprintf(stderr, "rl-bench: out of memory\n");
        return 1;
    }
    if (o.csv && !o.quiet)
        print_csv_header();
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
