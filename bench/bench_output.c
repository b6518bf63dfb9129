/*
 * bench_output.c: what rl-bench prints for one run, as text for a reader
 * or as one CSV line for a script (bench/run-w1.sh, bench/run-w2.sh and
 * the peers in bench/peers/ print the same columns).  New columns go at
 * the end, so that the scripts' column numbers stay right.  Per-check
 * figures divide by the checks answered in the measured phase.
 */
#include <stdio.h>

#include "bench.h"

/* ---- histogram percentiles ---- */

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

double
bench_hist_percentile_us(const struct hist *h, double p)
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

/* ---- common parts ---- */

static const char *
backend_name(const rl_config *cfg)
{
    return cfg->backend == RL_BACKEND_REDIS ? "redis" : "local";
}

static double
ratio(int64_t a, int64_t b)
{
    return b > 0 ? (double)a / (double)b : 0.0;
}

/* The decision cache's hit rate over the run; < 0 when it saw nothing
   (off, or no lookups). */
static double
hit_rate(const struct report *r)
{
    int64_t seen = r->lib[LIB_CACHE_HITS] + r->lib[LIB_CACHE_MISSES];

    return seen > 0 ? ratio(r->lib[LIB_CACHE_HITS], seen) : -1.0;
}

/* ---- CSV ---- */

void
bench_print_csv_header(void)
{
    printf("backend,algorithm,checks,keys,inflight,max,window_ms,wall_s,"
           "checks_per_s,p50_us,p99_us,p999_us,allowed,denied,fallback,"
           "cpu_us_per_check,mode,offered_per_s,max_us,evalsha_per_check,"
           "client_cmds_per_check,redis_calls_per_check,"
           "redis_cpu_us_per_check,checks_per_batch,workload,cache,"
           "source_backend,source_cache,source_fallback,cache_hit_rate\n");
}

/* The Redis columns: empty when not measured. */
static void
print_csv_redis(const struct report *r, double n)
{
    if (!r->server) {
        printf(",,,,,");
        return;
    }
    printf(",%.6f,%.6f,%.6f,%.3f,%.1f", r->evalsha / n,
           (double)r->lib[LIB_CMDS] / n, r->calls / n,
           r->srv_cpu_s * 1e6 / n,
           ratio(r->lib[LIB_BATCHED], r->lib[LIB_BATCHES]));
}

/* The workload, the cache and where the answers came from. */
static void
print_csv_sources(const struct options *o, const rl_config *cfg,
                  const struct report *r)
{
    double rate = hit_rate(r);

    printf(",w%d,%s,%lld,%lld,%lld,", o->workload,
           cfg->cache.enabled ? "on" : "off",
           (long long)r->lib[LIB_SRC_BACKEND],
           (long long)r->lib[LIB_SRC_CACHE],
           (long long)r->lib[LIB_SRC_FALLBACK]);
    if (rate >= 0)
        printf("%.6f", rate);
    printf("\n");
}

static void
print_csv(const struct options *o, const rl_config *cfg,
          const struct report *r, double n)
{
    double cpu_us = (r->cpu_user_s + r->cpu_sys_s) * 1e6 / n;

    printf("%s,%s,%.0f,%lld,%lld,%lld,%lld,%.3f,%.0f,%.1f,%.1f,%.1f,"
           "%lld,%lld,%lld,%.3f,%s,%lld,%.1f", backend_name(cfg),
           rl_algorithm_name(cfg->algorithm), n, (long long)o->keys,
           (long long)o->inflight, (long long)o->max, (long long)o->window,
           r->wall_s, n / r->wall_s, r->p50_us, r->p99_us, r->p999_us,
           (long long)r->allowed, (long long)r->denied,
           (long long)r->fallback, cpu_us, o->rate > 0 ? "open" : "closed",
           (long long)o->rate, r->max_us);
    if (cfg->backend == RL_BACKEND_REDIS)
        print_csv_redis(r, n);
    else
        printf(",,,,,");
    print_csv_sources(o, cfg, r);
}

/* ---- text ---- */

static void
print_redis(const struct report *r, double n)
{
    printf("  commands    %.6f client commands/check (rl_metric "
           "REDIS_COMMANDS: %lld), %.1f checks per EVALSHA\n",
           (double)r->lib[LIB_CMDS] / n, (long long)r->lib[LIB_CMDS],
           ratio(r->lib[LIB_BATCHED], r->lib[LIB_BATCHES]));
    if (!r->server) {
        printf("  server      no INFO stats\n");
        return;
    }
    printf("  EVALSHA     %.6f per check (INFO commandstats "
           "cmdstat_evalsha: %.0f)\n", r->evalsha / n, r->evalsha);
    printf("  in Redis    %.6f calls/check (%.0f), script calls included: "
           "%s\n", r->calls / n, r->calls, r->calls_text);
    printf("  server CPU  %.3f us/check (INFO cpu user + sys %.3f s)\n",
           r->srv_cpu_s * 1e6 / n, r->srv_cpu_s);
}

static void
print_sources(const rl_config *cfg, const struct report *r)
{
    double rate = hit_rate(r);

    printf("  sources     %lld backend, %lld cache, %lld fallback "
           "(rl_metric SOURCE_*)\n", (long long)r->lib[LIB_SRC_BACKEND],
           (long long)r->lib[LIB_SRC_CACHE],
           (long long)r->lib[LIB_SRC_FALLBACK]);
    if (!cfg->cache.enabled)
        printf("  cache       off\n");
    else if (rate < 0)
        printf("  cache       on, no lookups counted\n");
    else
        printf("  cache       hit rate %.6f (%lld hits, %lld misses)\n",
               rate, (long long)r->lib[LIB_CACHE_HITS],
               (long long)r->lib[LIB_CACHE_MISSES]);
}

void
bench_print_report(const struct options *o, const rl_config *cfg,
                   const struct report *r)
{
    double n = (double)(r->allowed + r->denied);
    double cpu_us;

    if (n <= 0)
        n = 1;
    cpu_us = (r->cpu_user_s + r->cpu_sys_s) * 1e6 / n;
    if (o->csv || o->quiet) {
        print_csv(o, cfg, r, n);
        return;
    }
    printf("%s backend, %s, W%d, cache %s: %.0f checks over %lld key%s, "
           "%lld in flight, limit %lld per %lld ms\n", backend_name(cfg),
           rl_algorithm_name(cfg->algorithm), o->workload,
           cfg->cache.enabled ? "on" : "off", n, (long long)o->keys,
           o->keys == 1 ? "" : "s", (long long)o->inflight,
           (long long)o->max, (long long)o->window);
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
           (long long)r->allowed, (long long)r->denied,
           (long long)r->fallback);
    print_sources(cfg, r);
    printf("  client CPU  %.3f us/check (user %.3f s, sys %.3f s)\n",
           cpu_us, r->cpu_user_s, r->cpu_sys_s);
    if (cfg->backend == RL_BACKEND_REDIS)
        print_redis(r, n);
}
