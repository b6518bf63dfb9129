/*
 * monitor.c: what an operator sees.  Runs a little traffic through a
 * limiter (the local backend unless REDIS_URL / REDIS_HOST /
 * RATE_LIMIT_BACKEND say otherwise), adds an alert on the denial rate,
 * then prints the health verdict and the Prometheus text exposition that a
 * scrape of /metrics would return (examples/ has no HTTP server: serve
 * this buffer from your own evhttp handler).
 *
 *   cc monitor.c $(pkg-config --cflags --libs ratelimit libevent)
 */
#include <stdio.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <ratelimit.h>

static int pending;

static void
on_decision(const rl_result *r, void *arg)
{
    (void)r;
    (void)arg;
    pending--;
}

static void
on_alert(const char *name, double value, double threshold, bool fired,
         void *arg)
{
    (void)arg;
    printf("alert %s %s: %.3f (threshold %.3f)\n", name,
           fired ? "fired" : "cleared", value, threshold);
}

static void
print_health(rl_limiter *rl)
{
    rl_health h;
    int i;

    if (rl_health_get(rl, &h) != RL_OK)
        return;
    printf("health: %s\n", rl_health_status_name(h.status));
    for (i = 0; i < h.n_reasons; i++)
        printf("  - %s\n", h.reasons[i]);
}

/* A second later the alert timer has judged the window: report. */
static void
report_cb(evutil_socket_t fd, short what, void *arg)
{
    rl_limiter *rl = arg;
    struct evbuffer *out = evbuffer_new();

    (void)fd;
    (void)what;
    print_health(rl);
    rl_metrics_prometheus(rl, out);
    fwrite(evbuffer_pullup(out, -1), 1, evbuffer_get_length(out), stdout);
    evbuffer_free(out);
    rl_free(rl);
}

static int
is_set(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0';
}

int
main(void)
{
    struct event_base *base = event_base_new();
    struct timeval later = {1, 200000};
    rl_limiter *rl = NULL;
    rl_config cfg;
    int i;

    rl_config_init(&cfg);
    if (!is_set("REDIS_URL") && !is_set("REDIS_HOST") &&
        !is_set("RATE_LIMIT_BACKEND"))
        cfg.backend = RL_BACKEND_LOCAL;
    if (rl_config_from_env(&cfg) != RL_OK ||
        rl_new(base, &cfg, &rl) != RL_OK)
        return 1;
    rl_alert_callback_set(rl, on_alert, NULL);
    rl_alert_add(rl, "many-denials", RL_ALERT_DENIAL_RATE, 0.3);
    for (i = 0; i < 1000; i++)     /* two keys, 50 allowed on each */
        if (rl_check_async(rl, i % 10 ? "user:1" : "user:2", 50, 60000,
                           on_decision, NULL) == RL_OK)
            pending++;
    event_base_once(base, -1, EV_TIMEOUT, report_cb, rl, &later);
    event_base_dispatch(base);
    event_base_free(base);
    return 0;
}
