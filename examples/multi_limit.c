/*
 * multi_limit.c: one request that must pass three limits at once.
 *
 * An API call by user 42 on /search counts against a per-user limit (5 a
 * second), a per-endpoint limit (3 a second for this user on /search)
 * and a daily quota (1000 a day).  rl_check_all_async admits it only if all three
 * admit, and then charges all three; a denied call charges none, so the
 * per-user quota is not eaten by calls the endpoint limit refused.  The
 * keys share the hash tag {user:42} so that under Redis Cluster the three
 * limits live on one node and the check stays atomic.  Six calls: the
 * first three pass, the last three are denied by the endpoint limit alone
 * (the only one with a retry time); the user limit still has 2 left.
 *
 * Settings come from the environment (REDIS_URL, ...); without any, it
 * runs on the in-process store.  Exit status 0, or 1 on any error.
 *
 *   cc multi_limit.c $(pkg-config --cflags --libs ratelimit libevent)
 */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <ratelimit.h>

#define CALLS 6

static int left = CALLS;
static int failed;

/* One result per limit, in the order asked; allowed is the verdict. */
static void
on_decision(const rl_result *r, size_t n, void *arg)
{
    rl_limiter *rl = arg;
    size_t i;

    printf("%s:", r[0].allowed ? "allowed" : "denied ");
    for (i = 0; i < n; i++) {
        printf("  %s %lld left", r[i].key, (long long)r[i].remaining);
        if (r[i].retry_after_ms > 0)
            printf(" (denied it, retry in %lld ms)",
                   (long long)r[i].retry_after_ms);
        if (r[i].status != RL_OK)
            failed = 1;
    }
    printf("\n");
    if (--left == 0)
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
    static const rl_request limits[3] = {
        { "{user:42}", 5, 1000, 1 },         /* the user */
        { "{user:42}/search", 3, 1000, 1 },  /* the user on /search */
        { "{user:42}:day", 1000, 86400000, 1 }, /* the day's quota */
    };
    struct event_base *base = event_base_new();
    rl_limiter *rl = NULL;
    rl_config cfg;
    int i, rc;

    if (base == NULL)
        return 1;
    rl_config_init(&cfg);
    if (!is_set("REDIS_URL") && !is_set("REDIS_HOST") &&
        !is_set("RATE_LIMIT_BACKEND"))
        cfg.backend = RL_BACKEND_LOCAL;
    rc = rl_config_from_env(&cfg);
    if (rc == RL_OK)
        rc = rl_new(base, &cfg, &rl);
    for (i = 0; rc == RL_OK && i < CALLS; i++)
        rc = rl_check_all_async(rl, limits, 3, on_decision, rl);
    if (rc != RL_OK) {
        fprintf(stderr, "multi_limit: %s\n", rl_strerror(rc));
        rl_free(rl);
        event_base_free(base);
        return 1;
    }
    event_base_dispatch(base);
    event_base_free(base);
    return failed;
}
