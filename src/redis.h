/*
 * redis.h: the internal pieces of the Redis backend, shared by keys.c,
 * scripts.c, conn.c, pipeline.c and redis.c.
 *
 * One node is one Redis server with its own connection and its own
 * pipeline (queue of checks not yet sent, count of batches in flight).
 * Standalone Redis has one node; Redis Cluster (later) has one per master,
 * with the router picking the node from the key's hash tag.
 */
#ifndef RL_REDIS_H
#define RL_REDIS_H

#include <hiredis/async.h>

#include "rl_private.h"

/* ---- keys.c ---- */

/* Longest Redis key: prefix, algorithm, braces, tag and key escaped. */
#define RL_REDIS_KEY_MAX (128 + 8 + 2 + 2 * 3 * RL_KEY_MAX)

/*
 * Writes the Redis key of (alg, user key) into buf (RL_REDIS_KEY_MAX
 * bytes) and returns its length.  Layout: PREFIX ":" ALG ":{" TAG "}" REST
 * where bytes outside printable ASCII and the bytes '{', '}', '%' are
 * written %XX.  TAG is the user key's own hash tag (the bytes between its
 * first '{' and the next '}', when not empty) and REST the whole user key;
 * a key without a tag is its own tag and REST is empty.  So different user
 * keys never share a Redis key, and the hash tag is always ours.
 */
size_t rl__redis_key(const char *prefix, rl_algorithm alg, const char *key,
                     size_t keylen, char *buf);

/*
 * The user key of a Redis key that rl__redis_key wrote for (prefix, alg),
 * into buf (RL_KEY_MAX bytes); its length, or 0 when rkey is not exactly
 * what rl__redis_key writes for some user key (buf then undefined).
 * prefix: at most 128 bytes, as the configuration allows.
 * rl__redis_key_match writes the SCAN MATCH pattern of every such
 * key into buf (2 * strlen(prefix) + 8 bytes) and returns its length.
 */
size_t rl__redis_key_decode(const char *prefix, rl_algorithm alg,
                            const char *rkey, size_t rlen, char *buf);
size_t rl__redis_key_match(const char *prefix, rl_algorithm alg, char *buf);

/* ---- redis.c ---- */

/*
 * Sends one command outside the pipeline (the warm-up's SCAN) on the
 * connection of a standalone Redis.  cb runs once with the reply, or with
 * NULL when the connection drops or closes (possibly after the limiter
 * is gone: then it must not touch it).  RL_OK, or RL_ERR_REDIS when the
 * connection is not ready.
 */
int rl__redis_command(struct rl_limiter *rl, redisCallbackFn *cb, void *priv,
                      int argc, const char **argv, const size_t *argvlen);

/* ---- scripts.c ---- */

struct rl_script {
    const char *name;       /* file name in lua/, without .lua */
    const char *text;
    size_t len;
    char sha[41];           /* hex SHA-1 of text, computed at init */
};

/* The script of an algorithm (SHA-1 ready after rl__scripts_init). */
const struct rl_script *rl__script_for(rl_algorithm alg);
/* Computes every script's SHA-1 (once per process; idempotent). */
void rl__scripts_init(void);

/* ---- conn.c ---- */

enum rl_conn_state {
    RL_CONN_IDLE = 0,       /* not started */
    RL_CONN_CONNECTING = 1, /* TCP connect and handshake under way */
    RL_CONN_READY = 2,      /* scripts loaded: checks may be sent */
    RL_CONN_BACKOFF = 3,    /* down; a reconnect is scheduled */
    RL_CONN_CLOSED = 4      /* shut down */
};

struct rl_node;

struct rl_conn {
    struct rl_node *node;
    redisAsyncContext *ac;     /* NULL when not connected; hiredis frees it
                                  after a failed connect or a disconnect */
    enum rl_conn_state state;
    int handshake_left;        /* replies awaited before READY */
    struct event *connect_ev;  /* connect timeout */
    struct event *retry_ev;    /* reconnect back-off */
    int64_t backoff_ms;
    int64_t failures;          /* consecutive failed attempts */
    bool ever_ready;
    bool logged_down;          /* the outage was logged once */
};

/* Creates the timers and starts the first connection attempt. */
int rl__conn_start(struct rl_conn *c, struct rl_node *node);
/* Drops the connection for good: in-flight replies come back NULL. */
void rl__conn_close(struct rl_conn *c);
/* In back-off: try to connect now. */
void rl__conn_kick(struct rl_conn *c);
/* The handshake completed: READY. */
void rl__conn_ready(struct rl_conn *c);
/* A handshake reply refused us (reason logged once); back off. */
void rl__conn_fail(struct rl_conn *c, const char *why);

/* ---- pipeline.c ---- */

struct rl_node {
    struct rl_limiter *rl;
    char *host;                /* TCP host, or NULL with unix_path */
    int port;
    char *unix_path;
    struct rl_conn conn;
    struct rl_req_q queue;     /* checks and resets not yet sent */
    int64_t queued;            /* checks in it (a group counts its
                                  members) */
    int64_t inflight;          /* commands awaiting a reply */
    bool reloading;            /* a SCRIPT LOAD after NOSCRIPT is out */
    int64_t stalled_since_ms;  /* monotonic: a command went unanswered
                                  past its deadline; 0: not stalled */
    char *cmd;                 /* the command being formatted */
    size_t cmd_len, cmd_cap;
};

/* Queues a request on the node; the tick flushes it. */
void rl__node_queue(struct rl_node *n, struct rl_req *req);
/* Sends what is queued when the connection is ready. */
void rl__node_flush(struct rl_node *n);
/* The connection became ready (scripts loaded): send what waits. */
void rl__node_ready(struct rl_node *n);
/* The connection is down: queued requests complete with `why` through
   the fallback (they were never sent). */
void rl__node_down(struct rl_node *n, int why);
/* Takes a queued request off the node's queue (deadline passed). */
void rl__node_unqueue(struct rl_node *n, struct rl_req *req);
/* Sends the handshake on a new context: AUTH, SELECT, SCRIPT LOAD. */
int rl__node_handshake(struct rl_node *n, redisAsyncContext *ac);
void rl__node_free(struct rl_node *n);

#endif /* RL_REDIS_H */
