/*
 * breaker_loop.c: the circuit breaker (breaker.c, a pure state machine)
 * on the event loop, in front of Redis.
 *
 * Each check sent towards Redis takes a ticket from the breaker when it is
 * submitted; a refused one is answered at once by the fallback with
 * RL_ERR_CIRCUIT_OPEN and never touches Redis.  The outcome of every
 * ticket is recorded exactly once, in the one completion path
 * (rl__req_complete): success for any decision from Redis (a denial
 * included), failure for an error reply, a timeout, a disconnect or a
 * malformed reply; a shutdown gives the ticket back.  One timer, armed only
 * while the breaker is open, moves it to half-open.  Changes of state are
 * logged, counted, and handed to the user's callback from the tick event,
 * never from inside the call that caused them.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "breaker_loop.h"

#define PENDING_MAX 16

struct rl_brk_loop {
    struct rl_breaker b;
    struct event *ev;             /* open -> half-open deadline */
    struct {
        rl_breaker_state from, to;
        char reason[96];
    } pending[PENDING_MAX];       /* changes not yet told to the user */
    int n_pending;
};

static int64_t
mono_ms(void)
{
    return rl__mono_ns() / 1000000;
}

/* ---- transitions ---- */

static void
arm(struct rl_limiter *rl)
{
    struct rl_brk_loop *bl = rl->brk;
    int64_t at = rl__breaker_next_deadline(&bl->b), wait;
    struct timeval tv;

    event_del(bl->ev);
    if (at < 0)
        return;
    wait = at - mono_ms();
    if (wait < 0)
        wait = 0;
    tv.tv_sec = (time_t)(wait / 1000);
    tv.tv_usec = (suseconds_t)((wait % 1000) * 1000);
    event_add(bl->ev, &tv);
}

static void
on_transition(enum rl_brk_state from, enum rl_brk_state to,
              const char *reason, void *arg)
{
    struct rl_limiter *rl = arg;
    struct rl_brk_loop *bl = rl->brk;
    int i = bl->n_pending;

    rl->ctr.v[RL_METRIC_BREAKER_TRANSITIONS]++;
    rl->ctr.v[RL_METRIC_BREAKER_STATE] = (int64_t)to;
    if (to == RL_BRK_OPEN && strncmp(reason, "forced", 6) != 0)
        rl->ctr.v[RL_METRIC_BREAKER_TRIPS]++;
    rl__log(rl, to == RL_BRK_OPEN ? RL_LOG_WARN : RL_LOG_INFO,
            "circuit breaker %s -> %s: %s", rl__breaker_state_name(from),
            rl__breaker_state_name(to), reason);
    if (rl->cfg.circuit_breaker.on_change == NULL)
        return;
    if (i == PENDING_MAX) /* the user is told the latest changes */
        memmove(bl->pending, bl->pending + 1, sizeof(bl->pending[0]) * --i);
    bl->pending[i].from = (rl_breaker_state)from;
    bl->pending[i].to = (rl_breaker_state)to;
    snprintf(bl->pending[i].reason, sizeof(bl->pending[i].reason), "%s",
             reason);
    bl->n_pending = i + 1;
    rl__tick_arm(rl);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rl_limiter *rl = arg;

    (void)fd;
    (void)what;
    rl__breaker_tick(&rl->brk->b, mono_ms());
    arm(rl);
}

void
rl__brk_server_back(struct rl_limiter *rl)
{
    if (rl->brk == NULL)
        return;
    rl__breaker_server_back(&rl->brk->b);
    arm(rl);
}

void
rl__brk_notify(struct rl_limiter *rl)
{
    struct rl_brk_loop *bl = rl->brk;
    const rl_breaker_config *c = &rl->cfg.circuit_breaker;
    int i, n;

    if (bl == NULL || bl->n_pending == 0)
        return;
    n = bl->n_pending;
    bl->n_pending = 0;
    rl->in_callback++;
    for (i = 0; i < n && !rl->freeing; i++)
        c->on_change(bl->pending[i].from, bl->pending[i].to,
                     bl->pending[i].reason, c->on_change_arg);
    rl->in_callback--;
}

/* ---- life ---- */

static void
params_of(const rl_breaker_config *c, struct rl_breaker_params *p)
{
    rl__breaker_params_init(p);
    p->failure_threshold = c->failure_threshold;
    p->recovery_timeout_ms = c->recovery_timeout_ms;
    p->max_recovery_timeout_ms = c->max_recovery_timeout_ms;
    p->half_open_probes = c->half_open_probes;
    p->window_size = c->window_size;
    p->minimum_calls = c->minimum_calls;
    p->failure_rate_pct = c->failure_rate_pct;
    p->slow_call_rate_pct = c->slow_call_rate_pct;
    p->slow_call_ms = c->slow_call_ms;
}

int
rl__brk_init(struct rl_limiter *rl)
{
    struct rl_breaker_params p;
    struct rl_brk_loop *bl;

    if (!rl->cfg.circuit_breaker.enabled)
        return RL_OK;
    params_of(&rl->cfg.circuit_breaker, &p);
    if (rl__breaker_params_validate(&p) != RL_OK) {
        rl__log(rl, RL_LOG_ERROR, "circuit_breaker: a setting is out of "
                "range (minimum_calls must not exceed window_size)");
        return RL_ERR_INVALID;
    }
    bl = calloc(1, sizeof(*bl));
    if (bl == NULL)
        return RL_ERR_NOMEM;
    rl->brk = bl;
    bl->ev = evtimer_new(rl->base, deadline_cb, rl);
    if (bl->ev == NULL)
        return RL_ERR_NOMEM;
    return rl__breaker_init(&bl->b, &p, on_transition, rl);
}

void
rl__brk_destroy(struct rl_limiter *rl)
{
    if (rl->brk == NULL)
        return;
    if (rl->brk->ev != NULL)
        event_free(rl->brk->ev);
    free(rl->brk);
    rl->brk = NULL;
}

/* ---- per check ---- */

bool
rl__brk_admit(struct rl_req *req)
{
    struct rl_limiter *rl = req->rl;

    req->ticket = rl__breaker_allow(&rl->brk->b, mono_ms());
    if (req->ticket != RL_BRK_REFUSED) {
        if (rl__breaker_state(&rl->brk->b) == RL_BRK_HALF_OPEN)
            event_del(rl->brk->ev);
        return true;
    }
    rl->ctr.v[RL_METRIC_BREAKER_REFUSED]++;
    return false;
}

void
rl__brk_record(struct rl_req *req, int status)
{
    struct rl_limiter *rl = req->rl;
    uint64_t ticket = req->ticket;

    req->ticket = 0;
    if (status == RL_ERR_SHUTDOWN || status == RL_ERR_NOMEM) {
        rl__breaker_cancel(&rl->brk->b, ticket);
        return;
    }
    rl__breaker_record(&rl->brk->b, ticket, status == RL_OK,
                       (rl__mono_ns() - req->submit_ns) / 1000000,
                       mono_ms());
    arm(rl);
}

/* ---- the public surface ---- */

RL_EXTERN int
rl_breaker_get(const rl_limiter *rl, rl_breaker_state *out)
{
    if (rl == NULL || out == NULL || rl->brk == NULL)
        return RL_ERR_INVALID;
    *out = (rl_breaker_state)rl__breaker_state(&rl->brk->b);
    return RL_OK;
}

RL_EXTERN int
rl_breaker_force(rl_limiter *rl, rl_breaker_mode mode)
{
    int rc;

    if (rl == NULL || rl->brk == NULL)
        return RL_ERR_INVALID;
    rc = rl__breaker_force(&rl->brk->b, (int)mode, mono_ms());
    if (rc == RL_OK)
        arm(rl);
    return rc;
}
