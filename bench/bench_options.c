/*
 * bench_options.c: rl-bench's command line, and the configuration it
 * runs with.  The configuration starts from the environment
 * (rl_config_from_env: REDIS_URL, CACHE_ENABLED, ...) and the options go
 * over it, so that a run can be repeated from its command line alone.
 * The workload sets the defaults that differ: W1 is --keys 100000 and
 * --window 60000, W2 one key and --window 1000 (rl-bench.c says why).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* ---- options ---- */

void
bench_usage(FILE *f)
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
            "  --workload w1|w2  w1: random keys (default); w2: one hot "
            "key\n"
            "  --cache           the decision cache on (or CACHE_ENABLED="
            "true)\n"
            "  --checks N        measured checks, closed loop (default "
            "1000000)\n"
            "  --keys N          distinct keys (default 100000; w2: 1)\n"
            "  --inflight N      most checks pending (default 1024)\n"
            "  --max N           limit per window (default 100)\n"
            "  --window MS       window in ms (default 60000; w2: 1000)\n"
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
parse_workload(const char *s, int *out)
{
    if (strcmp(s, "w1") == 0 || strcmp(s, "W1") == 0) {
        *out = W1;
        return 0;
    }
    if (strcmp(s, "w2") == 0 || strcmp(s, "W2") == 0) {
        *out = W2;
        return 0;
    }
    fprintf(stderr, "rl-bench: unknown workload '%s' (w1 or w2)\n", s);
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
    case 'L': return parse_workload(arg, &o->workload);
    case 'C': o->cache = true; return 0;
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

/* What the options left unset takes from the workload; -1 when they
   contradict it (said). */
static int
workload_defaults(struct options *o)
{
    bool w2 = o->workload == W2;

    if (w2 && o->keys > 1) {
        fprintf(stderr, "rl-bench: --workload w2 is one key; --keys %lld "
                "is W1\n", (long long)o->keys);
        return -1;
    }
    if (o->keys == 0)
        o->keys = w2 ? 1 : 100000;
    if (o->window == 0)
        o->window = w2 ? 1000 : 60000;
    return 0;
}

int
bench_parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        { "backend", required_argument, NULL, 'b' },
        { "url", required_argument, NULL, 'u' },
        { "host", required_argument, NULL, 'H' },
        { "port", required_argument, NULL, 'p' },
        { "algo", required_argument, NULL, 'a' },
        { "workload", required_argument, NULL, 'L' },
        { "cache", no_argument, NULL, 'C' },
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

    *o = (struct options){ .algo = RL_FIXED_WINDOW, .workload = W1,
                           .checks = 1000000, .inflight = 1024, .max = 100,
                           .duration = 5, .tick_us = 1000 };
    while (rc == 0) {
        c = getopt_long(argc, argv, "", longopts, NULL);
        if (c == -1)
            break;
        rc = parse_one(c, optarg, o);
    }
    if (rc == 0 && optind < argc)
        rc = -1;
    if (rc == 0)
        rc = workload_defaults(o);
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

/* ---- configuration ---- */

/* Local when nothing names a server. */
int
bench_make_config(const struct options *o, rl_config *cfg)
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
    if (o->cache)
        cfg->cache.enabled = true;
    if (cfg->max_pending < o->inflight)
        cfg->max_pending = o->inflight;
    return RL_OK;
}
