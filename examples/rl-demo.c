/*
 * rl-demo.c: the five algorithms side by side, on simulated traffic.
 *
 * One limiter per algorithm sees the same traffic: many clients on keys of
 * their own, each sending Poisson arrivals at 20 to 160 requests a second
 * from a fixed-seed generator, plus one "hot" key that floods at 500 a
 * second for 1 s of every 2 s.  Every key has the limit 100 per 1000 ms.
 * Time is simulated: the limiter reads a clock (rl_config.clock) that the
 * demo advances one millisecond at a time, running the event loop after
 * each step until that step's callbacks have all come, so 10 s of traffic
 * take a fraction of a second.
 *
 * Per algorithm it prints the checks offered, admitted and denied, the
 * real submit-to-callback latency, and the most hot-key admissions in an
 * aligned 1000 ms window and in any 1000 ms span; then a chart of the hot
 * key's admissions per 100 ms, where the fixed window's double burst
 * around a window boundary stands out.  The backend is the in-process
 * store unless REDIS_URL, REDIS_HOST or RATE_LIMIT_BACKEND is set.
 */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <ratelimit.h>

#define LIMIT_MAX 100
#define LIMIT_WINDOW_MS 1000
#define SIM_T0 1700000000000LL  /* simulated epoch ms, window aligned */
#define RATE_MIN 20.0           /* background requests per second */
#define RATE_MAX 160.0
#define HOT_CYCLE_MS 2000       /* hot key: floods in [500, 1500) of 2000 */
#define HOT_ON_MS 500
#define HOT_OFF_MS 1500
#define HOT_RATE 500            /* hot requests per second while flooding */
#define CHART_COLS 60
#define CHART_BUCKET_MS 100
#define CHART_PEAK (HOT_RATE * CHART_BUCKET_MS / 1000) /* drawn '@' */
#define N_ALGOS RL_ALGORITHM_COUNT

struct options {
    int seconds, keys;
    int algo;                   /* an rl_algorithm, or -1 for all */
};

/* One background client: its key and the time of its next request. */
struct client {
    double next_ms, rate_per_ms;
    char key[48];
};

struct run;

/* The argument of one check: whose, and when it was submitted. */
struct ticket {
    struct run *run;
    int64_t t0_ns;
    bool hot;
};

/* One algorithm's run over the whole simulated time. */
struct run {
    struct event_base *base;
    rl_limiter *rl;
    int64_t sim_ms;             /* the clock: simulated ms since SIM_T0 */
    uint64_t rng;
    struct client *clients;
    int n_clients;
    struct ticket *tickets;     /* the checks of the current step */
    int n_tickets, cap_tickets;
    int pending;
    bool in_submit;
    long long offered, admitted, denied, fallback, reentered;
    int fallback_status;
    int64_t *lat_ns;            /* one sample per answered check */
    size_t n_lat, cap_lat;
    int *hot_admits;            /* per simulated ms */
    char hot_key[48];
};

/* ---- time and randomness ---- */

static int64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The limiter's clock: the simulated time in ms since the epoch. */
static int64_t
sim_clock(void *arg)
{
    const struct run *r = arg;

    return SIM_T0 + r->sim_ms;
}

/* splitmix64, then a double in [0, 1): the same on every machine. */
static double
rng_unit(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* Exponential gaps between arrivals make them Poisson. */
static double
exp_gap(uint64_t *s, double rate_per_ms)
{
    return -log(1.0 - rng_unit(s)) / rate_per_ms;
}

/* ---- traffic ---- */

/* The hot key's requests at simulated ms t: HOT_RATE a second, evenly
   spread, in the flood part of each cycle. */
static int
hot_demand(int64_t t)
{
    int64_t phase = t % HOT_CYCLE_MS;

    if (phase < HOT_ON_MS || phase >= HOT_OFF_MS)
        return 0;
    return (int)((phase + 1) * HOT_RATE / 1000 - phase * HOT_RATE / 1000);
}

/* The same clients for every algorithm (fixed seed); a tag in the keys
   keeps runs that share a Redis apart. */
static int
run_init(struct run *r, const struct options *o, const char *algo)
{
    unsigned tag = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    int i;

    r->rng = 42;
    r->n_clients = o->keys;
    r->clients = calloc((size_t)o->keys, sizeof(*r->clients));
    r->cap_tickets = 4 * o->keys + 64;
    r->tickets = calloc((size_t)r->cap_tickets, sizeof(*r->tickets));
    r->hot_admits = calloc((size_t)o->seconds * 1000,
                           sizeof(*r->hot_admits));
    if (!r->clients || !r->tickets || !r->hot_admits)
        return -1;
    for (i = 0; i < o->keys; i++) {
        struct client *c = &r->clients[i];
        double rate = RATE_MIN + (RATE_MAX - RATE_MIN) * rng_unit(&r->rng);

        c->rate_per_ms = rate / 1000.0;
        c->next_ms = exp_gap(&r->rng, c->rate_per_ms);
        snprintf(c->key, sizeof(c->key), "demo%x:%s:%d", tag, algo, i);
    }
    snprintf(r->hot_key, sizeof(r->hot_key), "demo%x:%s:hot", tag, algo);
    return 0;
}

/* ---- checks ---- */

static void
on_result(const rl_result *res, void *arg)
{
    struct ticket *tk = arg;
    struct run *r = tk->run;

    if (r->n_lat < r->cap_lat)
        r->lat_ns[r->n_lat++] = mono_ns() - tk->t0_ns;
    r->pending--;
    if (r->in_submit)
        r->reentered++;         /* a library bug: the API forbids it */
    if (res->source == RL_SOURCE_FALLBACK) {
        r->fallback++;
        r->fallback_status = res->status;
    }
    if (!res->allowed) {
        r->denied++;
        return;
    }
    r->admitted++;
    if (tk->hot)
        r->hot_admits[r->sim_ms]++;
}

/* Runs the loop until every check of this step has been answered. */
static int
drain(struct run *r)
{
    while (r->pending > 0) {
        if (event_base_loop(r->base, EVLOOP_ONCE) != 0) {
            fprintf(stderr, "rl-demo: %d checks never answered\n",
                    r->pending);
            return -1;
        }
    }
    r->n_tickets = 0;
    return 0;
}

/* Room for one more latency sample, growing by doubling. */
static void
grow_samples(struct run *r)
{
    size_t cap = r->cap_lat ? 2 * r->cap_lat : 65536;
    int64_t *p = realloc(r->lat_ns, cap * sizeof(*p));

    if (p != NULL) {
        r->lat_ns = p;
        r->cap_lat = cap;
    }
}

static int
submit(struct run *r, const char *key, bool hot)
{
    struct ticket *tk;
    int rc;

    if (r->n_tickets == r->cap_tickets && drain(r) != 0)
        return -1;
    if (r->n_lat + (size_t)r->pending == r->cap_lat)
        grow_samples(r);
    tk = &r->tickets[r->n_tickets];
    *tk = (struct ticket){ .run = r, .t0_ns = mono_ns(), .hot = hot };
    r->in_submit = true;
    rc = rl_check_async(r->rl, key, LIMIT_MAX, LIMIT_WINDOW_MS, on_result,
                        tk);
    r->in_submit = false;
    if (rc != RL_OK) {
        fprintf(stderr, "rl-demo: rl_check_async: %s\n", rl_strerror(rc));
        return -1;
    }
    r->n_tickets++;
    r->pending++;
    r->offered++;
    return 0;
}

/* One simulated millisecond: the arrivals in [t, t + 1), then the loop
   until all of them are decided. */
static int
step(struct run *r, int64_t t)
{
    int i, n = hot_demand(t);

    r->sim_ms = t;
    for (i = 0; i < n; i++) {
        if (submit(r, r->hot_key, true) != 0)
            return -1;
    }
    for (i = 0; i < r->n_clients; i++) {
        struct client *c = &r->clients[i];

        while (c->next_ms < (double)(t + 1)) {
            if (submit(r, c->key, false) != 0)
                return -1;
            c->next_ms += exp_gap(&r->rng, c->rate_per_ms);
        }
    }
    return drain(r);
}

/* ---- results and output ---- */

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static double
percentile_us(const int64_t *sorted, size_t n, double p)
{
    return n ? (double)sorted[(size_t)(p * (double)(n - 1))] / 1000 : 0;
}

/* The most hot-key admissions in an aligned window and in any span of
   LIMIT_WINDOW_MS: what a fixed window bounds, what a sliding log
   bounds. */
static void
hot_maxima(const int *per_ms, int64_t ms, int *aligned, int *span)
{
    int64_t t;
    int in_span = 0, in_window = 0;

    *aligned = *span = 0;
    for (t = 0; t < ms; t++) {
        if (t % LIMIT_WINDOW_MS == 0)
            in_window = 0;
        in_window += per_ms[t];
        in_span += per_ms[t];
        if (t >= LIMIT_WINDOW_MS)
            in_span -= per_ms[t - LIMIT_WINDOW_MS];
        *aligned = in_window > *aligned ? in_window : *aligned;
        *span = in_span > *span ? in_span : *span;
    }
}

static int
chart_cols(int64_t ms)
{
    int64_t cols = ms / CHART_BUCKET_MS;

    return cols < CHART_COLS ? (int)cols : CHART_COLS;
}

/* One character per CHART_BUCKET_MS of per_ms (NULL: the hot demand),
   denser with more, '@' from CHART_PEAK on. */
static void
chart_row(char *row, const int *per_ms, int64_t ms)
{
    static const char ramp[] = " .:-=+*#%@";
    int col, j, cols = chart_cols(ms);

    for (col = 0; col < cols; col++) {
        int64_t t = (int64_t)col * CHART_BUCKET_MS;
        int sum = 0;

        for (j = 0; j < CHART_BUCKET_MS; j++)
            sum += per_ms ? per_ms[t + j] : hot_demand(t + j);
        if (sum >= CHART_PEAK)
            row[col] = '@';
        else
            row[col] = ramp[sum ? 1 + (sum - 1) * 8 / CHART_PEAK : 0];
    }
    row[cols] = '\0';
}

static void
print_banner(const rl_config *cfg, const struct options *o)
{
    printf("rl-demo: %s backend, limit %d per %d ms, %d simulated s:\n"
           "%d clients at %.0f-%.0f req/s each, a hot key at %d req/s "
           "1 s in 2\n\n", cfg->backend == RL_BACKEND_REDIS ? "redis" :
           "local", LIMIT_MAX, LIMIT_WINDOW_MS, o->seconds, o->keys,
           RATE_MIN, RATE_MAX, HOT_RATE);
}

static void
print_header(void)
{
    printf("%-42s %-16s %s\n", "", "latency (us)", "hot key, most in");
    printf("%-15s %8s %8s %8s %8s %7s %9s %9s\n", "algorithm", "offered",
           "admitted", "denied", "p50", "p99", "aligned s", "any 1 s");
}

/* The table row of one run, under the header the first time. */
static void
print_row(struct run *r, const char *name, int64_t ms)
{
    static bool headed;
    int aligned, span;

    if (!headed)
        print_header();
    headed = true;
    qsort(r->lat_ns, r->n_lat, sizeof(*r->lat_ns), cmp_i64);
    hot_maxima(r->hot_admits, ms, &aligned, &span);
    printf("%-15s %8lld %8lld %8lld %8.1f %7.1f %9d %9d\n", name,
           r->offered, r->admitted, r->denied,
           percentile_us(r->lat_ns, r->n_lat, 0.50),
           percentile_us(r->lat_ns, r->n_lat, 0.99), aligned, span);
}

static void
print_chart(char charts[][CHART_COLS + 1], const int *which, int n,
            int64_t ms)
{
    char row[CHART_COLS + 1];
    int i, cols = chart_cols(ms);

    printf("\nhot key admissions per %d ms, first %.1f s "
           "(' ' none, '@' %d), seconds:\n%16s", CHART_BUCKET_MS,
           cols * CHART_BUCKET_MS / 1000.0, CHART_PEAK, "");
    for (i = 0; i < cols; i += 10)
        printf("%*d", i ? 10 : 1, i * CHART_BUCKET_MS / 1000);
    chart_row(row, NULL, ms);
    printf("\n%-15s|%s|\n", "offered", row);
    for (i = 0; i < n; i++)
        printf("%-15s|%s|\n", rl_algorithm_name(which[i]), charts[i]);
}

/* ---- one algorithm ---- */

static int
run_checks(struct run *r, int64_t ms)
{
    int64_t t;

    for (t = 0; t < ms; t++) {
        if (step(r, t) != 0)
            return -1;
    }
    if (r->reentered > 0)
        fprintf(stderr, "rl-demo: library bug: %lld callbacks ran inside "
                "rl_check_async\n", r->reentered);
    if (r->fallback > 0)
        fprintf(stderr, "rl-demo: %lld decisions by the fallback: %s\n",
                r->fallback, rl_strerror(r->fallback_status));
    return r->reentered || r->fallback ? -1 : 0;
}

/* Runs algorithm i and prints its row; fills chart (its hot key's row). */
static int
run_algorithm(struct event_base *base, const rl_config *base_cfg,
              const struct options *o, int i, char *chart)
{
    struct run r = { .base = base };
    int64_t ms = (int64_t)o->seconds * 1000;
    rl_config cfg = *base_cfg;
    int rc = -1;

    cfg.algorithm = (rl_algorithm)i;
    cfg.clock = sim_clock;
    cfg.clock_arg = &r;
    if (run_init(&r, o, rl_algorithm_name(i)) != 0) {
        fprintf(stderr, "rl-demo: out of memory\n");
        goto out;
    }
    rc = rl_new(base, &cfg, &r.rl);
    if (rc != RL_OK) {
        fprintf(stderr, "rl-demo: rl_new (%s backend): %s\n",
                cfg.backend == RL_BACKEND_REDIS ? "redis" : "local",
                rl_strerror(rc));
        goto out;
    }
    rc = run_checks(&r, ms);
    print_row(&r, rl_algorithm_name(i), ms);
    chart_row(chart, r.hot_admits, ms);
out:
    rl_free(r.rl);
    free(r.clients);
    free(r.tickets);
    free(r.lat_ns);
    free(r.hot_admits);
    return rc;
}

/* ---- options and configuration ---- */

static void
usage(FILE *f)
{
    fprintf(f, "usage: rl-demo [--seconds N] [--keys N] [--algo NAME]\n"
            "  --seconds N  simulated seconds (1..3600, default 10)\n"
            "  --keys N     background clients (1..100000, default 200)\n"
            "  --algo NAME  sliding-window, token-bucket, fixed-window,\n"
            "               sliding-log or gcra (default: all five)\n"
            "Uses Redis when REDIS_URL or REDIS_HOST is set, else the\n"
            "in-process store (RATE_LIMIT_BACKEND overrides).\n");
}

static int
parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "rl-demo: '%s' is not in %d..%d\n", s, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int
parse_algo(const char *s, int *out)
{
    rl_algorithm alg;

    if (rl_algorithm_parse(s, &alg) == RL_OK) {
        *out = (int)alg;
        return 0;
    }
    fprintf(stderr, "rl-demo: unknown algorithm '%s'\n", s);
    return -1;
}

/* Returns 0 to run, 1 for --help, -1 for a bad command line. */
static int
parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        { "seconds", required_argument, NULL, 's' },
        { "keys", required_argument, NULL, 'k' },
        { "algo", required_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c, rc = 0;

    *o = (struct options){ .seconds = 10, .keys = 200, .algo = -1 };
    while (rc == 0) {
        c = getopt_long(argc, argv, "", longopts, NULL);
        if (c == -1)
            break;
        else if (c == 's')
            rc = parse_int(optarg, 1, 3600, &o->seconds);
        else if (c == 'k')
            rc = parse_int(optarg, 1, 100000, &o->keys);
        else if (c == 'a')
            rc = parse_algo(optarg, &o->algo);
        else
            rc = c == 'h' ? 1 : -1;
    }
    return rc == 0 && optind < argc ? -1 : rc;
}

static int
is_set(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0';
}

/* The environment's settings; the local backend when it names none. */
static int
make_config(rl_config *cfg)
{
    int rc;

    rl_config_init(cfg);
    if (!is_set("REDIS_URL") && !is_set("REDIS_HOST") &&
        !is_set("RATE_LIMIT_BACKEND"))
        cfg->backend = RL_BACKEND_LOCAL;
    rc = rl_config_from_env(cfg);
    if (rc != RL_OK)
        fprintf(stderr, "rl-demo: environment: %s\n", rl_strerror(rc));
    return rc;
}

int
main(int argc, char **argv)
{
    char charts[N_ALGOS][CHART_COLS + 1];
    int which[N_ALGOS];
    struct event_base *base;
    struct options o;
    rl_config cfg;
    int i, n = 0, rc;

    rc = parse_options(argc, argv, &o);
    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }
    if (make_config(&cfg) != RL_OK)
        return 1;
    base = event_base_new();
    if (base == NULL)
        return 1;
    print_banner(&cfg, &o);
    for (i = 0; i < N_ALGOS && rc == 0; i++) {
        if (o.algo >= 0 && i != o.algo)
            continue;
        rc = run_algorithm(base, &cfg, &o, i, charts[n]);
        which[n++] = i;
    }
    if (rc == 0)
        print_chart(charts, which, n, (int64_t)o.seconds * 1000);
    event_base_free(base);
    return rc == 0 ? 0 : 1;
}
