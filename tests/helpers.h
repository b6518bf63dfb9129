/*
 * helpers.h: what the asynchronous test suites share: a controllable
 * clock, a recorder of callbacks, a log capture, and loop helpers.
 */
#ifndef RL_TEST_HELPERS_H
#define RL_TEST_HELPERS_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <ratelimit.h>

/* A clock for rl_config.clock: returns *(int64_t *)arg. */
int64_t th_clock(void *arg);

/* One recorded callback. */
struct th_rec {
    rl_result r;
    char key[RL_KEY_MAX + 1];
    int status;      /* resets: the status given */
    int calls;       /* must end at exactly 1 */
    bool sync;       /* ran while inside the submitting call */
};

/* Set while a test is inside rl_check_async, to catch synchronous calls. */
extern bool th_in_submit;

/* Callbacks that record into the struct th_rec given as arg. */
void th_check_cb(const rl_result *r, void *arg);
void th_done_cb(int status, void *arg);

/* Log capture: the last lines the library logged. */
struct th_log {
    char text[4096];
    int lines;
};
void th_log_cb(rl_log_level level, const char *msg, void *arg);

/* Runs the loop until no event is active (callbacks delivered). */
void th_drain(struct event_base *base);
/* Runs the loop for about ms milliseconds of real time. */
void th_run_for(struct event_base *base, int ms);

/* Runs the loop until *counter >= target or timeout_ms passed; returns
   whether the target was reached. */
bool th_wait_for(struct event_base *base, const int *counter, int target,
                 int timeout_ms);

/* Monotonic milliseconds, for timing a test's waits. */
int64_t th_mono_ms(void);

/* A local-backend configuration with the test clock. */
void th_local_config(rl_config *cfg, rl_algorithm alg, int64_t *now);

/* A Redis-backend configuration for the server at host:port, with a 2 s
   command timeout; the test clock reads *now, or Redis TIME decides when
   now is NULL.  host must outlive the limiter made from cfg. */
void th_redis_config(rl_config *cfg, rl_algorithm alg, const char *host,
                     int port, int64_t *now);

#endif
