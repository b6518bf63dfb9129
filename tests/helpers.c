/*
 * helpers.c: shared pieces of the asynchronous test suites.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "helpers.h"

bool th_in_submit;

int64_t
th_clock(void *arg)
{
    return *(int64_t *)arg;
}

void
th_check_cb(const rl_result *r, void *arg)
{
    struct th_rec *rec = arg;
    size_t n = r->key_len;

    rec->r = *r;
    if (n > RL_KEY_MAX)
        n = RL_KEY_MAX;
    memcpy(rec->key, r->key, n);
    rec->key[n] = '\0';
    rec->r.key = rec->key;
    rec->calls++;
    if (th_in_submit)
        rec->sync = true;
}

void
th_done_cb(int status, void *arg)
{
    struct th_rec *rec = arg;

    rec->status = status;
    rec->calls++;
    if (th_in_submit)
        rec->sync = true;
}

void
th_log_cb(rl_log_level level, const char *msg, void *arg)
{
    struct th_log *log = arg;
    size_t used = strlen(log->text);

    (void)level;
    snprintf(log->text + used, sizeof(log->text) - used, "%s\n", msg);
    log->lines++;
}

void
th_drain(struct event_base *base)
{
    event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_loop(base, EVLOOP_NONBLOCK);
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

void
th_run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *ev = evtimer_new(base, stop_cb, base);

    evtimer_add(ev, &tv);
    event_base_dispatch(base);
    event_free(ev);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

bool
th_wait_for(struct event_base *base, const int *counter, int target,
            int timeout_ms)
{
    struct timeval tv = {0, 10000};
    struct event *ev = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval start, now;
    long elapsed;

    event_add(ev, &tv);
    gettimeofday(&start, NULL);
    while (*counter < target) {
        event_base_loop(base, EVLOOP_ONCE);
        gettimeofday(&now, NULL);
        elapsed = (now.tv_sec - start.tv_sec) * 1000 +
                  (now.tv_usec - start.tv_usec) / 1000;
        if (elapsed > timeout_ms)
            break;
    }
    event_free(ev);
    return *counter >= target;
}

void
th_local_config(rl_config *cfg, rl_algorithm alg, int64_t *now)
{
    rl_config_init(cfg);
    cfg->backend = RL_BACKEND_LOCAL;
    cfg->algorithm = alg;
    cfg->clock = th_clock;
    cfg->clock_arg = now;
}

void
th_redis_config(rl_config *cfg, rl_algorithm alg, const char *host,
                int port, int64_t *now)
{
    rl_config_init(cfg);
    cfg->backend = RL_BACKEND_REDIS;
    cfg->redis.host = host;
    cfg->redis.port = port;
    cfg->algorithm = alg;
    cfg->redis.command_timeout_ms = 2000;
    if (now != NULL) {
        cfg->clock = th_clock;
        cfg->clock_arg = now;
    }
}

int64_t
th_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
