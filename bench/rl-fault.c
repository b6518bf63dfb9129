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
 *            [--tick-us 100] [--runs on,off,control] [--timeline]
 *
 * The open loop wakes every --tick-us microseconds and submits the checks
 * whose intended send time has come, so a check waits up to a tick before
 * it is submitted: the tick must be well under the latency measured (a
 * 1000 us tick alone puts the p99 at 1 ms).  The event_base uses
 * libevent's precise timer: its default clock (CLOCK_MONOTONIC_COARSE)
 * moves in steps of one kernel tick (4 ms at HZ=250), and every timer,
 * the open loop's included, would fire on those steps.  The checks of one
 * tick go to Redis together: at 20,000/s a 100 us tick sends about 10,000
 * EVALSHA/s of 2 checks each, where a 1 ms tick on the coarse clock sent
 * about 500/s of 40 (the Redis phases are not comparable across).
 *
 * A latency has two parts: the wait, from the intended send time to the
 * call to rl_check_async (the open loop, the event loop, the machine), and
 * the library's part, from that call to the callback.  Once the breaker
 * opened, the p99 of each part is printed too, and each run ends with the
 * CPU time used and the time spent waiting for a CPU (/proc schedstat).
 * The control run (--runs control) is the open loop with no limiter, each
 * check answered as it is submitted: its p99 is the floor that the loop
 * and the machine, at that moment, put under every other figure.  On a
 * busy machine that floor is the neighbours' (milliseconds of waiting for
 * a CPU); run the bench and the redis-server under chrt -f to measure the
 * library rather than them.
 * "Breaker open" is the first RL_ERR_CIRCUIT_OPEN answer to a check sent
 * during the outage.  --timeline adds the answers of each phase by status;
 * for each 10 ms slot from SIGSTOP on in which a check took over 1 ms or
 * the loop slept over 1 ms, the slot's checks, the worst of each part, the
 * longest gap between two ticks, the time waited for a CPU, and the
 * limiter's counters; and the library's log lines (debug level), each
 * with its time from SIGSTOP.
 *
 * The redis-server must run on this machine (its pid is read from INFO
 * server and signalled): use bench/run-w1.sh's server or any private one.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <ratelimit.h>

#include "bench.h"

#define MAX_SAMPLES (1 << 22)
#define SLOT_NS 10000000        /* timeline: 10 ms slots */
#define MAX_SLOTS 8192
#define MAX_EVENTS 512

struct phase {
    int64_t done, fallback;
    int64_t by_status[-RL_ERR_LAST_];   /* answers by -status */
    int64_t *lat_us;            /* latencies of this phase */
    int64_t *lib_us;            /* their library part */
    int64_t n_lat;
};

/* One 10 ms slot of the timeline: the checks by intended send time, the
   loop and the limiter by tick time. */
struct tslot {
    int64_t n, max_us, max_lib_us;
    int64_t max_gap_us;         /* longest gap between ticks ending here */
    int64_t runq_us;            /* waited for a CPU */
    int64_t reconnects, timeouts, inflight, pending;    /* at its last tick */
};

/* What a run is asked to do. */
struct opts {
    int port;
    pid_t pid;
    int64_t rate, tick_us, secs[3];
    bool timeline;
};

struct event_line {
    int64_t t_ns;
    char msg[200];
};

struct run {
    struct event_base *base;
    rl_limiter *rl;
    int64_t rate, start_ns, next_ns, stop_ns, cont_ns, first_back_ns;
    int64_t phase_end_ns[3];
    int64_t open_ns;            /* the first RL_ERR_CIRCUIT_OPEN answer in
                                   the outage */
    struct phase ph[4];         /* before, during, after, during once the
                                   breaker answered */
    int64_t pending;
    uint64_t rng;
    int64_t last_tick_ns;
    int64_t runq_ns, runq_slot; /* schedstat's run delay, at slot start */
    struct tslot *tl;           /* the timeline, MAX_SLOTS */
    struct event_line *ev;      /* log lines, MAX_EVENTS */
    int n_ev;
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
    int64_t sent_ns;            /* intended */
    int64_t sub_ns;             /* rl_check_async called */
};

static int
phase_of(const struct run *r, int64_t t)
{
    if (t < r->phase_end_ns[0])
        return 0;
    return t < r->phase_end_ns[1] ? 1 : 2;
}

static struct tslot *
tslot_of(struct run *r, int64_t t)
{
    int64_t i = (t - r->start_ns) / SLOT_NS;

    return &r->tl[i < 0 ? 0 : i >= MAX_SLOTS ? MAX_SLOTS - 1 : i];
}

static void
sample(struct phase *p, int64_t lat_us, int64_t lib_us)
{
    if (p->n_lat >= MAX_SAMPLES)
        return;
    p->lat_us[p->n_lat] = lat_us;
    p->lib_us[p->n_lat++] = lib_us;
}

/* Counts the answer to check s, which came now. */
static void
record(struct run *r, const struct slot *s, int status, bool fallback)
{
    int64_t t = now_ns();
    int64_t lat = (t - s->sent_ns) / 1000, lib = (t - s->sub_ns) / 1000;
    struct phase *p = &r->ph[phase_of(r, s->sent_ns)];
    struct tslot *ts = tslot_of(r, s->sent_ns);

    if (status == RL_ERR_CIRCUIT_OPEN && r->open_ns == 0 &&
        phase_of(r, s->sent_ns) == 1)
        r->open_ns = t;
    if (r->open_ns > 0 && s->sent_ns >= r->open_ns &&
        phase_of(r, s->sent_ns) == 1) {
        r->ph[3].done++;
        sample(&r->ph[3], lat, lib);
    }
    p->done++;
    if (status <= 0 && status > RL_ERR_LAST_)
        p->by_status[-status]++;
    if (fallback)
        p->fallback++;
    else if (r->cont_ns > 0 && r->first_back_ns == 0 && s->sent_ns >=
             r->cont_ns)
        r->first_back_ns = t;
    sample(p, lat, lib);
    ts->n++;
    if (lat > ts->max_us)
        ts->max_us = lat;
    if (lib > ts->max_lib_us)
        ts->max_lib_us = lib;
}

static void
on_result(const rl_result *res, void *arg)
{
    struct slot *s = arg;

    record(s->r, s, res->status, res->source == RL_SOURCE_FALLBACK);
    s->r->pending--;
    free(s);
}

static void
on_log(rl_log_level level, const char *msg, void *arg)
{
    struct run *r = arg;

    (void)level;
    if (r->ev == NULL || r->n_ev == MAX_EVENTS)
        return;
    r->ev[r->n_ev].t_ns = now_ns();
    snprintf(r->ev[r->n_ev].msg, sizeof(r->ev[0].msg), "%s", msg);
    r->n_ev++;
}

/* The time this thread has waited for a CPU so far (ns), or -1. */
static int64_t
runq_wait_ns(void)
{
    FILE *f = fopen("/proc/thread-self/schedstat", "r");
    long long run, wait = -1;

    if (f == NULL)
        return -1;
    if (fscanf(f, "%lld %lld", &run, &wait) != 2)
        wait = -1;
    fclose(f);
    return wait;
}

/* What the loop and the limiter did up to this tick, for the timeline;
   the CPU wait is read once a slot, with --timeline only. */
static void
tick_note(struct run *r, int64_t t)
{
    struct tslot *ts = tslot_of(r, t);
    int64_t gap = r->last_tick_ns > 0 ? (t - r->last_tick_ns) / 1000 : 0;
    int64_t slot = ts - r->tl, w;

    r->last_tick_ns = t;
    if (gap > ts->max_gap_us)
        ts->max_gap_us = gap;
    if (r->ev != NULL && slot != r->runq_slot) {
        w = runq_wait_ns();
        if (r->runq_slot >= 0 && r->runq_ns >= 0 && w >= 0)
            r->tl[r->runq_slot].runq_us = (w - r->runq_ns) / 1000;
        r->runq_ns = w;
        r->runq_slot = slot;
    }
    ts->reconnects = rl_metric(r->rl, RL_METRIC_REDIS_RECONNECTS);
    ts->timeouts = rl_metric(r->rl, RL_METRIC_TIMEOUTS);
    ts->inflight = rl_metric(r->rl, RL_METRIC_INFLIGHT);
    ts->pending = r->pending;
}

/* Every tick: submit the checks whose intended send time has come. */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    int64_t t = now_ns(), step = 1000000000 / r->rate;
    struct slot *s;
    char key[32];

    (void)fd;
    (void)what;
    tick_note(r, t);
    while (r->next_ns <= t && r->next_ns < r->phase_end_ns[2]) {
        s = malloc(sizeof(*s));
        s->r = r;
        s->sent_ns = r->next_ns;
        s->sub_ns = now_ns();
        r->rng = r->rng * 6364136223846793005ULL + 1442695040888963407ULL;
        snprintf(key, sizeof(key), "k%u", (unsigned)(r->rng >> 40) % 100000);
        r->next_ns += step;
        if (r->rl == NULL) {    /* the control: answered at once */
            record(r, s, RL_OK, true);
            free(s);
        } else if (rl_check_async(r->rl, key, 1000000, 60000, on_result,
                                  s) == RL_OK) {
            r->pending++;
        } else {
            free(s);
        }
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

static double
p99_ms(int64_t *v, int64_t n)
{
    if (n == 0)
        return 0.0;
    qsort(v, (size_t)n, sizeof(int64_t), cmp_i64);
    return (double)v[n * 99 / 100] / 1000.0;
}

/* The p99 of the library's part, then of the wait, of phase p (whose
   samples it reorders). */
static void
parts_p99_ms(struct phase *p, double *lib, double *wait)
{
    int64_t *w = malloc((size_t)p->n_lat * sizeof(int64_t)), i;

    for (i = 0; i < p->n_lat; i++)
        w[i] = p->lat_us[i] - p->lib_us[i];
    *lib = p99_ms(p->lib_us, p->n_lat);
    *wait = p99_ms(w, p->n_lat);
    free(w);
}

static void
report_open(struct run *r, const char *label)
{
    struct phase *p = &r->ph[3];
    double lib, wait;

    parts_p99_ms(p, &lib, &wait);
    printf("%-12s %s %.0f ms into the outage; from then on "
           "p99 %.3f ms over %lld checks (library %.3f ms, wait %.3f ms)\n",
           label, r->rl != NULL ? "breaker open" : "as if open",
           (double)(r->open_ns - r->phase_end_ns[0]) / 1e6,
           p99_ms(p->lat_us, p->n_lat), (long long)p->n_lat, lib, wait);
}

static void
report(struct run *r, const char *label, const int64_t secs[3])
{
    static const char *const names[3] = {"before", "during", "after"};
    struct phase *p;
    int i;

    for (i = 0; i < 3; i++) {
        p = &r->ph[i];
        printf("%-12s %-6s %9.0f checks/s  p99 %9.3f ms  fallback %6.1f%%\n",
               label, names[i], (double)p->done / (double)secs[i],
               p99_ms(p->lat_us, p->n_lat),
               p->done ? 100.0 * (double)p->fallback / (double)p->done : 0.0);
    }
    if (r->ph[3].n_lat > 0)
        report_open(r, label);
    if (r->rl == NULL)
        return;
    if (r->first_back_ns > 0)
        printf("%-12s back to Redis %.0f ms after SIGCONT\n", label,
               (double)(r->first_back_ns - r->cont_ns) / 1e6);
    else
        printf("%-12s never back to Redis in the run\n", label);
}

/* The answers of each phase by status. */
static void
report_status(const struct run *r)
{
    static const char *const names[3] = {"before", "during", "after"};
    int i, k;

    for (i = 0; i < 3; i++) {
        printf("  %-6s", names[i]);
        for (k = 0; k < -RL_ERR_LAST_; k++)
            if (r->ph[i].by_status[k] > 0)
                printf("  %s %lld", rl_strerror(-k),
                       (long long)r->ph[i].by_status[k]);
        printf("\n");
    }
}

/* The slots from SIGSTOP on with a check over 1 ms, and the log. */
static void
report_timeline(struct run *r)
{
    int64_t i = (r->stop_ns - r->start_ns) / SLOT_NS;
    const struct tslot *ts;
    int k;

    report_status(r);
    printf("  ms from SIGSTOP  checks  max ms  lib ms  tick gap ms  "
           "cpu wait ms  reconn  timeouts  inflight  pending\n");
    for (; i < MAX_SLOTS && r->start_ns + i * SLOT_NS < r->phase_end_ns[2];
         i++) {
        ts = &r->tl[i];
        if (ts->max_us <= 1000 && ts->max_gap_us <= 1000)
            continue;
        printf("  %15.0f  %6lld  %6.2f  %6.2f  %11.2f  %11.2f  %6lld  "
               "%8lld  %8lld  %7lld\n",
               (double)(r->start_ns + i * SLOT_NS - r->stop_ns) / 1e6,
               (long long)ts->n, (double)ts->max_us / 1000.0,
               (double)ts->max_lib_us / 1000.0,
               (double)ts->max_gap_us / 1000.0,
               (double)ts->runq_us / 1000.0, (long long)ts->reconnects,
               (long long)ts->timeouts, (long long)ts->inflight,
               (long long)ts->pending);
    }
    for (k = 0; k < r->n_ev; k++)
        printf("  log %+9.1f ms  %s\n",
               (double)(r->ev[k].t_ns - r->stop_ns) / 1e6, r->ev[k].msg);
}

/* The CPU the run used, the time it waited for one, and the batches. */
static void
report_cpu(const struct run *r, const char *label, const struct rusage *ru0,
           int64_t runq0)
{
    int64_t nb = r->rl != NULL ? rl_metric(r->rl, RL_METRIC_BATCHES) : 0;

    struct rusage ru;
    int64_t runq = runq_wait_ns();
    double cpu;

    getrusage(RUSAGE_SELF, &ru);
    cpu = (double)(ru.ru_utime.tv_sec - ru0->ru_utime.tv_sec +
                   ru.ru_stime.tv_sec - ru0->ru_stime.tv_sec) +
          (double)(ru.ru_utime.tv_usec - ru0->ru_utime.tv_usec +
                   ru.ru_stime.tv_usec - ru0->ru_stime.tv_usec) / 1e6;
    printf("%-12s cpu %.2f s; waited %.0f ms for a CPU; %ld involuntary "
           "switches", label, cpu,
           runq >= 0 && runq0 >= 0 ? (double)(runq - runq0) / 1e6 : -1.0,
           ru.ru_nivcsw - ru0->ru_nivcsw);
    if (nb > 0)
        printf("; %lld batches of %.1f checks", (long long)nb,
               (double)rl_metric(r->rl, RL_METRIC_BATCHED_CHECKS) /
                   (double)nb);
    printf("\n");
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

static void
run_free(struct run *r)
{
    int i;

    for (i = 0; i < 4; i++) {
        free(r->ph[i].lat_us);
        free(r->ph[i].lib_us);
    }
    free(r->tl);
    free(r->ev);
}

/* A run: the limiter with the breaker, without it, or no limiter at all
   (the control: each check answered as it is submitted, so its latency is
   the wait alone, what the open loop and the machine add). */
enum kind { RUN_ON, RUN_OFF, RUN_CONTROL };

static const char *const kind_label[] = {"breaker on", "breaker off",
                                         "no limiter"};

static int
run_setup(struct run *r, const struct opts *o, enum kind k)
{
    rl_config cfg;
    int i;

    memset(r, 0, sizeof(*r));
    for (i = 0; i < 4; i++) {
        r->ph[i].lat_us = malloc(MAX_SAMPLES * sizeof(int64_t));
        r->ph[i].lib_us = malloc(MAX_SAMPLES * sizeof(int64_t));
    }
    r->tl = calloc(MAX_SLOTS, sizeof(*r->tl));
    r->runq_slot = -1;
    if (o->timeline)
        r->ev = calloc(MAX_EVENTS, sizeof(*r->ev));
    rl_config_init(&cfg);
    cfg.redis.port = o->port;
    cfg.algorithm = RL_FIXED_WINDOW;
    cfg.log_level = o->timeline ? RL_LOG_DEBUG : RL_LOG_NONE;
    cfg.log_cb = on_log;
    cfg.log_arg = r;
    cfg.circuit_breaker.enabled = k == RUN_ON;
    cfg.circuit_breaker.recovery_timeout_ms = 1000;
    r->base = bench_base_new(true);
    if (r->base == NULL ||
        (k != RUN_CONTROL && rl_new(r->base, &cfg, &r->rl) != RL_OK))
        return -1;
    r->rate = o->rate;
    r->rng = 42;
    r->start_ns = r->next_ns = now_ns() + 100000000;
    r->phase_end_ns[0] = r->start_ns + o->secs[0] * 1000000000;
    r->phase_end_ns[1] = r->phase_end_ns[0] + o->secs[1] * 1000000000;
    r->phase_end_ns[2] = r->phase_end_ns[1] + o->secs[2] * 1000000000;
    if (k == RUN_CONTROL) /* where the breaker opens, about */
        r->open_ns = r->phase_end_ns[0] + cfg.redis.command_timeout_ms *
                                          1000000;
    return 0;
}

/* One timed run: before, SIGSTOP, outage, SIGCONT, after. */
static int
one_run(const struct opts *o, enum kind k)
{
    struct run r;
    struct event *ev;
    struct timeval tick = {0, (suseconds_t)o->tick_us};
    struct rusage ru0;
    int64_t runq0 = runq_wait_ns();

    getrusage(RUSAGE_SELF, &ru0);
    if (run_setup(&r, o, k) != 0) {
        if (r.base != NULL)
            event_base_free(r.base);
        run_free(&r);
        return -1;
    }
    ev = event_new(r.base, -1, EV_PERSIST, tick_cb, &r);
    event_add(ev, &tick);
    while (now_ns() < r.phase_end_ns[0])
        event_base_loop(r.base, EVLOOP_ONCE);
    r.stop_ns = now_ns();
    if (k != RUN_CONTROL)
        kill(o->pid, SIGSTOP);
    while (now_ns() < r.phase_end_ns[1])
        event_base_loop(r.base, EVLOOP_ONCE);
    if (k != RUN_CONTROL)
        kill(o->pid, SIGCONT);
    r.cont_ns = now_ns();
    event_base_dispatch(r.base);
    report(&r, kind_label[k], o->secs);
    report_cpu(&r, kind_label[k], &ru0, runq0);
    if (o->timeline)
        report_timeline(&r);
    event_free(ev);
    if (r.rl != NULL)
        rl_free(r.rl);
    event_base_free(r.base);
    run_free(&r);
    return 0;
}

/* Reads the command line into o and the runs to do; false: usage. */
static bool
parse_args(int argc, char **argv, struct opts *o, bool runs[3])
{
    const char *v;
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--timeline") == 0) {
            o->timeline = true;
            continue;
        }
        if (i + 1 == argc)
            return false;
        v = argv[++i];
        if (strcmp(argv[i - 1], "--port") == 0)
            o->port = atoi(v);
        else if (strcmp(argv[i - 1], "--rate") == 0)
            o->rate = atoll(v);
        else if (strcmp(argv[i - 1], "--before") == 0)
            o->secs[0] = atoll(v);
        else if (strcmp(argv[i - 1], "--outage") == 0)
            o->secs[1] = atoll(v);
        else if (strcmp(argv[i - 1], "--after") == 0)
            o->secs[2] = atoll(v);
        else if (strcmp(argv[i - 1], "--tick-us") == 0)
            o->tick_us = atoll(v);
        else if (strcmp(argv[i - 1], "--runs") == 0) {
            runs[RUN_ON] = strstr(v, "on") != NULL;
            runs[RUN_OFF] = strstr(v, "off") != NULL;
            runs[RUN_CONTROL] = strstr(v, "control") != NULL;
        } else
            return false;
    }
    return o->rate >= 1 && o->rate <= 1000000 && o->secs[0] >= 1 &&
           o->secs[1] >= 1 && o->secs[2] >= 1 && o->tick_us >= 1 &&
           o->tick_us < 1000000;
}

int
main(int argc, char **argv)
{
    struct opts o = {6379, 0, 20000, 100, {3, 3, 3}, false};
    bool runs[3] = {true, true, false};
    int k;

    if (!parse_args(argc, argv, &o, runs)) {
        fprintf(stderr, "usage: rl-fault --port P [--rate N] [--before S] "
                "[--outage S] [--after S] [--tick-us N] "
                "[--runs on,off,control] [--timeline]\n");
        return 2;
    }
    o.pid = redis_pid(o.port);
    if (o.pid <= 0) {
        fprintf(stderr, "rl-fault: no redis-server on 127.0.0.1:%d\n",
                o.port);
        return 1;
    }
    printf("rl-fault: %lld checks/s offered (a tick every %lld us), Redis "
           "stopped %llds after %llds\n", (long long)o.rate,
           (long long)o.tick_us, (long long)o.secs[1],
           (long long)o.secs[0]);
    for (k = RUN_ON; k <= RUN_CONTROL; k++)
        if (runs[k] && one_run(&o, (enum kind)k) != 0)
            return 1;
    return 0;
}
