/*
 * metrics.c: the metrics hub: latency histograms, the sliding window of
 * rates, alerts on them and the health verdict, behind rl_metrics_get,
 * rl_alert_*, rl_health_get.
 *
 * The hot path pays for little: at delivery, one counter by (result,
 * source), one by status when the status is not RL_OK, and one histogram
 * record (metrics.h, rl__metrics_record); one clock read per drain of the
 * completion queue, which also rotates the window.  Rotation copies the
 * cumulative counts and histogram into the slot of the second that
 * begins, lazily: at the first drain or read in that second, filling the
 * seconds nothing happened in.  Rates and window latencies are then
 * differences between now and the oldest slot, computed when read.
 *
 * Alerts are evaluated by one weak timer (timer.c), armed only while
 * alerts exist, once a second on the limiter's clock; their callbacks run
 * like every other callback of the library, with rl->in_callback raised,
 * so that rl_free inside one is deferred to the tick.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "metrics.h"

_Static_assert(RL_METRIC_COUNT_ <= RL_METRICS_MAX,
               "rl_metrics.values must hold every metric id");

/* ---- the hub of a limiter ---- */

static int
hub_attach(struct rl_limiter *rl, struct rl_metrics_hub *hub)
{
    rl->hub = hub;
    return RL_OK;
}

/* ---- the window ---- */

/* Floor of ms / 1000, for clocks that start before the epoch too. */
static int64_t
sec_of(int64_t ms)
{
    return ms >= 0 ? ms / 1000 : -((999 - ms) / 1000);
}

static void
win_counts(const struct rl_limiter *rl, struct rl_win_counts *n)
{
    const int64_t *v = rl->ctr.v;

    n->denied = v[RL_METRIC_DENIED_BACKEND] + v[RL_METRIC_DENIED_CACHE] +
                v[RL_METRIC_DENIED_FALLBACK];
    n->checks = n->denied + v[RL_METRIC_ALLOWED_BACKEND] +
                v[RL_METRIC_ALLOWED_CACHE] + v[RL_METRIC_ALLOWED_FALLBACK];
    n->fallback = v[RL_METRIC_ALLOWED_FALLBACK] +
                  v[RL_METRIC_DENIED_FALLBACK];
    n->errors = v[RL_METRIC_STATUS_REDIS] + v[RL_METRIC_STATUS_TIMEOUT] +
                v[RL_METRIC_STATUS_PROTOCOL] + v[RL_METRIC_STATUS_NOMEM];
}

void
rl__metrics_hist(const struct rl_metrics_hub *hub, int source,
                 struct rl_hist *out)
{
    int s;

    if (source >= 0) {
        *out = hub->lat[source];
        return;
    }
    *out = hub->lat[0];
    for (s = 1; s < 3; s++)
        rl__hist_merge(out, &hub->lat[s]);
}

/*
 * Opens the slots of every second from the newest one's to now's: each
 * holds the counts as they are, since nothing was delivered in a second
 * without rotating first.  A clock that went back opens nothing.
 */
static void
rotate(struct rl_limiter *rl, struct rl_metrics_hub *hub, int64_t now_ms)
{
    int64_t sec = sec_of(now_ms), n = sec - hub->win[hub->cur].sec;
    struct rl_win_slot *first = NULL, *s;

    if (n <= 0)
        return;
    if (n > RL_WIN_SLOTS)
        n = RL_WIN_SLOTS;
    while (n-- > 0) {
        hub->cur = (hub->cur + 1) % RL_WIN_SLOTS;
        s = &hub->win[hub->cur];
        if (first == NULL) {
            win_counts(rl, &s->n);
            rl__metrics_hist(hub, -1, &s->lat);
            first = s;
        } else {
            s->n = first->n;
            s->lat = first->lat;
        }
        s->sec = sec - n;
        s->at_ms = s->sec * 1000;
    }
}

/* The oldest slot: the ring fills from slot 0 on. */
static const struct rl_win_slot *
oldest(const struct rl_metrics_hub *hub)
{
    const struct rl_win_slot *s = &hub->win[(hub->cur + 1) % RL_WIN_SLOTS];

    return s->sec == INT64_MIN ? &hub->win[0] : s;
}

static double
ratio(int64_t part, int64_t whole)
{
    return whole > 0 ? (double)part / (double)whole : 0.0;
}

void
rl__metrics_rates(struct rl_limiter *rl, int64_t now_ms, rl_rates *out)
{
    struct rl_metrics_hub *hub = rl__metrics_hub(rl);
    const struct rl_win_slot *base;
    struct rl_win_counts n;
    struct rl_hist *h;

    memset(out, 0, sizeof(*out));
    out->at_ms = now_ms;
    if (hub == NULL)
        return;
    rotate(rl, hub, now_ms);
    base = oldest(hub);
    win_counts(rl, &n);
    out->window_ms = now_ms - base->at_ms;
    out->checks = n.checks - base->n.checks;
    out->denied = n.denied - base->n.denied;
    out->errors = n.errors - base->n.errors;
    out->fallback = n.fallback - base->n.fallback;
    out->denial_rate = ratio(out->denied, out->checks);
    out->error_rate = ratio(out->errors, out->checks);
    out->fallback_rate = ratio(out->fallback, out->checks);
    out->checks_per_second = ratio(out->checks * 1000, out->window_ms);
    h = &hub->scratch;
    rl__metrics_hist(hub, -1, h);
    rl__hist_diff(h, h, &base->lat);
    out->latency_p99_ms = (double)rl__hist_quantile(h, 0.99) / 1000.0;
    out->latency_avg_ms = ratio((int64_t)h->sum, (int64_t)h->count) /
                          1000.0;
}

/* ---- life ---- */

static void alert_timer_cb(int fd, short what, void *arg);
static void hub_free(struct rl_metrics_hub *hub);

int
rl__metrics_init(struct rl_limiter *rl)
{
    struct rl_metrics_hub *hub = calloc(1, sizeof(*hub));
    int64_t now = rl__steady_ms(rl);
    int i;

    if (hub == NULL)
        return RL_ERR_NOMEM;
    hub->enabled = true;
    for (i = 0; i < 3; i++)
        rl__hist_init(&hub->lat[i]);
    rl__hist_init(&hub->scratch);
    for (i = 0; i < RL_WIN_SLOTS; i++)
        hub->win[i].sec = INT64_MIN;
    win_counts(rl, &hub->win[0].n);
    rl__hist_init(&hub->win[0].lat);
    hub->win[0].sec = sec_of(now);
    hub->win[0].at_ms = now;
    hub->alert_ev = rl__weak_timer_new(rl->base, alert_timer_cb, rl);
    hub->report_ev = rl__weak_timer_new(rl->base, rl__metrics_report_cb,
                                        rl);
    if (hub->alert_ev == NULL || hub->report_ev == NULL ||
        hub_attach(rl, hub) != RL_OK) {
        hub_free(hub);
        return RL_ERR_NOMEM;
    }
    return RL_OK;
}

static void
hub_free(struct rl_metrics_hub *hub)
{
    if (hub->alert_ev != NULL)
        event_free(hub->alert_ev);
    if (hub->report_ev != NULL)
        event_free(hub->report_ev);
    free(hub);
}

void
rl__metrics_destroy(struct rl_limiter *rl)
{
    struct rl_metrics_hub *hub = rl__metrics_hub(rl);

    if (hub == NULL)
        return;
    rl->hub = NULL;
    hub_free(hub);
}

/* ---- recording ---- */

void
rl__metrics_deliver_begin(struct rl_limiter *rl)
{
    struct rl_metrics_hub *hub = rl__metrics_hub(rl);
    int64_t now_ms;

    if (hub == NULL || TAILQ_EMPTY(&rl->done_q))
        return;
    hub->now_ns = rl__mono_ns();
    if (rl->cfg.clock != NULL)
        now_ms = rl->cfg.clock(rl->cfg.clock_arg);
    else
        now_ms = hub->now_ns / 1000000;
    rotate(rl, hub, now_ms);
}

void
rl__metrics_status(struct rl_limiter *rl, int status)
{
    /* RL_ERR_INVALID (-1) .. RL_ERR_PROTOCOL (-8); later codes have no
       counter yet. */
    if (status <= RL_ERR_INVALID && status >= RL_ERR_PROTOCOL)
        rl->ctr.v[RL_METRIC_STATUS_INVALID + (RL_ERR_INVALID - status)]++;
}

/* ---- the snapshot ---- */

void
rl__metrics_latency_of(const struct rl_hist *h, rl_latency *out)
{
    memset(out, 0, sizeof(*out));
    if (h->count == 0)
        return;
    out->count = (int64_t)h->count;
    out->sum_us = (int64_t)h->sum;
    out->min_us = (int64_t)h->min;
    out->max_us = (int64_t)h->max;
    out->p50_us = (int64_t)rl__hist_quantile(h, 0.50);
    out->p90_us = (int64_t)rl__hist_quantile(h, 0.90);
    out->p99_us = (int64_t)rl__hist_quantile(h, 0.99);
    out->p999_us = (int64_t)rl__hist_quantile(h, 0.999);
    out->clamped = (int64_t)rl__hist_clamped(h);
}

int
rl__metrics_snapshot(struct rl_limiter *rl, int64_t now_ms, rl_metrics *out)
{
    struct rl_metrics_hub *hub;
    int i;

    if (rl == NULL || out == NULL)
        return RL_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    out->n_values = RL_METRIC_COUNT_;
    for (i = 0; i < RL_METRIC_COUNT_; i++)
        out->values[i] = rl_metric(rl, i);
    rl__metrics_rates(rl, now_ms, &out->rates);
    hub = rl__metrics_hub(rl);
    if (hub == NULL)
        return RL_OK;
    for (i = 0; i < 3; i++)
        rl__metrics_latency_of(&hub->lat[i], &out->latency_by_source[i]);
    rl__metrics_hist(hub, -1, &hub->scratch);
    rl__metrics_latency_of(&hub->scratch, &out->latency);
    out->latency_enabled = hub->enabled;
    return RL_OK;
}

RL_EXTERN int
rl_metrics_get(rl_limiter *rl, rl_metrics *out)
{
    if (rl == NULL || out == NULL)
        return RL_ERR_INVALID;
    return rl__metrics_snapshot(rl, rl__steady_ms(rl), out);
}

RL_EXTERN int
rl_metrics_enable(rl_limiter *rl, bool on)
{
    struct rl_metrics_hub *hub = rl != NULL ? rl__metrics_hub(rl) : NULL;

    if (hub == NULL)
        return RL_ERR_INVALID;
    hub->enabled = on;
    return RL_OK;
}

/* ---- alerts ---- */

static const char *const alert_metric_names[RL_ALERT_METRIC_COUNT_] = {
    [RL_ALERT_DENIAL_RATE] = "denial_rate",
    [RL_ALERT_ERROR_RATE] = "error_rate",
    [RL_ALERT_FALLBACK_RATE] = "fallback_rate",
    [RL_ALERT_CHECKS_PER_SECOND] = "checks_per_second",
    [RL_ALERT_LATENCY_P99_MS] = "latency_p99_ms",
    [RL_ALERT_LATENCY_AVG_MS] = "latency_avg_ms",
};

RL_EXTERN const char *
rl_alert_metric_name(int metric)
{
    if (metric < 0 || metric >= RL_ALERT_METRIC_COUNT_)
        return NULL;
    return alert_metric_names[metric];
}

static double
alert_value(const rl_rates *r, int metric)
{
    switch (metric) {
    case RL_ALERT_DENIAL_RATE:
        return r->denial_rate;
    case RL_ALERT_ERROR_RATE:
        return r->error_rate;
    case RL_ALERT_FALLBACK_RATE:
        return r->fallback_rate;
    case RL_ALERT_CHECKS_PER_SECOND:
        return r->checks_per_second;
    case RL_ALERT_LATENCY_P99_MS:
        return r->latency_p99_ms;
    default:
        return r->latency_avg_ms;
    }
}

static int
alert_find(const struct rl_metrics_hub *hub, const char *name)
{
    int i;

    for (i = 0; i < hub->n_alerts; i++)
        if (strcmp(hub->alerts[i].name, name) == 0)
            return i;
    return -1;
}

static void
count_active(struct rl_limiter *rl, const struct rl_metrics_hub *hub)
{
    int i, n = 0;

    for (i = 0; i < hub->n_alerts; i++)
        n += hub->alerts[i].active;
    rl->ctr.v[RL_METRIC_ALERTS_ACTIVE] = n;
}

static bool
threshold_ok(int metric, double threshold)
{
    if (!isfinite(threshold) || threshold < 0)
        return false;
    return metric > RL_ALERT_FALLBACK_RATE || threshold <= 1;
}

RL_EXTERN int
rl_alert_add(rl_limiter *rl, const char *name, int metric,
             double threshold)
{
    struct rl_metrics_hub *hub = rl != NULL ? rl__metrics_hub(rl) : NULL;
    struct rl_alert *a;
    size_t len = name != NULL ? strlen(name) : 0;

    if (hub == NULL || len == 0 || len > RL_ALERT_NAME_MAX ||
        metric < 0 || metric >= RL_ALERT_METRIC_COUNT_ ||
        !threshold_ok(metric, threshold) || alert_find(hub, name) >= 0)
        return RL_ERR_INVALID;
    if (hub->n_alerts == RL_ALERTS_MAX)
        return RL_ERR_OVERLOAD;
    a = &hub->alerts[hub->n_alerts++];
    memset(a, 0, sizeof(*a));
    memcpy(a->name, name, len + 1);
    a->metric = metric;
    a->threshold = threshold;
    if (hub->n_alerts == 1 && !rl->freeing)
        rl__timer_add_ms(hub->alert_ev, RL_ALERT_EVAL_MS);
    return RL_OK;
}

RL_EXTERN int
rl_alert_remove(rl_limiter *rl, const char *name)
{
    struct rl_metrics_hub *hub = rl != NULL ? rl__metrics_hub(rl) : NULL;
    int i = hub != NULL && name != NULL ? alert_find(hub, name) : -1;

    if (i < 0)
        return RL_ERR_INVALID;
    memmove(&hub->alerts[i], &hub->alerts[i + 1],
            sizeof(hub->alerts[0]) * (size_t)(hub->n_alerts - i - 1));
    hub->n_alerts--;
    count_active(rl, hub);
    if (hub->n_alerts == 0)
        event_del(hub->alert_ev);
    return RL_OK;
}

RL_EXTERN int
rl_alert_callback_set(rl_limiter *rl, rl_alert_cb cb, void *arg)
{
    struct rl_metrics_hub *hub = rl != NULL ? rl__metrics_hub(rl) : NULL;

    if (hub == NULL)
        return RL_ERR_INVALID;
    hub->alert_cb = cb;
    hub->alert_arg = arg;
    return RL_OK;
}

/* A change of an alert, copied: the callbacks may remove alerts. */
struct alert_note {
    char name[RL_ALERT_NAME_MAX + 1];
    double value, threshold;
    bool fired;
};

/* Logs and tells the changes, like every other callback of the library. */
static void
alert_tell(struct rl_limiter *rl, const struct alert_note *notes, int n)
{
    struct rl_metrics_hub *hub = rl__metrics_hub(rl);
    int i;

    for (i = 0; i < n; i++)
        rl__log(rl, notes[i].fired ? RL_LOG_WARN : RL_LOG_INFO,
                "alert %s %s: %.4g, threshold %.4g", notes[i].name,
                notes[i].fired ? "fired" : "cleared", notes[i].value,
                notes[i].threshold);
    rl->in_callback++;
    for (i = 0; i < n && !rl->freeing && hub->alert_cb != NULL; i++)
        hub->alert_cb(notes[i].name, notes[i].value, notes[i].threshold,
                      notes[i].fired, hub->alert_arg);
    rl->in_callback--; /* rl_free from a callback armed the tick */
}

/* Fires above the threshold; clears at or below 90% of it, not before. */
static bool
alert_flips(const struct rl_alert *a)
{
    if (!a->active)
        return a->value > a->threshold;
    return a->value <= a->threshold * RL_ALERT_CLEAR_PCT / 100.0;
}

void
rl__metrics_evaluate(struct rl_limiter *rl, int64_t now_ms)
{
    struct rl_metrics_hub *hub = rl__metrics_hub(rl);
    struct alert_note notes[RL_ALERTS_MAX];
    struct rl_alert *a;
    rl_rates r;
    int i, n = 0;

    if (hub == NULL || rl->freeing || hub->n_alerts == 0)
        return;
    rl__metrics_rates(rl, now_ms, &r);
    for (i = 0; i < hub->n_alerts; i++) {
        a = &hub->alerts[i];
        a->value = alert_value(&r, a->metric);
        if (!alert_flips(a))
            continue;
        a->active = !a->active;
        memcpy(notes[n].name, a->name, sizeof(a->name));
        notes[n].value = a->value;
        notes[n].threshold = a->threshold;
        notes[n++].fired = a->active;
    }
    count_active(rl, hub);
    if (n > 0)
        alert_tell(rl, notes, n);
}

static void
alert_timer_cb(int fd, short what, void *arg)
{
    struct rl_limiter *rl = arg;
    struct rl_metrics_hub *hub = rl__metrics_hub(rl);

    (void)fd;
    (void)what;
    rl__metrics_evaluate(rl, rl__steady_ms(rl));
    if (!rl->freeing && hub->n_alerts > 0)
        rl__timer_add_ms(hub->alert_ev, RL_ALERT_EVAL_MS);
}

/* ---- health ---- */

static const char *const health_names[] = {"healthy", "degraded",
                                            "unhealthy"};

RL_EXTERN const char *
rl_health_status_name(int status)
{
    if (status < RL_HEALTH_HEALTHY || status > RL_HEALTH_UNHEALTHY)
        return NULL;
    return health_names[status];
}

/* Adds a reason at `level`; past the last room, the last says how many
   more there were. */
static void
health_add(rl_health *h, int *more, rl_health_status level,
           const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
health_add(rl_health *h, int *more, rl_health_status level,
           const char *fmt, ...)
{
    va_list ap;

    if (level > h->status)
        h->status = level;
    if (h->n_reasons == RL_HEALTH_REASONS_MAX) {
        snprintf(h->reasons[RL_HEALTH_REASONS_MAX - 1],
                 RL_HEALTH_REASON_LEN, "and %d more", ++*more + 1);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(h->reasons[h->n_reasons++], RL_HEALTH_REASON_LEN, fmt, ap);
    va_end(ap);
}

static void
health_alerts(const struct rl_metrics_hub *hub, rl_health *out, int *more)
{
    const struct rl_alert *a;
    int i;

    for (i = 0; i < hub->n_alerts; i++) {
        a = &hub->alerts[i];
        if (!a->active)
            continue;
        out->alerts_active++;
        health_add(out, more, RL_HEALTH_DEGRADED, "alert %s: %s %.4g "
                   "above %.4g", a->name, alert_metric_names[a->metric],
                   a->value, a->threshold);
    }
}

void
rl__metrics_health(struct rl_limiter *rl, int64_t now_ms, rl_health *out)
{
    struct rl_metrics_hub *hub = rl__metrics_hub(rl);
    rl_breaker_state bs;
    rl_rates r;
    int more = 0;

    memset(out, 0, sizeof(*out));
    out->redis_state = rl__redis_conn_state(rl);
    out->breaker_state = rl_breaker_get(rl, &bs) == RL_OK ? (int)bs : -1;
    rl__metrics_rates(rl, now_ms, &r);
    if (out->breaker_state == RL_BREAKER_OPEN)
        health_add(out, &more, RL_HEALTH_UNHEALTHY, "circuit breaker "
                   "open: the fallback answers every check");
    if (out->redis_state == RL_REDIS_DISCONNECTED)
        health_add(out, &more, RL_HEALTH_UNHEALTHY, "Redis unreachable");
    if (out->breaker_state == RL_BREAKER_HALF_OPEN)
        health_add(out, &more, RL_HEALTH_DEGRADED, "circuit breaker "
                   "half-open: probing Redis");
    if (out->redis_state == RL_REDIS_CONNECTING)
        health_add(out, &more, RL_HEALTH_DEGRADED, "connecting to Redis");
    if (r.fallback > 0)
        health_add(out, &more, RL_HEALTH_DEGRADED, "fallback answered "
                   "%lld of %lld checks in the last %lld s",
                   (long long)r.fallback, (long long)r.checks,
                   (long long)((r.window_ms + 999) / 1000));
    if (hub != NULL)
        health_alerts(hub, out, &more);
}

RL_EXTERN int
rl_health_get(rl_limiter *rl, rl_health *out)
{
    if (rl == NULL || out == NULL)
        return RL_ERR_INVALID;
    rl__metrics_health(rl, rl__steady_ms(rl), out);
    return RL_OK;
}
