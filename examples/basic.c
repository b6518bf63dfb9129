/*
 * basic.c: the smallest complete libratelimit program.
 *
 * Makes a limiter on a libevent loop, asks five times in a row whether one
 * more request on the key "user:42" may pass a limit of 3 per 1000 ms, and
 * prints each decision: the first three pass, the last two are denied with
 * the time to wait.  Settings come from the environment (REDIS_URL,
 * RATE_LIMIT_BACKEND, ...); with no backend variable set it uses the
 * in-process store, so it runs anywhere.  Exit status 0, or 1 on any error.
 *
 *   cc basic.c $(pkg-config --cflags --libs ratelimit libevent)
 */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <ratelimit.h>

#define CHECKS 5

static const char *const source_name[] = { "backend", "cache", "fallback" };

static int left = CHECKS; /* decisions still to come */
static int failed;

/* Prints one decision; the last one frees the limiter, which lets
   event_base_dispatch return. */
static void
on_decision(const rl_result *r, void *arg)
{
    rl_limiter *rl = arg;

    printf("%s: %-7s remaining %lld, retry after %lld ms (from the %s)\n",
           r->key, r->allowed ? "allowed" : "denied",
           (long long)r->remaining, (long long)r->retry_after_ms,
           source_name[r->source]);
    if (r->status != RL_OK) {
        fprintf(stderr, "basic: %s\n", rl_strerror(r->status));
        failed = 1;
    }
    if (--left == 0)
        rl_free(rl);
}

/* A backend variable set (and not empty) chooses the backend itself. */
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
    if (rc != RL_OK) {
        fprintf(stderr, "basic: %s\n", rl_strerror(rc));
        event_base_free(base);
        return 1;
    }
    for (i = 0; i < CHECKS; i++) {
        rc = rl_check_async(rl, "user:42", 3, 1000, on_decision, rl);
        if (rc != RL_OK) {
            fprintf(stderr, "basic: %s\n", rl_strerror(rc));
            failed = 1;
            if (--left == 0)    /* refused: it will never call back */
                rl_free(rl);
        }
    }
    event_base_dispatch(base);
    event_base_free(base);
    return failed;
}
