/*
 * metrics.h: the metrics hub (metrics.c, metrics_export.c): what the
 * library records about every check beyond the counters of rl_counters,
 * and the hooks through which the request path feeds it.
 *
 * Hooks, in the order a request meets them:
 *   rl_new       rl__metrics_init         the hub, with the limiter
 *   rl__req_deliver, before its loop:
 *                rl__metrics_deliver_begin  one clock read per drain;
 *                                           rotates the window's slots
 *   rl__req_deliver, per request, before its callback:
 *                rl__metrics_record       counters by (result, source)
 *                                         and status; the latency
 *   limiter_destroy rl__metrics_destroy
 *
 * Counting at delivery, after the rotation of the drain, puts every check
 * in the second it was delivered in; the window needs no work per check:
 * each slot is a copy of the cumulative counts and latency histogram when
 * its second began, and a rate is the difference between now and the
 * oldest slot.
 */
#ifndef RL_METRICS_H
#define RL_METRICS_H

#include "histogram.h"
#include "rl_private.h"

#define RL_WIN_SLOTS 11            /* 10 whole seconds and the current */
#define RL_ALERT_EVAL_MS 1000      /* alerts are evaluated this often */
#define RL_ALERT_CLEAR_PCT 90      /* an alert clears at or below this
                                      percentage of its threshold */

/* Checks delivered so far (from rl_counters), as the window counts them. */
struct rl_win_counts {
    int64_t checks, denied, errors, fallback;
};

/* The cumulative counts when a second of the window began. */
struct rl_win_slot {
    int64_t sec;                   /* ms / 1000 of that second; INT64_MIN:
                                      unused */
    int64_t at_ms;                 /* when the counts held: the second's
                                      start, or the hub's creation */
    struct rl_win_counts n;
    struct rl_hist lat;            /* every source merged */
};

struct rl_alert {
    char name[RL_ALERT_NAME_MAX + 1];
    int metric;                    /* rl_alert_metric */
    double threshold;
    double value;                  /* at the last evaluation */
    bool active;
};

struct rl_metrics_hub {
    int64_t now_ns;                /* monotonic, when the drain began */
    bool enabled;                  /* latency recording */
    struct rl_hist lat[3];         /* by rl_source, since rl_new */
    struct rl_win_slot win[RL_WIN_SLOTS];
    int cur;                       /* the newest slot */
    struct rl_hist scratch;        /* a working copy, off the stack */

    struct rl_alert alerts[RL_ALERTS_MAX];
    int n_alerts;
    rl_alert_cb alert_cb;
    void *alert_arg;
    struct event *alert_ev;        /* weak; armed while alerts exist */

    struct event *report_ev;       /* weak; armed while reporting */
    int64_t report_ms;
};

/* ---- the hub of a limiter ---- */

/* The hub of a limiter (rl_private.h: struct rl_limiter.hub). */
static inline struct rl_metrics_hub *
rl__metrics_hub(const struct rl_limiter *rl)
{
    return rl->hub;
}

/* ---- hooks ---- */

/* Creates the hub (RL_OK or RL_ERR_NOMEM); rl->cfg and rl->base set. */
int rl__metrics_init(struct rl_limiter *rl);
/* Stops the hub's timers and frees it; no hub is fine. */
void rl__metrics_destroy(struct rl_limiter *rl);
/* Before the callbacks of done_q run: the time of this drain. */
void rl__metrics_deliver_begin(struct rl_limiter *rl);
/* Counts a delivered check with a non-OK status (the cold part of
   rl__metrics_record). */
void rl__metrics_status(struct rl_limiter *rl, int status);

/*
 * A request is being delivered: counts a check by (result, source) and
 * status, and records its latency (submit to this drain, rounded to the
 * microsecond).  Resets are not counted here.  The limiter must have its
 * hub (rl__metrics_init succeeded, as rl_new makes sure).
 */
static inline void
rl__metrics_record(struct rl_limiter *rl, const struct rl_req *req)
{
    struct rl_metrics_hub *hub = rl__metrics_hub(rl);
    unsigned src = (unsigned)req->res.source;
    int status = req->res.status;
    int64_t ns = hub->now_ns - req->submit_ns;

    /* Read before the counter's store, which the compiler must assume
       could change them. */
    if (req->op != RL_OP_CHECK || src > RL_SOURCE_FALLBACK)
        return;
    rl->ctr.v[RL_METRIC_ALLOWED_BACKEND + 2 * src + !req->res.allowed]++;
    if (status != RL_OK)
        rl__metrics_status(rl, status);
    if (hub->enabled)
        rl__hist_record(&hub->lat[src],
                        ns > 0 ? ((uint64_t)ns + 500) / 1000 : 0);
}

/* ---- reading (metrics.c) ---- */

/* The window's rates at now_ms (the slots are rotated to it first). */
void rl__metrics_rates(struct rl_limiter *rl, int64_t now_ms,
                       rl_rates *out);

/* rl_metrics_get at an explicit time.  RL_OK or RL_ERR_INVALID. */
int rl__metrics_snapshot(struct rl_limiter *rl, int64_t now_ms,
                         rl_metrics *out);

/* The latency histogram since rl_new of one source, or of all merged
   (source < 0), into *out. */
void rl__metrics_hist(const struct rl_metrics_hub *hub, int source,
                      struct rl_hist *out);

/* Summarises a histogram into the public figures. */
void rl__metrics_latency_of(const struct rl_hist *h, rl_latency *out);

/*
 * Evaluates every alert at now_ms: fires those above their threshold,
 * clears those at or below 90% of it, tells the callback and the log.
 * The alert timer calls it once a second; tests call it with explicit
 * times.
 */
void rl__metrics_evaluate(struct rl_limiter *rl, int64_t now_ms);

/* The periodic report's timer (metrics_export.c), arg the limiter. */
void rl__metrics_report_cb(int fd, short what, void *arg);

/* rl_health_get at an explicit time. */
void rl__metrics_health(struct rl_limiter *rl, int64_t now_ms,
                        rl_health *out);

/*
 * The state of the connection to Redis (rl_redis_state), provided by the
 * Redis backend: RL_REDIS_NONE for the local backend.  metrics.c holds a
 * weak stand-in that answers -1 (not known) for the Redis backend, so the
 * library links before the backend defines it and the backend's
 * definition replaces it.
 */
extern int rl__redis_conn_state(const struct rl_limiter *rl);

#endif /* RL_METRICS_H */
