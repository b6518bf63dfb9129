/*
 * conn.c: one connection to one Redis server, with hiredis 0.14.1's async
 * API on the user's event_base.
 *
 * Life of a connection: CONNECTING (TCP connect, then the handshake:
 * AUTH, SELECT, SCRIPT LOAD, all pipelined at once) -> READY (checks flow)
 * -> on any failure BACKOFF (a timer reconnects after an exponential,
 * jittered, bounded delay) -> CONNECTING ...  A connect timeout (ours:
 * hiredis 0.14 has none for async contexts) bounds CONNECTING.
 *
 * hiredis 0.14.1 frees the context itself after a failed connect (after
 * our connect callback) and after a disconnect (after our disconnect
 * callback), and runs every pending reply callback with a NULL reply when
 * it frees.  So: the pointer is dropped in those callbacks, never freed
 * there; a context we give up on is freed with redisAsyncFree outside of
 * its own connect callback; and callbacks of a context that is no longer
 * c->ac are recognised as stale and ignored.
 *
 * A new context builds its replies with reply.c's functions (the same
 * redisReply trees, in one allocation per array).
 *
 * An outage is logged once when it starts and once when it ends; the
 * password never appears in a log line.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>

#include "breaker_loop.h"
#include "redis.h"
#include "reply.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

static void conn_attempt(struct rl_conn *c);

/* ---- helpers ---- */

static void
timer_add_ms(struct event *ev, int64_t ms)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    event_add(ev, &tv);
}

static const char *
node_name(const struct rl_node *n, char *buf, size_t len)
{
    if (n->unix_path != NULL)
        snprintf(buf, len, "unix:%s", n->unix_path);
    else
        snprintf(buf, len, "%s:%d", n->host, n->port);
    return buf;
}

/* Full jitter in [backoff/2, backoff]; backoff doubles up to the cap. */
static int64_t
next_backoff(struct rl_conn *c)
{
    struct rl_limiter *rl = c->node->rl;
    int64_t b = c->backoff_ms;

    c->backoff_ms = b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
    rl->rng ^= rl->rng << 13;
    rl->rng ^= rl->rng >> 7;
    rl->rng ^= rl->rng << 17;
    return b / 2 + (int64_t)(rl->rng % (uint64_t)(b / 2 + 1));
}

/* ---- failure and back-off ---- */

/*
 * The attempt or the connection failed: forget the context (freeing it
 * when we still own it), fail what waits, and schedule a reconnect.
 */
static void
conn_down(struct rl_conn *c, const char *why, bool free_ctx)
{
    struct rl_limiter *rl = c->node->rl;
    redisAsyncContext *ac = c->ac;
    char name[300];

    c->ac = NULL;
    event_del(c->connect_ev);
    if (c->state == RL_CONN_CLOSED)
        return;
    c->state = RL_CONN_BACKOFF;
    c->failures++;
    if (!c->logged_down) {
        c->logged_down = true;
        rl__log(rl, RL_LOG_ERROR, "redis %s: %s; retrying in the background",
                node_name(c->node, name, sizeof(name)), why);
    }
    if (free_ctx && ac != NULL) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    rl__node_down(c->node, RL_ERR_REDIS);
    timer_add_ms(c->retry_ev, next_backoff(c));
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rl_conn *c = arg;

    (void)fd;
    (void)what;
    c->node->rl->ctr.v[RL_METRIC_REDIS_RECONNECTS]++;
    conn_attempt(c);
}

static void
connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rl_conn *c = arg;

    (void)fd;
    (void)what;
    if (c->state == RL_CONN_CONNECTING)
        conn_down(c, "connect timeout", true);
}

/* ---- hiredis callbacks ---- */

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct rl_conn *c = ac->data;

    if (c == NULL || c->ac != ac || status == REDIS_OK)
        return; /* ready only once the handshake replies came */
    /* hiredis frees ac after this callback returns. */
    conn_down(c, ac->errstr[0] ? ac->errstr : "connection refused", false);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rl_conn *c = ac->data;

    (void)status;
    if (c == NULL || c->ac != ac)
        return;
    conn_down(c, ac->errstr[0] ? ac->errstr : "connection closed", false);
}

/* ---- attempts ---- */

static redisAsyncContext *
conn_open(struct rl_node *n)
{
    if (n->unix_path != NULL)
        return redisAsyncConnectUnix(n->unix_path);
    return redisAsyncConnect(n->host, n->port);
}

static void
conn_attempt(struct rl_conn *c)
{
    struct rl_limiter *rl = c->node->rl;
    redisAsyncContext *ac = conn_open(c->node);

    c->state = RL_CONN_CONNECTING;
    if (ac == NULL || ac->err) {
        c->ac = NULL;
        conn_down(c, ac ? ac->errstr : "out of memory", false);
        if (ac != NULL)
            redisAsyncFree(ac);
        return;
    }
    c->ac = ac;
    ac->data = c;
    rl__reply_install(ac->c.reader); /* before any reply is read */
    if (redisLibeventAttach(ac, rl->base) != REDIS_OK) {
        conn_down(c, "cannot attach to the event loop", true);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    timer_add_ms(c->connect_ev, rl->cfg.redis.connect_timeout_ms);
    if (rl__node_handshake(c->node, ac) != RL_OK)
        conn_down(c, "cannot queue the handshake", true);
}

/* ---- the node's side ---- */

int
rl__conn_start(struct rl_conn *c, struct rl_node *node)
{
    struct event_base *base = node->rl->base;

    memset(c, 0, sizeof(*c));
    c->node = node;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->connect_ev = evtimer_new(base, connect_timeout_cb, c);
    c->retry_ev = evtimer_new(base, retry_cb, c);
    if (c->connect_ev == NULL || c->retry_ev == NULL)
        return RL_ERR_NOMEM;
    conn_attempt(c);
    return RL_OK;
}

/* Reconnects now rather than at the end of the back-off (a breaker probe
   is waiting: it should find out whether Redis is back, not that we were
   still backing off). */
void
rl__conn_kick(struct rl_conn *c)
{
    if (c->state != RL_CONN_BACKOFF)
        return;
    event_del(c->retry_ev);
    c->node->rl->ctr.v[RL_METRIC_REDIS_RECONNECTS]++;
    conn_attempt(c);
}

/* The handshake's last reply came: the connection carries checks now. */
void
rl__conn_ready(struct rl_conn *c)
{
    struct rl_limiter *rl = c->node->rl;
    char name[300];

    event_del(c->connect_ev);
    c->state = RL_CONN_READY;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->failures = 0;
    if (c->logged_down)
        rl__log(rl, RL_LOG_WARN, "redis %s: connected again",
                node_name(c->node, name, sizeof(name)));
    c->logged_down = false;
    if (c->ever_ready)
        rl__brk_server_back(rl);
    c->ever_ready = true;
    rl__node_ready(c->node);
}

/* A handshake reply said no (wrong password, unknown db, ...). */
void
rl__conn_fail(struct rl_conn *c, const char *why)
{
    conn_down(c, why, true);
}

void
rl__conn_close(struct rl_conn *c)
{
    redisAsyncContext *ac = c->ac;

    c->state = RL_CONN_CLOSED;
    c->ac = NULL;
    if (c->connect_ev != NULL)
        event_free(c->connect_ev);
    if (c->retry_ev != NULL)
        event_free(c->retry_ev);
    c->connect_ev = c->retry_ev = NULL;
    if (ac != NULL) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
}
