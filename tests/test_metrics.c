/*
 * test_metrics.c: the metrics hub (src/metrics.c, src/metrics_export.c)
 * on local-backend limiters with a controllable clock: counters by
 * result, source and status; rates over the sliding window at explicit
 * times; alerts firing and clearing at the right moments, with their
 * hysteresis; the alert and report timers, which never keep a loop
 * alive; health; and the Prometheus and JSON exports, read back by real
 * parsers (prometheus_client and json, through tests/prom_parse.py) and
 * compared with rl_metrics_get's snapshot.
 *
 * Deliveries are driven two ways.  deliver() does exactly what the
 * request path's hooks do for one check (rotate the window at the drain's
 * time, then rl__metrics_record), with any result, source, status and
 * latency, so the window, alerts, health and exports are tested at exact
 * times.  The end-to-end cases submit real checks through the public API
 * and need the hooks in request.c and limiter.c (RL_HAVE_METRICS_HUB);
 * without them they are left out, and the hub is created by hand.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "check_main.h"
#include "helpers.h"
#include "metrics.h"

#define T0 1700000000000LL /* an aligned second, in ms */

static struct event_base *base;
static int64_t now;

static void
setup(void)
{
    base = event_base_new();
    now = T0;
}

static void
teardown(void)
{
    event_base_free(base);
}

/* ---- limiters ---- */

static rl_limiter *
new_limiter(const rl_config *cfg)
{
    rl_limiter *rl = NULL;

    ck_assert_int_eq(rl_new(base, cfg, &rl), RL_OK);
    ck_assert_ptr_nonnull(rl__metrics_hub(rl));
    return rl;
}

static rl_limiter *
new_local(void)
{
    rl_config cfg;

    th_local_config(&cfg, RL_FIXED_WINDOW, &now);
    cfg.log_level = RL_LOG_ERROR; /* alerts log at warn */
    return new_limiter(&cfg);
}

static void
free_limiter(rl_limiter *rl)
{
    rl_free(rl);
}

/*
 * n checks delivered at time t with this result, as the hooks would: the
 * drain rotates the window at t, then each check is recorded with the
 * given latency.
 */
static void
deliver(rl_limiter *rl, int64_t t, int n, bool allowed, rl_source src,
        int status, int64_t lat_us)
{
    struct rl_metrics_hub *hub = rl__metrics_hub(rl);
    struct rl_req req;
    rl_rates r;

    now = t;
    rl__metrics_rates(rl, t, &r);
    memset(&req, 0, sizeof(req));
    req.op = RL_OP_CHECK;
    req.res.allowed = allowed;
    req.res.source = src;
    req.res.status = status;
    hub->now_ns = 5000000000000LL;
    req.submit_ns = hub->now_ns - lat_us * 1000;
    while (n-- > 0)
        rl__metrics_record(rl, &req);
}

static rl_rates
rates_at(rl_limiter *rl, int64_t t)
{
    rl_rates r;

    rl__metrics_rates(rl, t, &r);
    return r;
}

/* ---- names and arguments ---- */

START_TEST(names_and_ids)
{
    const char *a, *b;
    int i, j;

    ck_assert_int_le(RL_METRIC_COUNT_, RL_METRICS_MAX);
    for (i = 0; i < RL_METRIC_COUNT_; i++) {
        a = rl_metric_name(i);
        ck_assert_msg(a != NULL, "metric %d has no name", i);
        for (j = 0; j < i; j++) {
            b = rl_metric_name(j);
            ck_assert_msg(strcmp(a, b) != 0, "%s named twice", a);
        }
    }
    ck_assert_str_eq(rl_metric_name(RL_METRIC_ALLOWED_BACKEND +
                                    2 * RL_SOURCE_FALLBACK + 1),
                     "denied_fallback_total");
    ck_assert_str_eq(rl_metric_name(RL_METRIC_STATUS_INVALID +
                                    (RL_ERR_INVALID - RL_ERR_TIMEOUT)),
                     "status_timeout_total");
    ck_assert_str_eq(rl_metric_name(RL_METRIC_STATUS_INVALID +
                                    (RL_ERR_INVALID - RL_ERR_PROTOCOL)),
                     "status_protocol_total");
    ck_assert_str_eq(rl_alert_metric_name(RL_ALERT_LATENCY_P99_MS),
                     "latency_p99_ms");
    ck_assert_ptr_null(rl_alert_metric_name(RL_ALERT_METRIC_COUNT_));
    ck_assert_ptr_null(rl_alert_metric_name(-1));
    ck_assert_str_eq(rl_health_status_name(RL_HEALTH_DEGRADED), "degraded");
    ck_assert_ptr_null(rl_health_status_name(3));
}
END_TEST

START_TEST(bad_arguments_are_refused)
{
    rl_limiter *rl = new_local();
    char longname[RL_ALERT_NAME_MAX + 2];
    struct evbuffer *b = evbuffer_new();
    rl_metrics m;
    rl_health h;
    int i;

    ck_assert_int_eq(rl_metrics_get(NULL, &m), RL_ERR_INVALID);
    ck_assert_int_eq(rl_metrics_get(rl, NULL), RL_ERR_INVALID);
    ck_assert_int_eq(rl_health_get(NULL, &h), RL_ERR_INVALID);
    ck_assert_int_eq(rl_health_get(rl, NULL), RL_ERR_INVALID);
    ck_assert_int_eq(rl_metrics_enable(NULL, true), RL_ERR_INVALID);
    ck_assert_int_eq(rl_metrics_prometheus(NULL, b), RL_ERR_INVALID);
    ck_assert_int_eq(rl_metrics_prometheus(rl, NULL), RL_ERR_INVALID);
    ck_assert_int_eq(rl_metrics_json(NULL, b), RL_ERR_INVALID);
    ck_assert_int_eq(rl_metrics_json(rl, NULL), RL_ERR_INVALID);
    ck_assert_int_eq(rl_metrics_report_every(rl, -1), RL_ERR_INVALID);
    ck_assert_int_eq(rl_metrics_report_every(NULL, 10), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_callback_set(NULL, NULL, NULL),
                     RL_ERR_INVALID);

    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ck_assert_int_eq(rl_alert_add(NULL, "a", 0, 0.5), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_add(rl, NULL, 0, 0.5), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_add(rl, "", 0, 0.5), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_add(rl, longname, 0, 0.5), RL_ERR_INVALID);
    longname[RL_ALERT_NAME_MAX] = '\0';
    ck_assert_int_eq(rl_alert_add(rl, longname, 0, 0.5), RL_OK);
    ck_assert_int_eq(rl_alert_add(rl, longname, 1, 0.5), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_add(rl, "m", -1, 0.5), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_add(rl, "m", RL_ALERT_METRIC_COUNT_, 1),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_add(rl, "t", 0, -0.1), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_add(rl, "t", 0, NAN), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_add(rl, "t", 3, INFINITY), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_add(rl, "t", RL_ALERT_ERROR_RATE, 1.5),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_add(rl, "t", RL_ALERT_CHECKS_PER_SECOND,
                                  1.5e6), RL_OK);
    for (i = 2; i < RL_ALERTS_MAX; i++) {
        snprintf(longname, sizeof(longname), "a%d", i);
        ck_assert_int_eq(rl_alert_add(rl, longname, 0, 1), RL_OK);
    }
    ck_assert_int_eq(rl_alert_add(rl, "one too many", 0, 1),
                     RL_ERR_OVERLOAD);
    ck_assert_int_eq(rl_alert_remove(rl, "nope"), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_remove(rl, NULL), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_remove(NULL, "t"), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_remove(rl, "t"), RL_OK);
    ck_assert_int_eq(rl_alert_remove(rl, "t"), RL_ERR_INVALID);
    ck_assert_int_eq(rl_alert_add(rl, "one too many", 0, 1), RL_OK);
    evbuffer_free(b);
    free_limiter(rl);
}
END_TEST

/* ---- counters and rates ---- */

START_TEST(counters_by_result_source_and_status)
{
    rl_limiter *rl = new_local();
    rl_metrics m;

    deliver(rl, T0, 3, true, RL_SOURCE_BACKEND, RL_OK, 10);
    deliver(rl, T0, 2, false, RL_SOURCE_BACKEND, RL_OK, 10);
    deliver(rl, T0, 4, false, RL_SOURCE_CACHE, RL_OK, 10);
    deliver(rl, T0, 5, true, RL_SOURCE_FALLBACK, RL_ERR_REDIS, 10);
    deliver(rl, T0, 6, false, RL_SOURCE_FALLBACK, RL_ERR_TIMEOUT, 10);
    deliver(rl, T0, 1, true, RL_SOURCE_FALLBACK, RL_ERR_CIRCUIT_OPEN, 10);
    deliver(rl, T0, 1, true, RL_SOURCE_FALLBACK, RL_ERR_PROTOCOL, 10);
    deliver(rl, T0, 1, true, RL_SOURCE_FALLBACK, RL_ERR_SHUTDOWN, 10);
    deliver(rl, T0, 1, true, RL_SOURCE_FALLBACK, RL_ERR_NOMEM, 10);
    deliver(rl, T0, 1, true, RL_SOURCE_FALLBACK, -99, 10); /* no counter */
    ck_assert_int_eq(rl_metrics_get(rl, &m), RL_OK);
    ck_assert_int_eq(m.n_values, RL_METRIC_COUNT_);
    ck_assert_int_eq(m.values[RL_METRIC_ALLOWED_BACKEND], 3);
    ck_assert_int_eq(m.values[RL_METRIC_DENIED_BACKEND], 2);
    ck_assert_int_eq(m.values[RL_METRIC_ALLOWED_CACHE], 0);
    ck_assert_int_eq(m.values[RL_METRIC_DENIED_CACHE], 4);
    ck_assert_int_eq(m.values[RL_METRIC_ALLOWED_FALLBACK], 10);
    ck_assert_int_eq(m.values[RL_METRIC_DENIED_FALLBACK], 6);
    ck_assert_int_eq(m.values[RL_METRIC_STATUS_REDIS], 5);
    ck_assert_int_eq(m.values[RL_METRIC_STATUS_TIMEOUT], 6);
    ck_assert_int_eq(m.values[RL_METRIC_STATUS_CIRCUIT_OPEN], 1);
    ck_assert_int_eq(m.values[RL_METRIC_STATUS_PROTOCOL], 1);
    ck_assert_int_eq(m.values[RL_METRIC_STATUS_SHUTDOWN], 1);
    ck_assert_int_eq(m.values[RL_METRIC_STATUS_NOMEM], 1);
    ck_assert_int_eq(m.values[RL_METRIC_STATUS_INVALID], 0);
    ck_assert_int_eq(m.values[RL_METRIC_STATUS_OVERLOAD], 0);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_DENIED_CACHE), 4);
    ck_assert_int_eq(m.rates.checks, 25);
    ck_assert_int_eq(m.rates.denied, 12);
    ck_assert_int_eq(m.rates.fallback, 16);
    ck_assert_int_eq(m.rates.errors, 5 + 6 + 1 + 1); /* redis, timeout,
                                                         protocol, nomem */
    ck_assert_int_eq(m.latency.count, 25);
    ck_assert_int_eq(m.latency_by_source[RL_SOURCE_CACHE].count, 4);
    ck_assert_int_eq(m.latency_by_source[RL_SOURCE_FALLBACK].count, 16);
    ck_assert(m.latency_enabled);
    free_limiter(rl);
}
END_TEST

START_TEST(rates_slide_with_the_clock)
{
    rl_limiter *rl = new_local();
    rl_rates r;

    deliver(rl, T0, 6, true, RL_SOURCE_BACKEND, RL_OK, 100);
    deliver(rl, T0, 4, false, RL_SOURCE_BACKEND, RL_OK, 100);
    deliver(rl, T0 + 500, 5, true, RL_SOURCE_FALLBACK, RL_ERR_REDIS, 100);
    deliver(rl, T0 + 500, 1, true, RL_SOURCE_FALLBACK, RL_ERR_CIRCUIT_OPEN,
            100);
    r = rates_at(rl, T0 + 999);
    ck_assert_int_eq(r.at_ms, T0 + 999);
    ck_assert_int_eq(r.window_ms, 999); /* since the hub began */
    ck_assert_int_eq(r.checks, 16);
    ck_assert_int_eq(r.denied, 4);
    ck_assert_int_eq(r.errors, 5);
    ck_assert_int_eq(r.fallback, 6);
    ck_assert_double_eq_tol(r.denial_rate, 4.0 / 16, 1e-12);
    ck_assert_double_eq_tol(r.error_rate, 5.0 / 16, 1e-12);
    ck_assert_double_eq_tol(r.fallback_rate, 6.0 / 16, 1e-12);
    ck_assert_double_eq_tol(r.checks_per_second, 16 * 1000.0 / 999, 1e-9);

    deliver(rl, T0 + 3000, 4, true, RL_SOURCE_BACKEND, RL_OK, 100);
    r = rates_at(rl, T0 + 10999); /* 10 whole seconds and this one */
    ck_assert_int_eq(r.window_ms, 10999);
    ck_assert_int_eq(r.checks, 20);
    r = rates_at(rl, T0 + 11000); /* the first second left the window */
    ck_assert_int_eq(r.window_ms, 10000);
    ck_assert_int_eq(r.checks, 4);
    ck_assert_int_eq(r.denied, 0);
    ck_assert_int_eq(r.errors, 0);
    ck_assert_double_eq_tol(r.checks_per_second, 0.4, 1e-12);
    r = rates_at(rl, T0 + 13999);
    ck_assert_int_eq(r.checks, 4);
    r = rates_at(rl, T0 + 14000);
    ck_assert_int_eq(r.checks, 0);
    ck_assert_double_eq(r.denial_rate, 0);
    ck_assert_double_eq(r.checks_per_second, 0);

    deliver(rl, T0 + 100000, 3, false, RL_SOURCE_CACHE, RL_OK, 100);
    r = rates_at(rl, T0 + 100250); /* a long idle gap */
    ck_assert_int_eq(r.window_ms, 10250);
    ck_assert_int_eq(r.checks, 3);
    ck_assert_int_eq(r.denied, 3);
    r = rates_at(rl, T0 + 99000); /* a clock that went back */
    ck_assert_int_eq(r.window_ms, 9000);
    ck_assert_int_eq(r.checks, 3);
    free_limiter(rl);
}
END_TEST

START_TEST(window_latency)
{
    rl_limiter *rl = new_local();
    rl_rates r;

    deliver(rl, T0, 98, true, RL_SOURCE_BACKEND, RL_OK, 1000);
    deliver(rl, T0, 2, true, RL_SOURCE_BACKEND, RL_OK, 50000);
    r = rates_at(rl, T0 + 100);
    ck_assert_double_eq_tol(r.latency_avg_ms, (98 * 1.0 + 2 * 50.0) / 100,
                            1e-9);
    ck_assert_double_eq_tol(r.latency_p99_ms, 50.0, 50.0 / 64);
    deliver(rl, T0 + 5000, 100, true, RL_SOURCE_BACKEND, RL_OK, 3000);
    r = rates_at(rl, T0 + 11000); /* only the second batch is left */
    ck_assert_double_eq_tol(r.latency_avg_ms, 3.0, 1e-9);
    ck_assert_double_eq_tol(r.latency_p99_ms, 3.0, 3.0 / 64);
    r = rates_at(rl, T0 + 16000);
    ck_assert_double_eq(r.latency_avg_ms, 0);
    ck_assert_double_eq(r.latency_p99_ms, 0);
    free_limiter(rl);
}
END_TEST

START_TEST(disabled_latency_keeps_counting)
{
    rl_limiter *rl = new_local();
    rl_metrics m;

    ck_assert_int_eq(rl_metrics_enable(rl, false), RL_OK);
    deliver(rl, T0, 3, false, RL_SOURCE_BACKEND, RL_OK, 10);
    ck_assert_int_eq(rl_metrics_get(rl, &m), RL_OK);
    ck_assert(!m.latency_enabled);
    ck_assert_int_eq(m.values[RL_METRIC_DENIED_BACKEND], 3);
    ck_assert_int_eq(m.rates.denied, 3);
    ck_assert_int_eq(m.latency.count, 0);
    ck_assert_int_eq(rl_metrics_enable(rl, true), RL_OK);
    deliver(rl, T0, 1, false, RL_SOURCE_BACKEND, RL_OK, 10);
    ck_assert_int_eq(rl_metrics_get(rl, &m), RL_OK);
    ck_assert_int_eq(m.latency.count, 1);
    ck_assert_int_eq(m.latency.min_us, 10);
    free_limiter(rl);
}
END_TEST

/* ---- alerts ---- */

struct alert_log {
    int n;
    char name[8][RL_ALERT_NAME_MAX + 1];
    double value[8], threshold[8];
    bool fired[8];
    rl_limiter *rl;      /* for the callbacks that change the alerts */
    bool edit, free_rl;
};

static void
alert_cb(const char *name, double value, double threshold, bool fired,
         void *arg)
{
    struct alert_log *log = arg;
    int i = log->n++;

    ck_assert_int_lt(i, 8);
    snprintf(log->name[i], sizeof(log->name[i]), "%s", name);
    log->value[i] = value;
    log->threshold[i] = threshold;
    log->fired[i] = fired;
    if (log->edit) {
        log->edit = false;
        rl_alert_remove(log->rl, "denials");
        rl_alert_remove(log->rl, "errors");
        ck_assert_int_eq(rl_alert_add(log->rl, "later", 0, 0.9), RL_OK);
    }
    if (log->free_rl)
        rl_free(log->rl);
}

START_TEST(denial_alert_fires_and_clears_with_hysteresis)
{
    rl_limiter *rl = new_local();
    struct alert_log log = {0};
    rl_health h;

    ck_assert_int_eq(rl_alert_callback_set(rl, alert_cb, &log), RL_OK);
    ck_assert_int_eq(rl_alert_add(rl, "denials", RL_ALERT_DENIAL_RATE,
                                  0.5), RL_OK);
    deliver(rl, T0, 5, true, RL_SOURCE_BACKEND, RL_OK, 10);
    deliver(rl, T0, 5, false, RL_SOURCE_BACKEND, RL_OK, 10);
    rl__metrics_evaluate(rl, T0);           /* 0.5: not above */
    ck_assert_int_eq(log.n, 0);
    deliver(rl, T0 + 100, 1, false, RL_SOURCE_BACKEND, RL_OK, 10);
    rl__metrics_evaluate(rl, T0 + 100);     /* 6/11: fires */
    ck_assert_int_eq(log.n, 1);
    ck_assert_str_eq(log.name[0], "denials");
    ck_assert(log.fired[0]);
    ck_assert_double_eq_tol(log.value[0], 6.0 / 11, 1e-12);
    ck_assert_double_eq(log.threshold[0], 0.5);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_ALERTS_ACTIVE), 1);
    ck_assert_int_eq(rl_health_get(rl, &h), RL_OK);
    ck_assert_int_eq(h.status, RL_HEALTH_DEGRADED);
    ck_assert_int_eq(h.alerts_active, 1);
    ck_assert_int_eq(h.n_reasons, 1);
    ck_assert_ptr_nonnull(strstr(h.reasons[0], "alert denials"));
    ck_assert_ptr_nonnull(strstr(h.reasons[0], "denial_rate"));

    rl__metrics_evaluate(rl, T0 + 200);     /* still above: no repeat */
    deliver(rl, T0 + 300, 1, true, RL_SOURCE_BACKEND, RL_OK, 10);
    rl__metrics_evaluate(rl, T0 + 300);     /* 6/12: in the band */
    ck_assert_int_eq(log.n, 1);
    deliver(rl, T0 + 400, 1, true, RL_SOURCE_BACKEND, RL_OK, 10);
    rl__metrics_evaluate(rl, T0 + 400);     /* 6/13 = 0.46: in the band */
    ck_assert_int_eq(log.n, 1);
    deliver(rl, T0 + 500, 1, true, RL_SOURCE_BACKEND, RL_OK, 10);
    rl__metrics_evaluate(rl, T0 + 500);     /* 6/14 = 0.43: clears */
    ck_assert_int_eq(log.n, 2);
    ck_assert(!log.fired[1]);
    ck_assert_double_eq_tol(log.value[1], 6.0 / 14, 1e-12);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_ALERTS_ACTIVE), 0);
    ck_assert_int_eq(rl_health_get(rl, &h), RL_OK);
    ck_assert_int_eq(h.status, RL_HEALTH_HEALTHY);
    ck_assert_int_eq(h.n_reasons, 0);

    deliver(rl, T0 + 1200, 20, false, RL_SOURCE_BACKEND, RL_OK, 10);
    rl__metrics_evaluate(rl, T0 + 1200);    /* 26/34: fires again */
    ck_assert_int_eq(log.n, 3);
    ck_assert(log.fired[2]);
    rl__metrics_evaluate(rl, T0 + 11999);   /* both seconds still in */
    ck_assert_int_eq(log.n, 3);
    rl__metrics_evaluate(rl, T0 + 12000);   /* the window is empty: 0 */
    ck_assert_int_eq(log.n, 4);
    ck_assert(!log.fired[3]);
    ck_assert_double_eq(log.value[3], 0);
    free_limiter(rl);
}
END_TEST

START_TEST(latency_and_volume_alerts)
{
    rl_limiter *rl = new_local();
    struct alert_log log = {0};

    rl_alert_callback_set(rl, alert_cb, &log);
    ck_assert_int_eq(rl_alert_add(rl, "p99", RL_ALERT_LATENCY_P99_MS, 2),
                     RL_OK);
    ck_assert_int_eq(rl_alert_add(rl, "avg", RL_ALERT_LATENCY_AVG_MS, 1),
                     RL_OK);
    ck_assert_int_eq(rl_alert_add(rl, "cps", RL_ALERT_CHECKS_PER_SECOND,
                                  100), RL_OK);
    ck_assert_int_eq(rl_alert_add(rl, "errors", RL_ALERT_ERROR_RATE, 0.1),
                     RL_OK);
    ck_assert_int_eq(rl_alert_add(rl, "fallback", RL_ALERT_FALLBACK_RATE,
                                  0.2), RL_OK);
    deliver(rl, T0, 100, true, RL_SOURCE_BACKEND, RL_OK, 500);
    rl__metrics_evaluate(rl, T0 + 999);  /* 100.1/s only */
    ck_assert_int_eq(log.n, 1);
    ck_assert_str_eq(log.name[0], "cps");
    ck_assert(log.fired[0]);
    deliver(rl, T0 + 1000, 5, true, RL_SOURCE_BACKEND, RL_OK, 10000);
    deliver(rl, T0 + 1000, 20, true, RL_SOURCE_FALLBACK, RL_ERR_TIMEOUT,
            900);
    rl__metrics_evaluate(rl, T0 + 1000);
    /* avg (50 + 50 + 18) / 125 = 0.944 ms: no; p99 10 ms; errors and
       fallback 20 / 125 = 0.16: errors only */
    ck_assert_int_eq(log.n, 3);
    ck_assert_str_eq(log.name[1], "p99");
    ck_assert_double_eq_tol(log.value[1], 10.0, 10.0 / 64);
    ck_assert_str_eq(log.name[2], "errors");
    ck_assert_double_eq_tol(log.value[2], 0.16, 1e-12);
    rl__metrics_evaluate(rl, T0 + 12000);   /* all clear */
    ck_assert_int_eq(log.n, 6);
    ck_assert(!log.fired[3] && !log.fired[4] && !log.fired[5]);
    ck_assert_str_eq(log.name[3], "p99");
    ck_assert_str_eq(log.name[4], "cps");
    ck_assert_str_eq(log.name[5], "errors");
    free_limiter(rl);
}
END_TEST

START_TEST(callbacks_may_change_the_alerts)
{
    rl_limiter *rl = new_local();
    struct alert_log log = {0};
    struct rl_metrics_hub *hub = rl__metrics_hub(rl);

    log.rl = rl;
    log.edit = true;
    rl_alert_callback_set(rl, alert_cb, &log);
    rl_alert_add(rl, "denials", RL_ALERT_DENIAL_RATE, 0.1);
    rl_alert_add(rl, "errors", RL_ALERT_ERROR_RATE, 0.1);
    deliver(rl, T0, 4, false, RL_SOURCE_FALLBACK, RL_ERR_REDIS, 10);
    rl__metrics_evaluate(rl, T0);
    ck_assert_int_eq(log.n, 2); /* both told, from copies */
    ck_assert_str_eq(log.name[0], "denials");
    ck_assert_str_eq(log.name[1], "errors");
    ck_assert_int_eq(hub->n_alerts, 1);
    ck_assert_str_eq(hub->alerts[0].name, "later");
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_ALERTS_ACTIVE), 0);
    free_limiter(rl);
}
END_TEST

START_TEST(alert_timer_evaluates_and_never_holds_the_loop)
{
    rl_limiter *rl = new_local();
    struct alert_log log = {0};
    struct rl_metrics_hub *hub = rl__metrics_hub(rl);

    rl_alert_callback_set(rl, alert_cb, &log);
    ck_assert(!event_pending(hub->alert_ev, EV_TIMEOUT, NULL));
    ck_assert_int_eq(rl_alert_add(rl, "denials", RL_ALERT_DENIAL_RATE,
                                  0.5), RL_OK);
    ck_assert(event_pending(hub->alert_ev, EV_TIMEOUT, NULL));
    /* The only pending events are weak: dispatch returns at once. */
    ck_assert_int_eq(event_base_dispatch(base), 1);
    deliver(rl, T0, 3, false, RL_SOURCE_BACKEND, RL_OK, 10);
    th_run_for(base, 1100);
    ck_assert_int_eq(log.n, 1);
    ck_assert(log.fired[0]);
    ck_assert(event_pending(hub->alert_ev, EV_TIMEOUT, NULL));
    ck_assert_int_eq(rl_alert_remove(rl, "denials"), RL_OK);
    ck_assert(!event_pending(hub->alert_ev, EV_TIMEOUT, NULL));
    free_limiter(rl);
}
END_TEST

/* ---- health ---- */

START_TEST(health_follows_fallback_and_alerts)
{
    rl_limiter *rl = new_local();
    rl_health h;
    char name[16];
    int i;

    ck_assert_int_eq(rl_health_get(rl, &h), RL_OK);
    ck_assert_int_eq(h.status, RL_HEALTH_HEALTHY);
    ck_assert_int_eq(h.n_reasons, 0);
    ck_assert_int_eq(h.redis_state, RL_REDIS_NONE);
    ck_assert_int_eq(h.breaker_state, -1);

    deliver(rl, T0 + 10, 3, true, RL_SOURCE_BACKEND, RL_OK, 10);
    deliver(rl, T0 + 10, 1, true, RL_SOURCE_FALLBACK, RL_ERR_NOMEM, 10);
    rl__metrics_health(rl, T0 + 500, &h);
    ck_assert_int_eq(h.status, RL_HEALTH_DEGRADED);
    ck_assert_int_eq(h.n_reasons, 1);
    ck_assert_str_eq(h.reasons[0],
                     "fallback answered 1 of 4 checks in the last 1 s");
    rl__metrics_health(rl, T0 + 10999, &h);
    ck_assert_int_eq(h.status, RL_HEALTH_DEGRADED);
    rl__metrics_health(rl, T0 + 11000, &h);
    ck_assert_int_eq(h.status, RL_HEALTH_HEALTHY);

    for (i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "busy%d", i);
        ck_assert_int_eq(rl_alert_add(rl, name, RL_ALERT_CHECKS_PER_SECOND,
                                      0), RL_OK);
    }
    deliver(rl, T0 + 12000, 1, true, RL_SOURCE_BACKEND, RL_OK, 10);
    rl__metrics_evaluate(rl, T0 + 12000);
    rl__metrics_health(rl, T0 + 12000, &h);
    ck_assert_int_eq(h.status, RL_HEALTH_DEGRADED);
    ck_assert_int_eq(h.alerts_active, 10);
    ck_assert_int_eq(h.n_reasons, RL_HEALTH_REASONS_MAX);
    ck_assert_ptr_nonnull(strstr(h.reasons[0], "alert busy0"));
    ck_assert_ptr_nonnull(strstr(h.reasons[6], "alert busy6"));
    ck_assert_str_eq(h.reasons[7], "and 3 more");
    free_limiter(rl);
}
END_TEST

/* ---- the parsers ---- */

struct parsed {
    int n;
    char (*key)[256];
    char (*val)[256];
};

/* A python3 that has prometheus_client (Debian's python3 first: a python3
   earlier on PATH may lack it). */
static const char *
python(void)
{
    static const char *const cands[] = {"/usr/bin/python3", "python3"};
    static char found[256];
    char cmd[512];
    size_t i;

    if (found[0] != '\0')
        return found;
    if (getenv("PYTHON") != NULL)
        snprintf(found, sizeof(found), "%s", getenv("PYTHON"));
    for (i = 0; found[0] == '\0' && i < 2; i++) {
        snprintf(cmd, sizeof(cmd), "%s -c 'import prometheus_client' "
                 ">/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0)
            snprintf(found, sizeof(found), "%s", cands[i]);
    }
    ck_assert_msg(found[0] != '\0', "no python3 with prometheus_client: "
                  "build-aux/deps.sh installs python3-prometheus-client");
    return found;
}

static void
add_row(struct parsed *p, const char *key, const char *val)
{
    p->key = realloc(p->key, sizeof(*p->key) * (size_t)(p->n + 1));
    p->val = realloc(p->val, sizeof(*p->val) * (size_t)(p->n + 1));
    snprintf(p->key[p->n], sizeof(p->key[0]), "%.255s", key);
    snprintf(p->val[p->n], sizeof(p->val[0]), "%.255s", val);
    p->n++;
}

/* One line of prom_parse.py's output into a row: "family NAME" -> TYPE,
   "NAME LABELS" -> VALUE, or for JSON "PATH" -> VALUE. */
static void
parse_line(struct parsed *p, char *line, bool json)
{
    char *sp = strchr(line, ' '), *last;

    line[strcspn(line, "\n")] = '\0';
    ck_assert_ptr_nonnull(sp);
    if (json) {
        *sp = '\0';
        add_row(p, line, sp + 1);
        return;
    }
    last = strrchr(line, ' ');
    *last = '\0';
    if (strncmp(line, "family ", 7) == 0) {
        add_row(p, line, last + 1);
        return;
    }
    ck_assert(strncmp(line, "sample ", 7) == 0);
    add_row(p, line + 7, last + 1);
}

/* Writes text to a file and reads it back through tests/prom_parse.py. */
static void
run_parser(const char *text, bool json, struct parsed *p)
{
    char path[] = "/tmp/rl-metrics-XXXXXX", cmd[1024], line[1024];
    const char *srcdir = getenv("srcdir");
    FILE *f;
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    snprintf(cmd, sizeof(cmd), "%s %s/tests/prom_parse.py %s%s", python(),
             srcdir != NULL ? srcdir : RL_TOP_SRCDIR, json ? "--json " : "",
             path);
    f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    memset(p, 0, sizeof(*p));
    while (fgets(line, sizeof(line), f) != NULL)
        parse_line(p, line, json);
    ck_assert_msg(pclose(f) == 0, "prom_parse.py rejected:\n%s", text);
    unlink(path);
}

static const char *
lookup(const struct parsed *p, const char *key)
{
    int i;

    for (i = 0; i < p->n; i++)
        if (strcmp(p->key[i], key) == 0)
            return p->val[i];
    ck_abort_msg("%s not in the parsed output", key);
    return NULL;
}

static double
lookup_num(const struct parsed *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static double
lookup_num(const struct parsed *p, const char *fmt, ...)
{
    char key[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(key, sizeof(key), fmt, ap);
    va_end(ap);
    return strtod(lookup(p, key), NULL);
}

static void
parsed_free(struct parsed *p)
{
    free(p->key);
    free(p->val);
}

static char *
export_text(rl_limiter *rl, bool json)
{
    struct evbuffer *b = evbuffer_new();
    size_t n;
    char *s;

    ck_assert_int_eq(json ? rl_metrics_json(rl, b)
                          : rl_metrics_prometheus(rl, b), RL_OK);
    n = evbuffer_get_length(b);
    s = malloc(n + 1);
    evbuffer_copyout(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

/* A limiter with some of everything: real checks, deliveries of every
   source with known latencies, an active alert. */
static const int64_t lat_backend[] = {1, 3, 900, 1024, 1500, 70000};
static const int64_t lat_fallback[] = {250000, 90000000};

static rl_limiter *
busy_limiter(void)
{
    rl_limiter *rl = new_local();
    struct th_rec rec[3];
    size_t i;

    memset(rec, 0, sizeof(rec));
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(rl_check_async(rl, "k", 2, 1000, th_check_cb,
                                        &rec[i]), RL_OK);
    ck_assert_int_eq(rl_check_async(rl, "", 2, 1000, th_check_cb, NULL),
                     RL_ERR_INVALID);
    th_drain(base);
    for (i = 0; i < sizeof(lat_backend) / sizeof(lat_backend[0]); i++)
        deliver(rl, T0 + 200, 1, i % 2 == 0, RL_SOURCE_BACKEND, RL_OK,
                lat_backend[i]);
    deliver(rl, T0 + 300, 1, true, RL_SOURCE_FALLBACK, RL_ERR_REDIS,
            lat_fallback[0]);
    deliver(rl, T0 + 300, 1, false, RL_SOURCE_FALLBACK, RL_ERR_TIMEOUT,
            lat_fallback[1]);
    ck_assert_int_eq(rl_alert_add(rl, "deny \"wall\"", RL_ALERT_DENIAL_RATE,
                                  0.25), RL_OK);
    ck_assert_int_eq(rl_alert_add(rl, "quiet", RL_ALERT_ERROR_RATE, 0.9),
                     RL_OK);
    rl__metrics_evaluate(rl, T0 + 400);
    now = T0 + 400;
    return rl;
}

static const char *const source_label[] = {"backend", "cache", "fallback"};
static const char *const status_label[] = {
    "invalid", "nomem", "redis", "timeout", "circuit_open", "overload",
    "shutdown", "protocol"};

static void
check_prom_counters(const struct parsed *p, const rl_metrics *m)
{
    const char *name;
    int s, i, id;

    ck_assert_str_eq(lookup(p, "family ratelimit_checks"), "counter");
    for (s = 0; s < 3; s++)
        for (i = 0; i < 2; i++)
            ck_assert_double_eq(lookup_num(p, "ratelimit_checks_total "
                                           "result=%s,source=%s",
                                           i ? "denied" : "allowed",
                                           source_label[s]),
                                m->values[RL_METRIC_ALLOWED_BACKEND +
                                          2 * s + i]);
    for (i = 0; i < 8; i++)
        ck_assert_double_eq(lookup_num(p, "ratelimit_check_errors_total "
                                       "status=%s", status_label[i]),
                            m->values[RL_METRIC_STATUS_INVALID + i]);
    ck_assert_double_eq(lookup_num(p, "ratelimit_checks_accepted_total -"),
                        m->values[RL_METRIC_CHECKS_TOTAL]);
    for (id = RL_METRIC_REFUSED; id < RL_METRIC_COUNT_; id++) {
        name = rl_metric_name(id);
        if (id >= RL_METRIC_ALLOWED_BACKEND &&
            id <= RL_METRIC_STATUS_PROTOCOL)
            continue;
        ck_assert_double_eq(lookup_num(p, "ratelimit_%s -", name),
                            m->values[id]);
    }
    ck_assert_str_eq(lookup(p, "family ratelimit_pending"), "gauge");
    ck_assert_str_eq(lookup(p, "family ratelimit_resets"), "counter");
}

/* Buckets of one source against the latencies it was given. */
static void
check_prom_histogram(const struct parsed *p, const rl_metrics *m, int s,
                     const int64_t *lat, int n)
{
    const rl_latency *l = &m->latency_by_source[s];
    char le[32];
    int k, i, want;
    size_t z;

    ck_assert_double_eq(lookup_num(p, "ratelimit_check_duration_seconds_"
                                   "count source=%s", source_label[s]),
                        l->count);
    ck_assert_double_eq_tol(lookup_num(p, "ratelimit_check_duration_"
                                       "seconds_sum source=%s",
                                       source_label[s]),
                            (double)l->sum_us / 1e6, 1e-9);
    for (k = 0; k <= 25; k++) {
        snprintf(le, sizeof(le), "%d.%06d", (1 << k) / 1000000,
                 (1 << k) % 1000000);
        for (z = strlen(le); le[z - 1] == '0'; z--)
            le[z - 1] = '\0'; /* 2^k us is never whole seconds */
        for (want = 0, i = 0; i < n; i++)
            want += lat[i] < (1 << k);
        ck_assert_double_eq(lookup_num(p, "ratelimit_check_duration_"
                                       "seconds_bucket le=%s,source=%s",
                                       le, source_label[s]), want);
    }
    ck_assert_double_eq(lookup_num(p, "ratelimit_check_duration_seconds_"
                                   "bucket le=+Inf,source=%s",
                                   source_label[s]), l->count);
}

START_TEST(prometheus_read_by_prometheus_client)
{
    rl_limiter *rl = busy_limiter();
    struct parsed p;
    rl_metrics m;
    rl_health h;
    char *text;

    ck_assert_int_eq(rl_metrics_get(rl, &m), RL_OK);
    ck_assert_int_eq(rl_health_get(rl, &h), RL_OK);
    text = export_text(rl, false);
    run_parser(text, false, &p);
    check_prom_counters(&p, &m);
    ck_assert_str_eq(lookup(&p, "family ratelimit_check_duration_seconds"),
                     "histogram");
    /* the real checks are recorded too when the hooks are in: they took
       under a second, less than 2^25 us, but maybe over 1 us */
    check_prom_histogram(&p, &m, RL_SOURCE_FALLBACK, lat_fallback, 2);
    check_prom_histogram(&p, &m, RL_SOURCE_CACHE, NULL, 0);
    ck_assert_double_eq(lookup_num(&p, "ratelimit_check_duration_seconds_"
                                   "bucket le=33.554432,source=fallback"),
                        1);  /* 90 s, clamped to 60.8 s: only +Inf */
    ck_assert_double_eq_tol(lookup_num(&p, "ratelimit_denial_rate -"),
                            m.rates.denial_rate, 1e-12);
    ck_assert_double_eq_tol(lookup_num(&p, "ratelimit_error_rate -"),
                            m.rates.error_rate, 1e-12);
    ck_assert_double_eq_tol(lookup_num(&p, "ratelimit_fallback_rate -"),
                            m.rates.fallback_rate, 1e-12);
    ck_assert_double_eq_tol(lookup_num(&p, "ratelimit_checks_per_second -"),
                            m.rates.checks_per_second, 1e-9);
    ck_assert_double_eq(lookup_num(&p, "ratelimit_health_status -"),
                        h.status);
    ck_assert_int_eq(h.status, RL_HEALTH_DEGRADED);
    ck_assert_double_eq(lookup_num(&p, "ratelimit_alert_active "
                                   "alert=deny \"wall\",metric=denial_rate"),
                        1);
    ck_assert_double_eq(lookup_num(&p, "ratelimit_alert_active "
                                   "alert=quiet,metric=error_rate"), 0);
    parsed_free(&p);
    free(text);
    free_limiter(rl);
}
END_TEST

static void
check_json_latency(const struct parsed *p, const char *name,
                   const rl_latency *l)
{
    ck_assert_double_eq(lookup_num(p, "latency.%s.count", name), l->count);
    ck_assert_double_eq(lookup_num(p, "latency.%s.sum_us", name),
                        l->sum_us);
    ck_assert_double_eq(lookup_num(p, "latency.%s.min_us", name),
                        l->min_us);
    ck_assert_double_eq(lookup_num(p, "latency.%s.max_us", name),
                        l->max_us);
    ck_assert_double_eq(lookup_num(p, "latency.%s.p50_us", name),
                        l->p50_us);
    ck_assert_double_eq(lookup_num(p, "latency.%s.p90_us", name),
                        l->p90_us);
    ck_assert_double_eq(lookup_num(p, "latency.%s.p99_us", name),
                        l->p99_us);
    ck_assert_double_eq(lookup_num(p, "latency.%s.p999_us", name),
                        l->p999_us);
    ck_assert_double_eq(lookup_num(p, "latency.%s.clamped", name),
                        l->clamped);
}

START_TEST(json_read_by_python)
{
    rl_limiter *rl = busy_limiter();
    struct parsed p;
    rl_metrics m;
    rl_health h;
    char *text;
    int i;

    ck_assert_int_eq(rl_metrics_get(rl, &m), RL_OK);
    ck_assert_int_eq(rl_health_get(rl, &h), RL_OK);
    text = export_text(rl, true);
    run_parser(text, true, &p);
    for (i = 0; i < RL_METRIC_COUNT_; i++)
        ck_assert_double_eq(lookup_num(&p, "values.%s", rl_metric_name(i)),
                            m.values[i]);
    check_json_latency(&p, "all", &m.latency);
    for (i = 0; i < 3; i++)
        check_json_latency(&p, source_label[i], &m.latency_by_source[i]);
    ck_assert_int_eq(m.latency_by_source[RL_SOURCE_FALLBACK].clamped, 1);
    ck_assert_str_eq(lookup(&p, "latency_enabled"), "true");
    ck_assert_double_eq(lookup_num(&p, "rates.checks"), m.rates.checks);
    ck_assert_double_eq(lookup_num(&p, "rates.window_ms"),
                        m.rates.window_ms);
    ck_assert_double_eq(lookup_num(&p, "rates.denial_rate"),
                        m.rates.denial_rate);
    ck_assert_double_eq(lookup_num(&p, "rates.latency_p99_ms"),
                        m.rates.latency_p99_ms);
    ck_assert_str_eq(lookup(&p, "health.status"), "degraded");
    ck_assert_double_eq(lookup_num(&p, "health.reasons.length"),
                        h.n_reasons);
    ck_assert_str_eq(lookup(&p, "health.reasons.0"), h.reasons[0]);
    ck_assert_double_eq(lookup_num(&p, "alerts.length"), 2);
    ck_assert_str_eq(lookup(&p, "alerts.0.name"), "deny \"wall\"");
    ck_assert_str_eq(lookup(&p, "alerts.0.active"), "true");
    ck_assert_str_eq(lookup(&p, "alerts.1.metric"), "error_rate");
    ck_assert_str_eq(lookup(&p, "alerts.1.active"), "false");
    parsed_free(&p);
    free(text);
    free_limiter(rl);
}
END_TEST

/* ---- the report ---- */

START_TEST(report_lines_at_the_interval)
{
    struct th_log log = {{0}, 0};
    struct th_rec rec = {0};
    rl_limiter *rl;
    rl_config cfg;

    th_local_config(&cfg, RL_FIXED_WINDOW, &now);
    cfg.log_cb = th_log_cb;
    cfg.log_arg = &log;
    cfg.log_level = RL_LOG_INFO;
    rl = new_limiter(&cfg);
    ck_assert_int_eq(rl_check_async(rl, "user:secret-key-4711", 5, 1000,
                                    th_check_cb, &rec), RL_OK);
    th_drain(base);
    ck_assert_int_eq(rl_metrics_report_every(rl, 40), RL_OK);
    ck_assert_int_eq(event_base_dispatch(base), 1); /* weak timer */
    log.text[0] = '\0';
    log.lines = 0;
    th_run_for(base, 150);
    ck_assert_int_ge(log.lines, 2);
    ck_assert_int_le(log.lines, 4);
    ck_assert(strncmp(log.text, "metrics: last ", 14) == 0);
    ck_assert_ptr_nonnull(strstr(log.text, "total 1 checks"));
    ck_assert_ptr_null(strstr(log.text, "secret"));
    ck_assert_int_eq(rl_metrics_report_every(rl, 0), RL_OK);
    log.lines = 0;
    th_run_for(base, 100);
    ck_assert_int_eq(log.lines, 0);
    free_limiter(rl);
}
END_TEST

/* ---- end to end, through the request path's hooks ---- */

START_TEST(counts_match_what_was_done)
{
    rl_limiter *rl = new_local();
    struct th_rec rec[9];
    rl_metrics m;
    int i, allowed = 0;

    memset(rec, 0, sizeof(rec));
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(rl_check_async(rl, "a", 3, 1000, th_check_cb,
                                        &rec[i]), RL_OK);
    for (i = 5; i < 7; i++)
        ck_assert_int_eq(rl_check_async(rl, "b", 3, 1000, th_check_cb,
                                        &rec[i]), RL_OK);
    ck_assert_int_eq(rl_check_async(rl, "", 3, 1000, th_check_cb, NULL),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_async(rl, "c", 0, 1000, th_check_cb, NULL),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_check_async(rl, "c", 3, 1000, NULL, NULL),
                     RL_ERR_INVALID);
    ck_assert_int_eq(rl_metrics_get(rl, &m), RL_OK);
    ck_assert_int_eq(m.values[RL_METRIC_PENDING], 7);
    ck_assert_int_eq(m.rates.checks, 0);
    th_drain(base);
    for (i = 0; i < 7; i++) {
        ck_assert_int_eq(rec[i].calls, 1);
        allowed += rec[i].r.allowed;
    }
    ck_assert_int_eq(allowed, 5);
    ck_assert_int_eq(rl_metrics_get(rl, &m), RL_OK);
    ck_assert_int_eq(m.values[RL_METRIC_CHECKS_TOTAL], 7);
    ck_assert_int_eq(m.values[RL_METRIC_REFUSED], 3);
    ck_assert_int_eq(m.values[RL_METRIC_PENDING], 0);
    ck_assert_int_eq(m.values[RL_METRIC_ALLOWED], 5);
    ck_assert_int_eq(m.values[RL_METRIC_DENIED], 2);
    ck_assert_int_eq(m.values[RL_METRIC_ALLOWED_BACKEND], 5);
    ck_assert_int_eq(m.values[RL_METRIC_DENIED_BACKEND], 2);
    for (i = RL_METRIC_ALLOWED_CACHE; i <= RL_METRIC_STATUS_PROTOCOL; i++)
        ck_assert_int_eq(m.values[i], 0);
    ck_assert_int_eq(m.values[RL_METRIC_LOCAL_KEYS], 2);
    ck_assert_int_eq(m.latency.count, 7);
    ck_assert_int_eq(m.latency_by_source[RL_SOURCE_BACKEND].count, 7);
    ck_assert_int_lt(m.latency.max_us, 1000000);
    ck_assert_int_le(m.latency.min_us, m.latency.p50_us);
    ck_assert_int_eq(m.rates.checks, 7);
    ck_assert_int_eq(m.rates.denied, 2);

    rl_metrics_enable(rl, false);
    ck_assert_int_eq(rl_check_async(rl, "b", 3, 1000, th_check_cb,
                                    &rec[7]), RL_OK);
    ck_assert_int_eq(rl_check_async(rl, "b", 3, 1000, th_check_cb,
                                    &rec[8]), RL_OK);
    th_drain(base);
    ck_assert_int_eq(rl_metrics_get(rl, &m), RL_OK);
    ck_assert_int_eq(m.values[RL_METRIC_ALLOWED_BACKEND], 6);
    ck_assert_int_eq(m.values[RL_METRIC_DENIED_BACKEND], 3);
    ck_assert_int_eq(m.latency.count, 7);
    free_limiter(rl);
}
END_TEST

/* Real checks at explicit times: the window follows the test's clock. */
START_TEST(rates_of_real_checks)
{
    rl_limiter *rl = new_local();
    struct th_rec rec[5];
    struct alert_log log = {0};
    rl_metrics m;
    int i;

    memset(rec, 0, sizeof(rec));
    rl_alert_callback_set(rl, alert_cb, &log);
    rl_alert_add(rl, "denials", RL_ALERT_DENIAL_RATE, 0.4);
    for (i = 0; i < 4; i++)
        rl_check_async(rl, "k", 2, 60000, th_check_cb, &rec[i]);
    th_drain(base);
    rl__metrics_evaluate(rl, now);     /* 2 of 4 denied */
    ck_assert_int_eq(log.n, 1);
    now = T0 + 5000;
    rl_check_async(rl, "other", 100, 60000, th_check_cb, &rec[4]);
    th_drain(base);
    ck_assert_int_eq(rl_metrics_get(rl, &m), RL_OK);
    ck_assert_int_eq(m.rates.checks, 5);
    ck_assert_int_eq(m.rates.denied, 2);
    rl__metrics_evaluate(rl, now);     /* 0.4: in the band */
    ck_assert_int_eq(log.n, 1);
    now = T0 + 11000;
    ck_assert_int_eq(rl_metrics_get(rl, &m), RL_OK);
    ck_assert_int_eq(m.rates.checks, 1);
    ck_assert_int_eq(m.rates.denied, 0);
    rl__metrics_evaluate(rl, now);
    ck_assert_int_eq(log.n, 2);
    ck_assert(!log.fired[1]);
    free_limiter(rl);
}
END_TEST

START_TEST(rl_free_inside_an_alert_callback)
{
    rl_limiter *rl = new_local();
    struct alert_log log = {0};
    struct th_rec rec = {0};

    log.rl = rl;
    log.free_rl = true;
    rl_alert_callback_set(rl, alert_cb, &log);
    rl_alert_add(rl, "a", RL_ALERT_CHECKS_PER_SECOND, 0);
    rl_alert_add(rl, "b", RL_ALERT_CHECKS_PER_SECOND, 0);
    rl_check_async(rl, "k", 5, 1000, th_check_cb, &rec);
    th_drain(base);
    rl__metrics_evaluate(rl, now + 500);
    ck_assert_int_eq(log.n, 1);        /* no callback after rl_free */
    th_drain(base);                    /* the tick frees it */
    ck_assert_int_eq(event_base_dispatch(base), 1);
}
END_TEST

/* The Redis backend with no server: fallback answers, counted by status;
   the breaker opens and the limiter is unhealthy. */
START_TEST(redis_down_is_unhealthy)
{
    struct th_rec rec[3];
    rl_limiter *rl;
    rl_config cfg;
    rl_metrics m;
    rl_health h;
    int i, done = 0;

    rl_config_init(&cfg);
    cfg.redis.url = "unix:///nonexistent/rl-test-metrics.sock";
    cfg.redis.command_timeout_ms = 100;
    cfg.circuit_breaker.enabled = true;
    cfg.circuit_breaker.failure_threshold = 1;
    cfg.log_level = RL_LOG_NONE;
    rl = new_limiter(&cfg);
    memset(rec, 0, sizeof(rec));
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(rl_check_async(rl, "k", 5, 1000, th_check_cb,
                                        &rec[i]), RL_OK);
    for (i = 0; i < 3; i++) {
        ck_assert(th_wait_for(base, &rec[i].calls, 1, 2000));
        done++;
        ck_assert_int_eq(rec[i].r.source, RL_SOURCE_FALLBACK);
        ck_assert_int_ne(rec[i].r.status, RL_OK);
    }
    ck_assert_int_eq(rl_metrics_get(rl, &m), RL_OK);
    ck_assert_int_eq(m.values[RL_METRIC_ALLOWED_FALLBACK], done);
    ck_assert_int_eq(m.values[RL_METRIC_STATUS_REDIS] +
                     m.values[RL_METRIC_STATUS_TIMEOUT] +
                     m.values[RL_METRIC_STATUS_CIRCUIT_OPEN], done);
    ck_assert_int_eq(m.rates.fallback, done);
    ck_assert_double_eq(m.rates.fallback_rate, 1);
    ck_assert_int_eq(rl_health_get(rl, &h), RL_OK);
    ck_assert_int_eq(h.status, RL_HEALTH_UNHEALTHY);
    ck_assert_int_eq(h.breaker_state, RL_BREAKER_OPEN);
    ck_assert_ptr_nonnull(strstr(h.reasons[0], "circuit breaker open"));
    ck_assert_ptr_nonnull(strstr(h.reasons[h.n_reasons - 1], "fallback "
                                 "answered 3 of 3 checks"));
    rl_free(rl);
}
END_TEST

static Suite *
metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, names_and_ids);
    tcase_add_test(tc, bad_arguments_are_refused);
    tcase_add_test(tc, counters_by_result_source_and_status);
    tcase_add_test(tc, rates_slide_with_the_clock);
    tcase_add_test(tc, window_latency);
    tcase_add_test(tc, disabled_latency_keeps_counting);
    tcase_add_test(tc, denial_alert_fires_and_clears_with_hysteresis);
    tcase_add_test(tc, latency_and_volume_alerts);
    tcase_add_test(tc, callbacks_may_change_the_alerts);
    tcase_add_test(tc, alert_timer_evaluates_and_never_holds_the_loop);
    tcase_add_test(tc, health_follows_fallback_and_alerts);
    tcase_add_test(tc, prometheus_read_by_prometheus_client);
    tcase_add_test(tc, json_read_by_python);
    tcase_add_test(tc, report_lines_at_the_interval);
    tcase_add_test(tc, counts_match_what_was_done);
    tcase_add_test(tc, rates_of_real_checks);
    tcase_add_test(tc, rl_free_inside_an_alert_callback);
    tcase_add_test(tc, redis_down_is_unhealthy);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return th_run_suite(metrics_suite(), CK_NORMAL);
}
