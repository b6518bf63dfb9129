/*
 * rl-fault.c: the outage figures.  Offers checks at a steady rate (open
 * loop) to a limiter on Redis, stops Redis with SIGSTOP for a while, lets
 * it go on with SIGCONT, and prints per phase (before, during, after) the
 * checks completed per second, the p99 latency (from the intended send
 * time), how many the fallback answered, and the time from SIGCONT to the
 * first check Redis decided again; once with the circuit breaker on and
 * once with it off.
 *
 *   rl-fault --port P [--rate 20000] [--before 3] [--outage 3] [--after 3]
 *
 * The redis-server must run on this machine (its pid is read from INFO
 * server and signalled): use bench/run-w1.sh's server or any private one.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <ratelimit.h>

#define MAX_SAMPLES (1 << 22)

struct phase {
    int64_t done, fallback;
    int64_t *lat_us;            /* latencies of this phase */
    int64_t n_lat;
};

struct run {
    struct event_base *base;
    rl_limiter *rl;
    int64_t rate, start_ns, next_ns, stop_ns, cont_ns, first_back_ns;
    int64_t phase_end_ns[3];
    int64_t open_ns;            /* the first RL_ERR_CIRCUIT_OPEN answer */
    struct phase ph[4];         /* before, during, after, during once the
                                   breaker answered */
    int64_t pending;
    uint64_t rng;
};

static int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct slot {
    struct run *r;
    int64_t sent_ns;
};

static int
phase_of(const struct run *r, int64_t t)
{
    if (t < r->phase_end_ns[0])
        return 0;
    return t < r->phase_end_ns[1] ? 1 : 2;
}

static void
on_result(const rl_result *res, void *arg)
{
    struct slot *s = arg;
    struct run *r = s->r;
    int64_t t = now_ns();
    struct phase *p = &r->ph[phase_of(r, s->sent_ns)];

    if (res->status == RL_ERR_CIRCUIT_OPEN && r->open_ns == 0)
        r->open_ns = t;
    if (r->open_ns > 0 && s->sent_ns >= r->open_ns &&
        phase_of(r, s->sent_ns) == 1) {
        r->ph[3].done++;
        if (r->ph[3].n_lat < MAX_SAMPLES)
            r->ph[3].lat_us[r->ph[3].n_lat++] = (t - s->sent_ns) / 1000;
    }
    p->done++;
    if (res->source == RL_SOURCE_FALLBACK)
        p->fallback++;
    else if (r->cont_ns > 0 && r->first_back_ns == 0 && s->sent_ns >=
             r->cont_ns)
        r->first_back_ns = t;
    if (p->n_lat < MAX_SAMPLES)
        p->lat_us[p->n_lat++] = (t - s->sent_ns) / 1000;
    r->pending--;
    free(s);
}

/* Every millisecond: submit what the rate owes since the last tick. */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    int64_t t = now_ns(), step = 1000000000 / r->rate;
    struct slot *s;
    char key[32];

    (void)fd;
    (void)what;
    while (r->next_ns <= t && r->next_ns < r->phase_end_ns[2]) {
        s = malloc(sizeof(*s));
        s->r = r;
        s->sent_ns = r->next_ns;
        r->rng = r->rng * 6364136223846793005ULL + 1442695040888963407ULL;
        snprintf(key, sizeof(key), "k%u", (unsigned)(r->rng >> 40) % 100000);
        if (rl_check_async(r->rl, key, 1000000, 60000, on_result, s) ==
            RL_OK)
            r->pending++;
        else
            free(s);
        r->next_ns += step;
    }
    if (t >= r->phase_end_ns[2] && r->pending == 0)
        event_base_loopbreak(r->base);
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static void
report(struct run *r, const char *label, int64_t secs[3])
{
    static const char *const names[3] = {"before", "during", "after"};
    struct phase *p;
    int i;

    for (i = 0; i < 3; i++) {
        p = &r->ph[i];
        qsort(p->lat_us, (size_t)p->n_lat, sizeof(int64_t), cmp_i64);
        printf("%-12s %-6s %9.0f checks/s  p99 %9.3f ms  fallback %6.1f%%\n",
               label, names[i], (double)p->done / (double)secs[i],
               p->n_lat ? (double)p->lat_us[p->n_lat * 99 / 100] / 1000.0
                        : 0.0,
               p->done ? 100.0 * (double)p->fallback / (double)p->done : 0.0);
    }
    p = &r->ph[3];
    if (p->n_lat > 0) {
        qsort(p->lat_us, (size_t)p->n_lat, sizeof(int64_t), cmp_i64);
        printf("%-12s breaker open %.0f ms into the outage; from then on "
               "p99 %.3f ms over %lld checks\n", label,
               (double)(r->open_ns - r->phase_end_ns[0]) / 1e6,
               (double)p->lat_us[p->n_lat * 99 / 100] / 1000.0,
               (long long)p->n_lat);
    }
    if (r->first_back_ns > 0)
        printf("%-12s back to Redis %.0f ms after SIGCONT\n", label,
               (double)(r->first_back_ns - r->cont_ns) / 1e6);
    else
        printf("%-12s never back to Redis in the run\n", label);
}

static pid_t
redis_pid(int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *rep;
    const char *p;
    pid_t pid = -1;

    if (c == NULL || c->err)
        return -1;
    rep = redisCommand(c, "INFO server");
    if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
        p = strstr(rep->str, "process_id:");
        if (p != NULL)
            pid = (pid_t)atol(p + 11);
    }
    freeReplyObject(rep);
    redisFree(c);
    return pid;
}

/* One timed run: before, SIGSTOP, outage, SIGCONT, after. */
static int
one_run(int port, pid_t pid, bool breaker, int64_t rate, int64_t secs[3])
{
    struct run r;
    rl_config cfg;
    struct event *ev;
    struct timeval ms = {0, 1000};
    int i;

    memset(&r, 0, sizeof(r));
    rl_config_init(&cfg);
    cfg.redis.port = port;
    cfg.algorithm = RL_FIXED_WINDOW;
    cfg.log_level = RL_LOG_NONE;
    cfg.circuit_breaker.enabled = breaker;
    cfg.circuit_breaker.recovery_timeout_ms = 1000;
    r.base = event_base_new();
    if (rl_new(r.base, &cfg, &r.rl) != RL_OK)
        return -1;
    for (i = 0; i < 4; i++)
        r.ph[i].lat_us = malloc(MAX_SAMPLES * sizeof(int64_t));
    r.rate = rate;
    r.rng = 42;
    r.start_ns = r.next_ns = now_ns() + 100000000;
    r.phase_end_ns[0] = r.start_ns + secs[0] * 1000000000;
    r.phase_end_ns[1] = r.phase_end_ns[0] + secs[1] * 1000000000;
    r.phase_end_ns[2] = r.phase_end_ns[1] + secs[2] * 1000000000;
    ev = event_new(r.base, -1, EV_PERSIST, tick_cb, &r);
    event_add(ev, &ms);
    while (now_ns() < r.phase_end_ns[0])
        event_base_loop(r.base, EVLOOP_ONCE);
    kill(pid, SIGSTOP);
    while (now_ns() < r.phase_end_ns[1])
        event_base_loop(r.base, EVLOOP_ONCE);
    kill(pid, SIGCONT);
    r.cont_ns = now_ns();
    event_base_dispatch(r.base);
    report(&r, breaker ? "breaker on" : "breaker off", secs);
    event_free(ev);
    rl_free(r.rl);
    event_base_free(r.base);
    for (i = 0; i < 4; i++)
        free(r.ph[i].lat_us);
    return 0;
}

int
main(int argc, char **argv)
{
    int64_t secs[3] = {3, 3, 3}, rate = 20000;
    int port = 6379, i;
    pid_t pid;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--before") == 0)
            secs[0] = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--outage") == 0)
            secs[1] = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--after") == 0)
            secs[2] = atoll(argv[i + 1]);
    }
    if (rate < 1 || rate > 1000000 || secs[0] < 1 || secs[1] < 1 ||
        secs[2] < 1) {
        fprintf(stderr, "usage: rl-fault --port P [--rate N] [--before S] "
                "[--outage S] [--after S]\n");
        return 2;
    }
    pid = redis_pid(port);
    if (pid <= 0) {
        fprintf(stderr, "rl-fault: no redis-server on 127.0.0.1:%d\n", port);
        return 1;
    }
    printf("rl-fault: %lld checks/s offered, Redis stopped %llds after %llds\n",
           (long long)rate, (long long)secs[1], (long long)secs[0]);
    if (one_run(port, pid, true, rate, secs) != 0 ||
        one_run(port, pid, false, rate, secs) != 0)
        return 1;
    return 0;
}
