/*
 * bench_stats.c: the counters rl-bench reads just before and just after
 * its measured phase, and their differences.  The library's come from
 * rl_metric (commands sent, batches, answers by source, decision-cache
 * hits and misses).  The Redis server's come from INFO commandstats and
 * INFO cpu on a second, synchronous connection of our own, so that the
 * count holds every command the server ran: the clients' and those the
 * scripts called, not just what this client believes it sent.  INFO is
 * left out of the count: it is ours.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench.h"

/* The rl_metric id behind each enum lib_counter. */
static const int lib_metric[LIB_COUNT_] = {
    [LIB_CMDS] = RL_METRIC_REDIS_COMMANDS,
    [LIB_BATCHES] = RL_METRIC_BATCHES,
    [LIB_BATCHED] = RL_METRIC_BATCHED_CHECKS,
    [LIB_SRC_BACKEND] = RL_METRIC_SOURCE_BACKEND,
    [LIB_SRC_CACHE] = RL_METRIC_SOURCE_CACHE,
    [LIB_SRC_FALLBACK] = RL_METRIC_SOURCE_FALLBACK,
    [LIB_CACHE_HITS] = RL_METRIC_CACHE_HITS,
    [LIB_CACHE_MISSES] = RL_METRIC_CACHE_MISSES,
};

/* ---- the INFO connection ---- */

/* Where INFO goes: the backend's server and credentials. */
struct target {
    char buf[1024];
    const char *host, *path, *user, *pass;
    int port;
};

/* The URL's parts in t->buf; its user and password are taken as written
   (no percent-decoding). */
static void
parse_url(const char *url, struct target *t)
{
    char *host = t->buf, *at, *p;

    snprintf(t->buf, sizeof(t->buf), "%s", url + 8);
    t->buf[strcspn(t->buf, "/")] = '\0';
    at = strrchr(t->buf, '@');
    if (at != NULL) {
        *at = '\0';
        host = at + 1;
        p = strchr(t->buf, ':');
        if (p != NULL) {
            *p = '\0';
            t->pass = p + 1;
        }
        t->user = t->buf[0] != '\0' ? t->buf : NULL;
    }
    t->port = 6379;
    p = host;
    if (host[0] == '[' && strchr(host, ']') != NULL) {
        p = strchr(host, ']');
        *p++ = '\0';
        host++;
    }
    p = strrchr(p, ':');
    if (p != NULL) {
        *p = '\0';
        t->port = atoi(p + 1);
    }
    t->host = host;
}

static void
make_target(const rl_config *cfg, struct target *t)
{
    const char *url = cfg->redis.url;

    memset(t, 0, sizeof(*t));
    t->host = cfg->redis.host;
    t->port = cfg->redis.port;
    t->user = cfg->redis.username;
    t->pass = cfg->redis.password;
    if (url != NULL && strncasecmp(url, "unix://", 7) == 0) {
        snprintf(t->buf, sizeof(t->buf), "%s", url + 7);
        t->buf[strcspn(t->buf, "?")] = '\0';
        t->path = t->buf;
    } else if (url != NULL && strncasecmp(url, "redis://", 8) == 0) {
        parse_url(url, t);
    }
}

/* AUTH on the INFO connection, when the backend has a password. */
static int
info_auth(redisContext *c, const struct target *t)
{
    redisReply *r;
    int ok;

    if (t->pass == NULL)
        return 0;
    if (t->user != NULL)
        r = redisCommand(c, "AUTH %s %s", t->user, t->pass);
    else
        r = redisCommand(c, "AUTH %s", t->pass);
    ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

redisContext *
bench_info_open(const rl_config *cfg)
{
    struct timeval tv = { 2, 0 };
    struct target t;
    redisContext *c;

    make_target(cfg, &t);
    if (t.path != NULL)
        c = redisConnectUnixWithTimeout(t.path, tv);
    else
        c = redisConnectWithTimeout(t.host, t.port, tv);
    if (c == NULL || c->err) {
        fprintf(stderr, "rl-bench: INFO connection: %s; no server stats\n",
                c != NULL ? c->errstr : "out of memory");
        goto out_free;
    }
    if (info_auth(c, &t) != 0) {
        fprintf(stderr, "rl-bench: INFO connection: AUTH refused; no "
                "server stats\n");
        goto out_free;
    }
    return c;

out_free:
    if (c != NULL)
        redisFree(c);
    return NULL;
}

/* ---- reading and subtracting ---- */

/* "cmdstat_NAME:calls=N,..." lines into s->cmd[]. */
static void
parse_commandstats(const char *text, struct snapshot *s)
{
    const char *line, *colon, *calls;
    size_t len;

    for (line = strstr(text, "cmdstat_"); line != NULL && s->n < CMDSTAT_MAX;
         line = strstr(line + 1, "\ncmdstat_")) {
        if (line[0] == '\n')
            line++;
        colon = strchr(line, ':');
        calls = strstr(line, "calls=");
        if (colon == NULL || calls == NULL)
            break;
        len = (size_t)(colon - line - 8);
        if (len >= CMDNAME_MAX)
            continue;
        memcpy(s->cmd[s->n].name, line + 8, len);
        s->cmd[s->n].name[len] = '\0';
        s->cmd[s->n++].calls = strtoll(calls + 6, NULL, 10);
    }
}

static double
info_field(const char *text, const char *name)
{
    const char *p = strstr(text, name);

    return p != NULL ? strtod(p + strlen(name), NULL) : 0.0;
}

/* The server's counters now; s->server stays false without them. */
static void
read_server(redisContext *c, struct snapshot *s)
{
    redisReply *cmd = redisCommand(c, "INFO commandstats");
    redisReply *cpu = redisCommand(c, "INFO cpu");

    if (cmd != NULL && cmd->type == REDIS_REPLY_STRING && cpu != NULL &&
        cpu->type == REDIS_REPLY_STRING) {
        parse_commandstats(cmd->str, s);
        s->cpu_s = info_field(cpu->str, "used_cpu_user:") +
                   info_field(cpu->str, "used_cpu_sys:");
        s->server = true;
    }
    freeReplyObject(cmd);
    freeReplyObject(cpu);
}

void
bench_snapshot(const rl_limiter *rl, redisContext *info, struct snapshot *s)
{
    int i;

    memset(s, 0, sizeof(*s));
    for (i = 0; i < LIB_COUNT_; i++)
        s->lib[i] = rl_metric(rl, lib_metric[i]);
    if (info != NULL)
        read_server(info, s);
}

static int64_t
calls_of(const struct snapshot *s, const char *name)
{
    int i;

    for (i = 0; i < s->n; i++)
        if (strcmp(s->cmd[i].name, name) == 0)
            return s->cmd[i].calls;
    return 0;
}

void
bench_snapshot_delta(const struct snapshot *a0, const struct snapshot *a1,
                     struct report *r)
{
    size_t used = 0;
    int64_t d;
    int i;

    for (i = 0; i < LIB_COUNT_; i++)
        r->lib[i] = a1->lib[i] - a0->lib[i];
    r->server = a0->server && a1->server;
    if (!r->server)
        return;
    r->srv_cpu_s = a1->cpu_s - a0->cpu_s;
    r->evalsha = (double)(calls_of(a1, "evalsha") - calls_of(a0, "evalsha"));
    for (i = 0; i < a1->n; i++) {
        d = a1->cmd[i].calls - calls_of(a0, a1->cmd[i].name);
        if (d == 0 || strcmp(a1->cmd[i].name, "info") == 0)
            continue;
        r->calls += (double)d;
        if (used + CMDNAME_MAX + 24 < sizeof(r->calls_text))
            used += (size_t)snprintf(r->calls_text + used,
                                     sizeof(r->calls_text) - used, "%s%s %lld",
                                     used ? ", " : "", a1->cmd[i].name,
                                     (long long)d);
    }
}
