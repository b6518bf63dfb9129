/*
 * metrics_export.c: the metrics hub's numbers for the outside: the
 * Prometheus text exposition format, JSON, and the periodic one-line
 * report in the log.
 *
 * Every export starts from one snapshot (rl__metrics_snapshot), so it
 * shows exactly what rl_metrics_get would at the same moment.  Prometheus
 * names come from the one table of metric names (rl_metric_name), with
 * "ratelimit_" in front, except where labels say it better:
 *   - the decisions are ratelimit_checks_total{result, source}, from the
 *     six counters by (result, source); the aggregate counters allowed,
 *     denied and source_* are sums of those and are not exported again;
 *   - the status counters are ratelimit_check_errors_total{status};
 *   - checks accepted (RL_METRIC_CHECKS_TOTAL, "checks_total") becomes
 *     ratelimit_checks_accepted_total, since the family name is taken;
 *   - latency is the histogram ratelimit_check_duration_seconds{source},
 *     with le bounds on powers of two microseconds, which are edges of
 *     the log-linear buckets (histogram.c), so their counts are exact.
 * A metric id added later is exported by its name: a counter when the
 * name ends in _total, else a gauge.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "metrics.h"

#define LE_POW_MAX 25 /* le bounds 2^0 .. 2^25 us (33.6 s), then +Inf */

static const char *const source_names[3] = {"backend", "cache",
                                            "fallback"};

static const char *const status_names[8] = {
    "invalid", "nomem", "redis", "timeout", "circuit_open", "overload",
    "shutdown", "protocol"};

static const char *const prom_help[RL_METRIC_COUNT_] = {
    [RL_METRIC_CHECKS_TOTAL] = "Checks accepted (each gets a callback).",
    [RL_METRIC_REFUSED] = "Calls refused with an error code.",
    [RL_METRIC_PENDING] = "Checks and resets accepted, callback not run.",
    [RL_METRIC_LOCAL_KEYS] = "Keys held by the local store.",
    [RL_METRIC_LOCAL_EVICTIONS] = "Local keys evicted to stay in bounds.",
    [RL_METRIC_LOCAL_EXPIRED] = "Local keys dropped at expiry.",
    [RL_METRIC_RESETS] = "Resets accepted.",
    [RL_METRIC_REDIS_COMMANDS] = "Commands sent to Redis.",
    [RL_METRIC_REDIS_EVALSHA] = "EVALSHA commands sent to Redis.",
    [RL_METRIC_REDIS_NOSCRIPT] = "NOSCRIPT replies (script loaded again).",
    [RL_METRIC_REDIS_RECONNECTS] = "Connections to Redis after the first.",
    [RL_METRIC_REDIS_ERRORS] = "Redis error replies and failed commands.",
    [RL_METRIC_TIMEOUTS] = "Checks and resets past their deadline.",
    [RL_METRIC_BATCHES] = "Coalesced batches sent to Redis.",
    [RL_METRIC_BATCHED_CHECKS] = "Checks carried by coalesced batches.",
    [RL_METRIC_INFLIGHT] = "Redis commands awaiting a reply.",
    [RL_METRIC_BREAKER_STATE] = "Circuit breaker: 0 closed, 1 open, "
                                "2 half-open.",
    [RL_METRIC_BREAKER_TRIPS] = "Circuit breaker openings by failures.",
    [RL_METRIC_BREAKER_TRANSITIONS] = "Circuit breaker changes of state.",
    [RL_METRIC_BREAKER_REFUSED] = "Checks the open breaker kept from "
                                  "Redis.",
    [RL_METRIC_ALERTS_ACTIVE] = "Alerts firing now.",
    [RL_METRIC_CACHE_HITS] = "Checks answered by the decision cache.",
    [RL_METRIC_CACHE_MISSES] = "Checks the decision cache could not "
                               "answer.",
    [RL_METRIC_CACHE_SIZE] = "Entries in the decision cache.",
    [RL_METRIC_CACHE_EVICTIONS] = "Cache entries dropped for room (LRU).",
    [RL_METRIC_CACHE_EXPIRED] = "Cache entries dropped at their expiry.",
    [RL_METRIC_BATCH_CALLS] = "Batches accepted.",
    [RL_METRIC_BATCH_ITEMS] = "Items of the batches accepted.",
    [RL_METRIC_BATCH_ITEMS_OK] = "Batch items answered with status ok.",
    [RL_METRIC_MULTI_CALLS] = "Multi-limit checks accepted.",
    [RL_METRIC_MULTI_DENIED] = "Multi-limit checks denied.",
};

/* ---- output ---- */

struct out {
    struct evbuffer *b;
    int rc;                 /* RL_ERR_NOMEM once a write failed */
};

static void put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
put(struct out *o, const char *fmt, ...)
{
    va_list ap;

    if (o->rc != RL_OK)
        return;
    va_start(ap, fmt);
    if (evbuffer_add_vprintf(o->b, fmt, ap) < 0)
        o->rc = RL_ERR_NOMEM;
    va_end(ap);
}

/* The shortest of %.15g and %.17g that reads back as v. */
static const char *
num(double v, char buf[32])
{
    snprintf(buf, 32, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, 32, "%.17g", v);
    return buf;
}

/* Microseconds as decimal seconds, exactly: 1 -> "0.000001". */
static const char *
seconds(uint64_t us, char buf[32])
{
    size_t n;

    n = (size_t)snprintf(buf, 32, "%" PRIu64 ".%06" PRIu64, us / 1000000,
                         us % 1000000);
    while (n > 1 && buf[n - 1] == '0')
        buf[--n] = '\0';
    if (buf[n - 1] == '.')
        buf[n - 1] = '\0';
    return buf;
}

/* A string inside quotes, escaped for JSON (json) or a label value. */
static void
quoted(struct out *o, const char *s, bool json)
{
    put(o, "\"");
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            put(o, "\\%c", *s);
        else if (*s == '\n')
            put(o, "\\n");
        else if (json && (unsigned char)*s < 0x20)
            put(o, "\\u%04x", (unsigned)(unsigned char)*s);
        else
            put(o, "%c", *s);
    }
    put(o, "\"");
}

/* ---- Prometheus ---- */

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP ratelimit_%s %s\n# TYPE ratelimit_%s %s\n", name, help,
        name, type);
}

static bool
ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);

    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* Ids exported under labels, or not at all (sums of labelled ones). */
static bool
prom_folded(int id)
{
    return (id >= RL_METRIC_ALLOWED && id <= RL_METRIC_SOURCE_FALLBACK) ||
           (id >= RL_METRIC_ALLOWED_BACKEND &&
            id <= RL_METRIC_STATUS_PROTOCOL);
}

static void
prom_labelled(struct out *o, const rl_metrics *m)
{
    int s, i;

    family(o, "checks_total", "counter", "Checks answered, by result and "
           "by who decided.");
    for (s = 0; s < 3; s++)
        for (i = 0; i < 2; i++)
            put(o, "ratelimit_checks_total{result=\"%s\",source=\"%s\"} "
                "%" PRId64 "\n", i ? "denied" : "allowed", source_names[s],
                m->values[RL_METRIC_ALLOWED_BACKEND + 2 * s + i]);
    family(o, "check_errors_total", "counter", "Checks answered by the "
           "fallback, by the status that sent them there.");
    for (i = 0; i < 8; i++)
        put(o, "ratelimit_check_errors_total{status=\"%s\"} %" PRId64 "\n",
            status_names[i], m->values[RL_METRIC_STATUS_INVALID + i]);
}

static void
prom_plain(struct out *o, const rl_metrics *m)
{
    const char *name, *help;
    char generic[96];
    int id;

    for (id = 0; id < RL_METRIC_COUNT_; id++) {
        name = rl_metric_name(id);
        if (prom_folded(id) || name == NULL)
            continue;
        if (id == RL_METRIC_CHECKS_TOTAL)
            name = "checks_accepted_total";
        help = prom_help[id];
        if (help == NULL) {
            snprintf(generic, sizeof(generic), "libratelimit %s.", name);
            help = generic;
        }
        family(o, name, ends_with(name, "_total") ? "counter" : "gauge",
               help);
        put(o, "ratelimit_%s %" PRId64 "\n", name, m->values[id]);
    }
}

static void
prom_histogram(struct out *o, const struct rl_metrics_hub *hub)
{
    const struct rl_hist *h;
    char le[32], sum[32];
    int s, k;

    family(o, "check_duration_seconds", "histogram", "Latency of checks, "
           "from the call that submitted each to its callback.");
    for (s = 0; s < 3; s++) {
        h = &hub->lat[s];
        for (k = 0; k <= LE_POW_MAX; k++)
            put(o, "ratelimit_check_duration_seconds_bucket{source=\"%s\","
                "le=\"%s\"} %" PRIu64 "\n", source_names[s],
                seconds((uint64_t)1 << k, le),
                rl__hist_count_below(h, (uint64_t)1 << k));
        put(o, "ratelimit_check_duration_seconds_bucket{source=\"%s\","
            "le=\"+Inf\"} %" PRIu64 "\n", source_names[s], h->count);
        put(o, "ratelimit_check_duration_seconds_sum{source=\"%s\"} %s\n"
            "ratelimit_check_duration_seconds_count{source=\"%s\"} "
            "%" PRIu64 "\n", source_names[s], seconds(h->sum, sum),
            source_names[s], h->count);
    }
}

static void
prom_gauge(struct out *o, const char *name, const char *help, double v)
{
    char buf[32];

    family(o, name, "gauge", help);
    put(o, "ratelimit_%s %s\n", name, num(v, buf));
}

static void
prom_state(struct out *o, const rl_metrics *m, const rl_health *h,
           const struct rl_metrics_hub *hub)
{
    const rl_rates *r = &m->rates;
    int i;

    prom_gauge(o, "denial_rate", "Fraction of checks denied, last 10 s.",
               r->denial_rate);
    prom_gauge(o, "error_rate", "Fraction of checks the backend failed, "
               "last 10 s.", r->error_rate);
    prom_gauge(o, "fallback_rate", "Fraction of checks answered by the "
               "fallback, last 10 s.", r->fallback_rate);
    prom_gauge(o, "checks_per_second", "Checks answered per second, last "
               "10 s.", r->checks_per_second);
    prom_gauge(o, "health_status", "Health: 0 healthy, 1 degraded, "
               "2 unhealthy.", (double)h->status);
    if (hub->n_alerts == 0)
        return;
    family(o, "alert_active", "gauge", "Whether each alert fires now.");
    for (i = 0; i < hub->n_alerts; i++) {
        put(o, "ratelimit_alert_active{alert=");
        quoted(o, hub->alerts[i].name, false);
        put(o, ",metric=\"%s\"} %d\n",
            rl_alert_metric_name(hub->alerts[i].metric),
            hub->alerts[i].active ? 1 : 0);
    }
}

RL_EXTERN int
rl_metrics_prometheus(rl_limiter *rl, struct evbuffer *out)
{
    struct rl_metrics_hub *hub = rl != NULL ? rl__metrics_hub(rl) : NULL;
    struct out o = {out, RL_OK};
    int64_t now;
    rl_metrics m;
    rl_health h;

    if (hub == NULL || out == NULL)
        return RL_ERR_INVALID;
    now = rl__steady_ms(rl);
    rl__metrics_snapshot(rl, now, &m);
    rl__metrics_health(rl, now, &h);
    prom_labelled(&o, &m);
    prom_plain(&o, &m);
    prom_histogram(&o, hub);
    prom_state(&o, &m, &h, hub);
    return o.rc;
}

/* ---- JSON ---- */

static void
json_latency(struct out *o, const char *name, const rl_latency *l,
             bool last)
{
    put(o, "\"%s\":{\"count\":%" PRId64 ",\"sum_us\":%" PRId64 ","
        "\"min_us\":%" PRId64 ",\"max_us\":%" PRId64 ",\"p50_us\":%" PRId64
        ",\"p90_us\":%" PRId64 ",\"p99_us\":%" PRId64 ",\"p999_us\":%"
        PRId64 ",\"clamped\":%" PRId64 "}%s", name, l->count, l->sum_us,
        l->min_us, l->max_us, l->p50_us, l->p90_us, l->p99_us, l->p999_us,
        l->clamped, last ? "" : ",");
}

static void
json_rates(struct out *o, const rl_rates *r)
{
    char b[6][32];

    put(o, "\"rates\":{\"at_ms\":%" PRId64 ",\"window_ms\":%" PRId64 ","
        "\"checks\":%" PRId64 ",\"denied\":%" PRId64 ",\"errors\":%" PRId64
        ",\"fallback\":%" PRId64 ",\"denial_rate\":%s,\"error_rate\":%s,"
        "\"fallback_rate\":%s,\"checks_per_second\":%s,"
        "\"latency_p99_ms\":%s,\"latency_avg_ms\":%s},", r->at_ms,
        r->window_ms, r->checks, r->denied, r->errors, r->fallback,
        num(r->denial_rate, b[0]), num(r->error_rate, b[1]),
        num(r->fallback_rate, b[2]), num(r->checks_per_second, b[3]),
        num(r->latency_p99_ms, b[4]), num(r->latency_avg_ms, b[5]));
}

static void
json_health(struct out *o, const rl_health *h)
{
    int i;

    put(o, "\"health\":{\"status\":\"%s\",\"redis_state\":%d,"
        "\"breaker_state\":%d,\"alerts_active\":%d,\"reasons\":[",
        rl_health_status_name(h->status), h->redis_state,
        h->breaker_state, h->alerts_active);
    for (i = 0; i < h->n_reasons; i++) {
        quoted(o, h->reasons[i], true);
        put(o, "%s", i + 1 < h->n_reasons ? "," : "");
    }
    put(o, "]},");
}

static void
json_alerts(struct out *o, const struct rl_metrics_hub *hub)
{
    const struct rl_alert *a;
    char t[32], v[32];
    int i;

    put(o, "\"alerts\":[");
    for (i = 0; i < hub->n_alerts; i++) {
        a = &hub->alerts[i];
        put(o, "{\"name\":");
        quoted(o, a->name, true);
        put(o, ",\"metric\":\"%s\",\"threshold\":%s,\"value\":%s,"
            "\"active\":%s}%s", rl_alert_metric_name(a->metric),
            num(a->threshold, t), num(a->value, v),
            a->active ? "true" : "false", i + 1 < hub->n_alerts ? "," : "");
    }
    put(o, "]");
}

RL_EXTERN int
rl_metrics_json(rl_limiter *rl, struct evbuffer *out)
{
    struct rl_metrics_hub *hub = rl != NULL ? rl__metrics_hub(rl) : NULL;
    struct out o = {out, RL_OK};
    int64_t now;
    rl_metrics m;
    rl_health h;
    int i;

    if (hub == NULL || out == NULL)
        return RL_ERR_INVALID;
    now = rl__steady_ms(rl);
    rl__metrics_snapshot(rl, now, &m);
    rl__metrics_health(rl, now, &h);
    put(&o, "{\"values\":{");
    for (i = 0; i < m.n_values; i++)
        if (rl_metric_name(i) != NULL) /* every id has one (test_metrics) */
            put(&o, "%s\"%s\":%" PRId64, i > 0 ? "," : "",
                rl_metric_name(i), m.values[i]);
    put(&o, "},\"latency_enabled\":%s,\"latency\":{",
        m.latency_enabled ? "true" : "false");
    json_latency(&o, "all", &m.latency, false);
    for (i = 0; i < 3; i++)
        json_latency(&o, source_names[i], &m.latency_by_source[i], i == 2);
    put(&o, "},");
    json_rates(&o, &m.rates);
    json_health(&o, &h);
    json_alerts(&o, hub);
    put(&o, "}\n");
    return o.rc;
}

/* ---- the periodic report ---- */

static void
report_line(struct rl_limiter *rl, const rl_metrics *m, const rl_health *h)
{
    const rl_rates *r = &m->rates;

    rl__log(rl, RL_LOG_INFO, "metrics: last %.1f s: %lld checks (%.1f/s), "
            "denied %.1f%%, fallback %.1f%%, errors %.1f%%, p99 %.3f ms; "
            "total %lld checks, %lld refused, %lld pending, p50 %.3f p99 "
            "%.3f max %.3f ms; %s%s%s",
            (double)r->window_ms / 1000, (long long)r->checks,
            r->checks_per_second, 100 * r->denial_rate,
            100 * r->fallback_rate, 100 * r->error_rate, r->latency_p99_ms,
            (long long)m->values[RL_METRIC_CHECKS_TOTAL],
            (long long)m->values[RL_METRIC_REFUSED],
            (long long)m->values[RL_METRIC_PENDING],
            (double)m->latency.p50_us / 1000,
            (double)m->latency.p99_us / 1000,
            (double)m->latency.max_us / 1000,
            rl_health_status_name(h->status), h->n_reasons > 0 ? ": " : "",
            h->n_reasons > 0 ? h->reasons[0] : "");
}

void
rl__metrics_report_cb(int fd, short what, void *arg)
{
    struct rl_limiter *rl = arg;
    struct rl_metrics_hub *hub = rl__metrics_hub(rl);
    int64_t now = rl__steady_ms(rl);
    rl_metrics m;
    rl_health h;

    (void)fd;
    (void)what;
    rl__metrics_snapshot(rl, now, &m);
    rl__metrics_health(rl, now, &h);
    report_line(rl, &m, &h);
    if (!rl->freeing && hub->report_ms > 0)
        rl__timer_add_ms(hub->report_ev, hub->report_ms);
}

RL_EXTERN int
rl_metrics_report_every(rl_limiter *rl, int64_t interval_ms)
{
    struct rl_metrics_hub *hub = rl != NULL ? rl__metrics_hub(rl) : NULL;

    if (hub == NULL || interval_ms < 0)
        return RL_ERR_INVALID;
    event_del(hub->report_ev);
    hub->report_ms = interval_ms;
    if (interval_ms > 0 && !rl->freeing)
        rl__timer_add_ms(hub->report_ev, interval_ms);
    return RL_OK;
}
