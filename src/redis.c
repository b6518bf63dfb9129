/*
 * redis.c: the Redis backend.  It turns the configuration into nodes (one
 * for a standalone Redis), gives each accepted request a deadline and the
 * node that owns its key, and lets the tick flush every node's pipeline.
 *
 * Every request sent to Redis is on the limiter's deadline FIFO until it
 * completes, which is also how shutdown finds the requests in flight.
 */
#include <stdlib.h>
#include <string.h>

#include "breaker_loop.h"
#include "metrics.h"
#include "redis.h"

struct redis_backend {
    struct rl_node *node;      /* standalone: the one node */
    struct rl_redis_url url;   /* REDIS_URL parsed; owns its strings */
};

static struct redis_backend *
backend_of(struct rl_limiter *rl)
{
    return rl->backend_data;
}

/* ---- configuration to node ---- */

/* Applies REDIS_URL over host/port/db/user/password. */
static int
apply_url(struct rl_limiter *rl, struct redis_backend *be)
{
    rl_redis_config *rc = &rl->cfg.redis;
    int err;

    if (rc->url == NULL)
        return RL_OK;
    err = rl__redis_url_parse(rc->url, &be->url);
    if (err != RL_OK) {
        rl__log(rl, RL_LOG_ERROR, "REDIS_URL: not a redis:// or unix:// URL");
        return err;
    }
    if (be->url.db >= 0)
        rc->db = be->url.db;
    if (be->url.username != NULL)
        rc->username = be->url.username;
    if (be->url.password != NULL)
        rc->password = be->url.password;
    return RL_OK;
}

static struct rl_node *
node_new(struct rl_limiter *rl, const struct redis_backend *be)
{
    struct rl_node *n = calloc(1, sizeof(*n));
    const char *host = rl->cfg.redis.host;
    int port = rl->cfg.redis.port;

    if (n == NULL)
        return NULL;
    n->rl = rl;
    TAILQ_INIT(&n->queue);
    if (rl->cfg.redis.url != NULL) {
        host = be->url.host;
        port = be->url.port;
        if (be->url.unix_path != NULL) {
            n->unix_path = strdup(be->url.unix_path);
            if (n->unix_path == NULL)
                goto out_free;
            return n;
        }
    }
    n->host = strdup(host);
    n->port = port;
    if (n->host == NULL)
        goto out_free;
    return n;

out_free:
    free(n);
    return NULL;
}

/* ---- the backend ---- */

static int
redis_init(struct rl_limiter *rl)
{
    struct redis_backend *be = calloc(1, sizeof(*be));
    int err;

    if (be == NULL)
        return RL_ERR_NOMEM;
    rl->backend_data = be;
    if (rl->cfg.redis.cluster_nodes != NULL) {
        rl__log(rl, RL_LOG_ERROR, "REDIS_CLUSTER_NODES: Redis Cluster is "
                "not supported by this version yet");
        return RL_ERR_INVALID;
    }
    err = apply_url(rl, be);
    if (err != RL_OK)
        return err;
    err = rl__deadline_init(rl);
    if (err == RL_OK)
        err = rl__brk_init(rl);
    if (err != RL_OK)
        return err;
    rl__scripts_init();
    be->node = node_new(rl, be);
    if (be->node == NULL)
        return RL_ERR_NOMEM;
    return rl__conn_start(&be->node->conn, be->node);
}

/*
 * A request, or the leader of an all-or-nothing group (the breaker admits
 * the group once; the leader alone is timed and queued, the others ride
 * along).
 */
static void
redis_submit(struct rl_limiter *rl, struct rl_req *req)
{
    if (rl->brk != NULL && !rl__brk_admit(req)) {
        if (req->op == RL_OP_RESET)
            rl__req_complete(req, RL_ERR_CIRCUIT_OPEN, NULL);
        else
            rl__req_fallback(req, RL_ERR_CIRCUIT_OPEN);
        return;
    }
    rl__deadline_start(req);
    rl__node_queue(backend_of(rl)->node, req);
}

static void
redis_flush(struct rl_limiter *rl)
{
    rl__node_flush(backend_of(rl)->node);
}

static void
redis_expire(struct rl_limiter *rl, struct rl_req *req)
{
    if (req->linked)
        rl__node_unqueue(backend_of(rl)->node, req);
}

/*
 * hiredis 0.14 has no command timeout: a server that stopped answering
 * (hung, or gone without closing the socket) would hold every later
 * command behind the unanswered one until TCP gives up.  The first wave of
 * deadlines passing with commands unanswered marks the connection; if a
 * later wave finds it still silent a command timeout afterwards, it is
 * dropped: its other commands complete with RL_ERR_REDIS and the back-off
 * reconnects.  Any reply clears the mark (pipeline.c).
 */
static void
redis_stalled(struct rl_limiter *rl)
{
    struct rl_node *n = backend_of(rl)->node;
    int64_t now = rl__mono_ns() / 1000000;

    if (n->conn.state != RL_CONN_READY || n->inflight == 0)
        return;
    if (n->stalled_since_ms == 0) {
        n->stalled_since_ms = now;
        return;
    }
    if (now - n->stalled_since_ms < rl->cfg.redis.command_timeout_ms)
        return;
    n->stalled_since_ms = 0;
    rl__conn_fail(&n->conn, "no reply within the command timeout");
}

/* Every request not yet answered completes with RL_ERR_SHUTDOWN. */
static void
redis_shutdown(struct rl_limiter *rl)
{
    struct redis_backend *be = backend_of(rl);
    struct rl_req *req;

    if (be == NULL)
        return;
    rl__warm_shutdown(rl);
    if (be->node != NULL)
        rl__node_down(be->node, RL_ERR_SHUTDOWN);
    while (!TAILQ_EMPTY(&rl->dl_q)) {
        req = TAILQ_FIRST(&rl->dl_q);
        if (req->op == RL_OP_RESET)
            rl__req_complete(req, RL_ERR_SHUTDOWN, NULL);
        else
            rl__req_fallback(req, RL_ERR_SHUTDOWN);
    }
}

static void
redis_destroy(struct rl_limiter *rl)
{
    struct redis_backend *be = backend_of(rl);

    if (be == NULL)
        return;
    if (be->node != NULL)
        rl__node_free(be->node);
    rl__deadline_destroy(rl);
    rl__brk_destroy(rl);
    rl__redis_url_clear(&be->url);
    free(be);
    rl->backend_data = NULL;
}

const struct rl_backend_ops rl__backend_redis = {
    .name = "redis",
    .init = redis_init,
    .submit = redis_submit,
    .flush = redis_flush,
    .shutdown = redis_shutdown,
    .destroy = redis_destroy,
    .expire = redis_expire,
    .stalled = redis_stalled,
};

int
rl__redis_command(struct rl_limiter *rl, redisCallbackFn *cb, void *priv,
                  int argc, const char **argv, const size_t *argvlen)
{
    struct redis_backend *be = backend_of(rl);
    struct rl_node *n = be != NULL ? be->node : NULL;

    if (n == NULL || n->conn.state != RL_CONN_READY || n->conn.ac == NULL ||
        redisAsyncCommandArgv(n->conn.ac, cb, priv, argc, argv,
                              argvlen) != REDIS_OK)
        return RL_ERR_REDIS;
    rl->ctr.v[RL_METRIC_REDIS_COMMANDS]++;
    return RL_OK;
}

/* The connection's state for the health verdict (metrics.c). */
int
rl__redis_conn_state(const struct rl_limiter *rl)
{
    const struct redis_backend *be = rl->backend_data;

    if (rl->cfg.backend == RL_BACKEND_LOCAL)
        return RL_REDIS_NONE;
    if (be == NULL || be->node == NULL)
        return RL_REDIS_DISCONNECTED;
    switch (be->node->conn.state) {
    case RL_CONN_READY:
        return RL_REDIS_CONNECTED;
    case RL_CONN_IDLE:
    case RL_CONN_CONNECTING:
        return RL_REDIS_CONNECTING;
    default:
        return RL_REDIS_DISCONNECTED;
    }
}
