/*
 * test_fake.c: the Redis backend against a fake Redis (fake_redis.h) that
 * answers wrongly on purpose: replies of the wrong shape, type or range,
 * errors, NOSCRIPT forever, half a reply, no reply, a late reply, a closed
 * connection, bytes that are not RESP, a refused handshake, and a server
 * that answers nothing at all; and rl_free with checks in flight, from
 * outside and from inside a callback.
 *
 * Most tests submit a burst in one tick (100 checks: two batches of 64
 * and 36 with the default batch.max), wait for the callbacks, then wait
 * 300 ms more to prove no second callback comes, and assert for every
 * check: exactly one callback, never synchronous, the status, source and
 * decision the mode calls for.  The fake's counters tell what the library
 * really sent (how many EVALSHA, SCRIPT LOAD, connections), so "nothing
 * was resent" is an exact assertion.  Each test ends with rl_free and an
 * empty loop; the suite runs under ASan and LeakSanitizer in CI.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "check_main.h"
#include "fake_redis.h"
#include "helpers.h"

#define N_CHECKS 100          /* one burst: batches of 64 and 36 */
#define N_SLOTS 128           /* checks of one test, bursts summed */
#define MAX_REQ 10            /* max_requests of every check */
#define WINDOW_MS 1000
#define CMD_TIMEOUT_MS 200
#define CONNECT_TIMEOUT_MS 500
#define QUIET_MS 300          /* after the last callback: nothing more */
#define WAIT_MS 3000          /* for callbacks that must come */
#define LATE_MS 250           /* a deadline may be this late under ASan */

/* One check: its record, and the run it counts in. */
struct slot {
    struct th_rec rec;
    int64_t at_ms;            /* when its callback ran (monotonic) */
};

/* The state of one test; static because the records are large. */
static struct run {
    struct event_base *base;
    struct fake_redis *fake;
    rl_limiter *rl;
    struct th_log log;
    struct slot slots[N_SLOTS];
    int calls;                /* callbacks of the current run */
    int next;                 /* slots used */
    int64_t submit_ms;        /* the last burst's submission */
} run;

/* ---- helpers ---- */

static void
slot_cb(const rl_result *r, void *arg)
{
    struct slot *s = arg;

    th_check_cb(r, &s->rec);
    s->at_ms = th_mono_ms();
    run.calls++;
}

static void
config_for(rl_config *cfg, const struct fake_redis *f)
{
    rl_config_init(cfg);
    cfg->backend = RL_BACKEND_REDIS;
    cfg->algorithm = RL_FIXED_WINDOW;
    cfg->redis.host = "127.0.0.1";
    cfg->redis.port = fake_redis_port(f);
    cfg->redis.command_timeout_ms = CMD_TIMEOUT_MS;
    cfg->redis.connect_timeout_ms = CONNECT_TIMEOUT_MS;
    cfg->log_cb = th_log_cb;
    cfg->log_arg = &run.log;
}

/* A fresh base, a fake in `mode`; the limiter is left to the test. */
static void
start_fake(enum fake_mode mode)
{
    memset(&run, 0, sizeof(run));
    run.base = event_base_new();
    ck_assert_ptr_nonnull(run.base);
    run.fake = fake_redis_start(mode);
    ck_assert_ptr_nonnull(run.fake);
}

/* start_fake, then a limiter on it with cfg's fallback. */
static void
start(enum fake_mode mode, rl_fallback fallback)
{
    rl_config cfg;

    start_fake(mode);
    config_for(&cfg, run.fake);
    cfg.fallback = fallback;
    ck_assert_int_eq(rl_new(run.base, &cfg, &run.rl), RL_OK);
}

/* Submits n checks on distinct keys in one tick, each with cb and its
 * slot; returns the first slot. */
static int
submit_with(int n, rl_check_cb cb)
{
    int first = run.next, i;
    char key[32];

    ck_assert_int_le(first + n, N_SLOTS);
    run.submit_ms = th_mono_ms();
    th_in_submit = true;
    for (i = first; i < first + n; i++) {
        snprintf(key, sizeof(key), "user:%d", i);
        ck_assert_int_eq(rl_check_async(run.rl, key, MAX_REQ, WINDOW_MS,
                                        cb, &run.slots[i]), RL_OK);
    }
    th_in_submit = false;
    run.next = first + n;
    return first;
}

static int
submit(int n)
{
    return submit_with(n, slot_cb);
}

/* Waits for every callback of the slots so far, then QUIET_MS more, and
 * asserts each ran exactly once, from the loop. */
static void
wait_all(void)
{
    int i;

    ck_assert(th_wait_for(run.base, &run.calls, run.next, WAIT_MS));
    th_run_for(run.base, QUIET_MS);
    ck_assert_int_eq(run.calls, run.next);
    for (i = 0; i < run.next; i++) {
        ck_assert_int_eq(run.slots[i].rec.calls, 1);
        ck_assert(!run.slots[i].rec.sync);
    }
}

/* Asserts the result of slots [first, first + n). */
static void
assert_results(int first, int n, int status, rl_source source, bool allowed)
{
    const rl_result *r;
    char key[32];
    int i;

    for (i = first; i < first + n; i++) {
        r = &run.slots[i].rec.r;
        snprintf(key, sizeof(key), "user:%d", i);
        ck_assert_msg(r->status == status, "check %d: status %d (%s), "
                      "wanted %d", i, r->status, rl_strerror(r->status),
                      status);
        ck_assert_int_eq(r->source, source);
        ck_assert_int_eq(r->allowed, allowed);
        ck_assert_int_eq(r->limit, MAX_REQ);
        ck_assert_str_eq(run.slots[i].rec.key, key);
        ck_assert_uint_eq(r->key_len, strlen(key));
    }
}

/* The fallback's answer (allow, the default) with `status`. */
static void
assert_fallback_allow(int first, int n, int status)
{
    int i;

    assert_results(first, n, status, RL_SOURCE_FALLBACK, true);
    for (i = first; i < first + n; i++)
        ck_assert_int_eq(run.slots[i].rec.r.remaining, MAX_REQ);
}

static long
fake_count(const char *name)
{
    return fake_redis_count(run.fake, name);
}

static int64_t
metric(int id)
{
    return rl_metric(run.rl, id);
}

/* Frees the limiter (no callback may run: all completed), then the rest. */
static void
finish(void)
{
    int calls = run.calls;

    ck_assert_int_eq(metric(RL_METRIC_PENDING), 0);
    rl_free(run.rl);
    ck_assert_int_eq(run.calls, calls);
    th_drain(run.base);
    ck_assert_int_eq(event_base_get_num_events(run.base,
                                               EVENT_BASE_COUNT_ADDED), 0);
    event_base_free(run.base);
    fake_redis_stop(run.fake);
}

/* ---- the fake itself ---- */

static redisReply *
argv_cmd(redisContext *c, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);

    ck_assert_ptr_nonnull(r);
    return r;
}

/* EVALSHA sha 2 a b "" 0 (max window cost) x 2 on c. */
static redisReply *
evalsha_two(redisContext *c, const char *sha)
{
    const char *argv[] = {"EVALSHA", sha, "2", "a", "b", "", "0",
                          "10", "1000", "3", "5", "60000", "5", ""};

    return argv_cmd(c, 14, argv);
}

/* Asserts r is the status reply `text`, and frees it. */
static void
expect_status(redisReply *r, const char *text)
{
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
    ck_assert_str_eq(r->str, text);
    freeReplyObject(r);
}

START_TEST(fake_speaks_resp)
{
    static const char sha[] = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db";
    static const long long want[] = {1, 7, 1000, 0, 1, 0, 60000, 0};
    const char *load[] = {"SCRIPT", "LOAD", "return 1"};
    struct fake_redis *f = fake_redis_start(FAKE_GOOD);
    redisContext *c;
    redisReply *r;
    size_t i;

    ck_assert_ptr_nonnull(f);
    c = redisConnect("127.0.0.1", fake_redis_port(f));
    ck_assert(c != NULL && c->err == 0);
    expect_status(redisCommand(c, "PING"), "PONG");
    expect_status(redisCommand(c, "AUTH x"), "OK");
    expect_status(redisCommand(c, "SELECT 3"), "OK");
    r = evalsha_two(c, sha);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    ck_assert(strncmp(r->str, "NOSCRIPT", 8) == 0);
    freeReplyObject(r);
    r = argv_cmd(c, 3, load);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(r->str, sha); /* SHA-1 of "return 1", as Redis says */
    freeReplyObject(r);
    r = evalsha_two(c, sha);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 8);
    for (i = 0; i < 8; i++)
        ck_assert_int_eq(r->element[i]->integer, want[i]);
    freeReplyObject(r);
    fake_redis_set_mode(f, FAKE_NOT_ARRAY);
    expect_status(redisCommand(c, "EVALSHA x 0"), "OK");
    redisFree(c);
    ck_assert_int_eq(fake_redis_count(f, "evalsha"), 3);
    ck_assert_int_eq(fake_redis_count(f, "SCRIPT LOAD"), 1);
    ck_assert_int_eq(fake_redis_count(f, "noscript"), 1);
    ck_assert_int_eq(fake_redis_count(f, "checks"), 4);
    ck_assert_int_eq(fake_redis_count(f, "connections"), 1);
    ck_assert_int_eq(fake_redis_count(f, "nonsense"), -1);
    fake_redis_stop(f);
}
END_TEST

/* ---- a good server ---- */

START_TEST(good_replies_are_delivered)
{
    const rl_result *r;
    int i;

    start(FAKE_GOOD, RL_FALLBACK_ALLOW);
    submit(N_CHECKS);
    wait_all();
    assert_results(0, N_CHECKS, RL_OK, RL_SOURCE_BACKEND, true);
    for (i = 0; i < N_CHECKS; i++) {
        r = &run.slots[i].rec.r;
        ck_assert_int_eq(r->remaining, MAX_REQ - 1);
        ck_assert_int_eq(r->reset_ms, WINDOW_MS);
        ck_assert_int_eq(r->retry_after_ms, 0);
    }
    /* The library's SHA-1 is the one the fake computed from the text. */
    ck_assert_int_eq(fake_count("noscript"), 0);
    ck_assert_int_eq(fake_count("EVALSHA"), 2);
    ck_assert_int_eq(fake_count("checks"), N_CHECKS);
    ck_assert_int_eq(fake_count("SCRIPT LOAD"), 1);
    ck_assert_int_eq(fake_count("AUTH"), 0);
    ck_assert_int_eq(fake_count("SELECT"), 0);
    ck_assert_int_eq(fake_count("OTHER"), 0);
    ck_assert_int_eq(fake_count("connections"), 1);
    ck_assert_int_eq(metric(RL_METRIC_BATCHES), 2);
    ck_assert_int_eq(metric(RL_METRIC_BATCHED_CHECKS), N_CHECKS);
    ck_assert_int_eq(metric(RL_METRIC_SOURCE_BACKEND), N_CHECKS);
    ck_assert_int_eq(metric(RL_METRIC_INFLIGHT), 0);
    finish();
}
END_TEST

START_TEST(handshake_sends_auth_and_select)
{
    rl_config cfg;

    start_fake(FAKE_GOOD);
    config_for(&cfg, run.fake);
    cfg.redis.password = "secret";
    cfg.redis.db = 3;
    ck_assert_int_eq(rl_new(run.base, &cfg, &run.rl), RL_OK);
    submit(10);
    wait_all();
    assert_results(0, 10, RL_OK, RL_SOURCE_BACKEND, true);
    ck_assert_int_eq(fake_count("AUTH"), 1);
    ck_assert_int_eq(fake_count("SELECT"), 1);
    ck_assert_int_eq(fake_count("SCRIPT LOAD"), 1);
    ck_assert_int_eq(fake_count("EVALSHA"), 1);
    finish();
}
END_TEST

/* The mode changes under one connection; it carries on each time. */
START_TEST(mode_changes_on_one_connection)
{
    start(FAKE_GOOD, RL_FALLBACK_ALLOW);
    submit(10);
    wait_all();
    fake_redis_set_mode(run.fake, FAKE_ERROR);
    submit(10);
    wait_all();
    fake_redis_set_mode(run.fake, FAKE_GOOD);
    submit(10);
    wait_all();
    assert_results(0, 10, RL_OK, RL_SOURCE_BACKEND, true);
    assert_fallback_allow(10, 10, RL_ERR_REDIS);
    assert_results(20, 10, RL_OK, RL_SOURCE_BACKEND, true);
    ck_assert_int_eq(fake_count("EVALSHA"), 3);
    ck_assert_int_eq(fake_count("connections"), 1);
    finish();
}
END_TEST

/* ---- replies of the wrong shape ---- */

static const enum fake_mode garbage_modes[] = {
    FAKE_WRONG_COUNT, FAKE_WRONG_TYPE, FAKE_NOT_ARRAY, FAKE_NEGATIVE,
    FAKE_HUGE, FAKE_ALLOWED_WITH_RETRY, FAKE_NIL, FAKE_NESTED
};
#define N_GARBAGE_MODES \
    ((int)(sizeof(garbage_modes) / sizeof(garbage_modes[0])))

/* Nothing of a bad reply is trusted, even for the batch's first checks;
   the connection stays (the stream itself is fine). */
START_TEST(bad_reply_is_a_protocol_error)
{
    enum fake_mode mode = garbage_modes[_i];

    start(mode, RL_FALLBACK_ALLOW);
    submit(N_CHECKS);
    wait_all();
    assert_fallback_allow(0, N_CHECKS, RL_ERR_PROTOCOL);
    ck_assert_msg(strstr(run.log.text, "wrong shape") != NULL,
                  "%s: log: %s", fake_mode_name(mode), run.log.text);
    ck_assert_int_eq(fake_count("EVALSHA"), 2);
    ck_assert_int_eq(fake_count("checks"), N_CHECKS);
    ck_assert_int_eq(fake_count("SCRIPT LOAD"), 1);
    ck_assert_int_eq(fake_count("connections"), 1);
    ck_assert_int_eq(metric(RL_METRIC_SOURCE_FALLBACK), N_CHECKS);
    ck_assert_int_eq(metric(RL_METRIC_INFLIGHT), 0);
    finish();
}
END_TEST

START_TEST(deny_fallback_on_a_bad_reply)
{
    const rl_result *r;
    int i;

    start(FAKE_WRONG_TYPE, RL_FALLBACK_DENY);
    submit(N_CHECKS);
    wait_all();
    assert_results(0, N_CHECKS, RL_ERR_PROTOCOL, RL_SOURCE_FALLBACK, false);
    for (i = 0; i < N_CHECKS; i++) {
        r = &run.slots[i].rec.r;
        ck_assert_int_eq(r->remaining, 0);
        ck_assert_int_eq(r->retry_after_ms, WINDOW_MS);
    }
    ck_assert_int_eq(metric(RL_METRIC_DENIED), N_CHECKS);
    finish();
}
END_TEST

/* ---- multi-limit replies ---- */

static void
group_cb(const rl_result *res, size_t n, void *arg)
{
    rl_result *out = arg;
    size_t i;

    for (i = 0; i < n; i++)
        out[i] = res[i];
    run.calls++;
}

/*
 * One verdict per group: a reply that admits two limits of a multi-limit
 * check and denies the third is not one the script can give, so the
 * group fails over as one with RL_ERR_PROTOCOL; the same numbers for
 * single checks are good answers.
 */
START_TEST(split_verdict_in_a_group_is_a_protocol_error)
{
    rl_request lim[3] = {{"{g}a", MAX_REQ, WINDOW_MS, 1},
                         {"{g}b", MAX_REQ, WINDOW_MS, 1},
                         {"{g}c", MAX_REQ, WINDOW_MS, 1}};
    rl_result out[3];
    int i;

    start(FAKE_SPLIT_VERDICT, RL_FALLBACK_ALLOW);
    submit(N_CHECKS);   /* batches of 64 and 36: each one's last denied */
    wait_all();
    assert_results(0, 63, RL_OK, RL_SOURCE_BACKEND, true);
    assert_results(63, 1, RL_OK, RL_SOURCE_BACKEND, false);
    assert_results(64, 35, RL_OK, RL_SOURCE_BACKEND, true);
    assert_results(99, 1, RL_OK, RL_SOURCE_BACKEND, false);
    ck_assert_int_eq(rl_check_all_async(run.rl, lim, 3, group_cb, out),
                     RL_OK);
    ck_assert(th_wait_for(run.base, &run.calls, N_CHECKS + 1, 5000));
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(out[i].status, RL_ERR_PROTOCOL);
        ck_assert_int_eq(out[i].source, RL_SOURCE_FALLBACK);
        ck_assert(out[i].allowed);
    }
    ck_assert_int_eq(fake_count("checks"), N_CHECKS + 3);
    finish();
}
END_TEST

/* ---- errors ---- */

START_TEST(error_reply_is_a_redis_error)
{
    start(FAKE_ERROR, RL_FALLBACK_ALLOW);
    submit(N_CHECKS);
    wait_all();
    assert_fallback_allow(0, N_CHECKS, RL_ERR_REDIS);
    ck_assert_int_eq(fake_count("EVALSHA"), 2);
    ck_assert_int_eq(fake_count("connections"), 1);
    ck_assert_int_eq(metric(RL_METRIC_REDIS_ERRORS), 2);
    finish();
}
END_TEST

/*
 * NOSCRIPT forever: each batch is resent exactly once, then fails.  The
 * library loads the script again once for the batches that were in flight
 * together (pipeline.c's `reloading`): both NOSCRIPT replies arrive before
 * the SCRIPT LOAD's, so two batches cost one reload, not two.
 */
START_TEST(noscript_forever_retries_once)
{
    start(FAKE_NOSCRIPT_ALWAYS, RL_FALLBACK_ALLOW);
    submit(N_CHECKS);
    wait_all();
    assert_fallback_allow(0, N_CHECKS, RL_ERR_REDIS);
    ck_assert_int_eq(fake_count("EVALSHA"), 2 * 2);
    ck_assert_int_eq(fake_count("checks"), 2 * N_CHECKS);
    ck_assert_int_eq(fake_count("SCRIPT LOAD"), 1 + 1);
    ck_assert_int_eq(fake_count("noscript"), 4);
    ck_assert_int_eq(metric(RL_METRIC_REDIS_NOSCRIPT), 4);
    ck_assert_int_eq(metric(RL_METRIC_REDIS_ERRORS), 2);
    ck_assert_int_eq(fake_count("connections"), 1);
    finish();
}
END_TEST

/* One batch: one SCRIPT LOAD and one resend. */
START_TEST(noscript_forever_one_batch)
{
    start(FAKE_NOSCRIPT_ALWAYS, RL_FALLBACK_ALLOW);
    submit(10);
    wait_all();
    assert_fallback_allow(0, 10, RL_ERR_REDIS);
    ck_assert_int_eq(fake_count("EVALSHA"), 2);
    ck_assert_int_eq(fake_count("SCRIPT LOAD"), 1 + 1);
    finish();
}
END_TEST

/* ---- no reply ---- */

static const enum fake_mode stalled_modes[] = {FAKE_TRUNCATED, FAKE_SILENT};

/* The deadline answers; the batches stay in flight until rl_free. */
START_TEST(no_reply_times_out)
{
    int64_t late;
    int i;

    start(stalled_modes[_i], RL_FALLBACK_ALLOW);
    submit(N_CHECKS);
    wait_all();
    assert_fallback_allow(0, N_CHECKS, RL_ERR_TIMEOUT);
    for (i = 0; i < N_CHECKS; i++) {
        late = run.slots[i].at_ms - run.submit_ms;
        ck_assert_int_ge(late, CMD_TIMEOUT_MS - 2);
        ck_assert_int_le(late, CMD_TIMEOUT_MS + LATE_MS);
    }
    ck_assert_int_eq(fake_count("EVALSHA"), 2);
    ck_assert_int_eq(fake_count("connections"), 1);
    ck_assert_int_eq(metric(RL_METRIC_TIMEOUTS), N_CHECKS);
    ck_assert_int_eq(metric(RL_METRIC_INFLIGHT), 2);
    finish();
}
END_TEST

/* MUTE: not even the handshake is answered.  The checks wait for the
   connection, time out, and the connect timeout starts a new attempt. */
START_TEST(mute_server_times_out_and_reconnects)
{
    start(FAKE_MUTE, RL_FALLBACK_ALLOW);
    submit(N_CHECKS);
    wait_all();
    assert_fallback_allow(0, N_CHECKS, RL_ERR_TIMEOUT);
    th_run_for(run.base, CONNECT_TIMEOUT_MS + 300);
    ck_assert_int_eq(fake_count("EVALSHA"), 0);
    ck_assert_int_eq(fake_count("SCRIPT LOAD"), fake_count("connections"));
    ck_assert_int_ge(fake_count("connections"), 2);
    ck_assert_int_eq(metric(RL_METRIC_TIMEOUTS), N_CHECKS);
    ck_assert_int_ge(metric(RL_METRIC_REDIS_RECONNECTS), 1);
    finish();
}
END_TEST

/* A reply after the deadline finds its checks done: it is read and
   dropped, never a second callback, and the connection stays in step. */
START_TEST(late_reply_is_dropped)
{
    int first;

    start(FAKE_LATE, RL_FALLBACK_ALLOW);
    submit(N_CHECKS);
    wait_all(); /* the replies come at FAKE_LATE_MS, inside the quiet */
    assert_fallback_allow(0, N_CHECKS, RL_ERR_TIMEOUT);
    ck_assert_int_eq(metric(RL_METRIC_TIMEOUTS), N_CHECKS);
    ck_assert_int_eq(metric(RL_METRIC_INFLIGHT), 0);
    ck_assert_int_eq(metric(RL_METRIC_SOURCE_BACKEND), 0);
    fake_redis_set_mode(run.fake, FAKE_GOOD);
    first = submit(10);
    wait_all();
    assert_results(first, 10, RL_OK, RL_SOURCE_BACKEND, true);
    ck_assert_int_eq(fake_count("EVALSHA"), 3);
    ck_assert_int_eq(fake_count("connections"), 1);
    finish();
}
END_TEST

/*
 * The handshake is refused (SCRIPT LOAD gets an error): the library gives
 * the connection up from inside its own reply callback, the queued checks
 * fail at once rather than at their deadline, and it keeps reconnecting.
 */
START_TEST(refused_handshake_fails_fast)
{
    int i;

    start(FAKE_LOAD_ERROR, RL_FALLBACK_ALLOW);
    submit(N_CHECKS);
    wait_all();
    assert_fallback_allow(0, N_CHECKS, RL_ERR_REDIS);
    for (i = 0; i < N_CHECKS; i++)
        ck_assert_int_lt(run.slots[i].at_ms - run.submit_ms,
                         CMD_TIMEOUT_MS);
    ck_assert_msg(strstr(run.log.text, "handshake refused") != NULL,
                  "log: %s", run.log.text);
    ck_assert_int_eq(fake_count("EVALSHA"), 0);
    ck_assert_int_ge(fake_count("connections"), 2);
    ck_assert_int_eq(metric(RL_METRIC_TIMEOUTS), 0);
    finish();
}
END_TEST

/* ---- the connection breaks ---- */

/* After the failure the library reconnects; a later burst is served. */
static void
assert_recovers(void)
{
    long evalsha = fake_count("EVALSHA");
    int first;

    ck_assert_int_ge(fake_count("connections"), 2);
    ck_assert_int_ge(metric(RL_METRIC_REDIS_RECONNECTS), 1);
    fake_redis_set_mode(run.fake, FAKE_GOOD);
    first = submit(10);
    wait_all();
    assert_results(first, 10, RL_OK, RL_SOURCE_BACKEND, true);
    ck_assert_int_eq(fake_count("EVALSHA"), evalsha + 1);
}

/* A command that may have run is never resent: two batches, sent once. */
START_TEST(closed_connection_is_not_resent)
{
    start(FAKE_CLOSE, RL_FALLBACK_ALLOW);
    submit(N_CHECKS);
    wait_all();
    assert_fallback_allow(0, N_CHECKS, RL_ERR_REDIS);
    ck_assert_int_eq(fake_count("EVALSHA"), 2);
    ck_assert_int_eq(fake_count("checks"), N_CHECKS);
    assert_recovers();
    finish();
}
END_TEST

/*
 * Bytes that are not RESP: hiredis's reader fails ("Protocol error"),
 * hiredis disconnects and frees the context, and every pending reply
 * callback gets NULL: RL_ERR_REDIS, not RL_ERR_PROTOCOL (the library
 * never sees a reply to judge).
 */
START_TEST(garbage_bytes_drop_the_connection)
{
    start(FAKE_GARBAGE, RL_FALLBACK_ALLOW);
    submit(N_CHECKS);
    wait_all();
    assert_fallback_allow(0, N_CHECKS, RL_ERR_REDIS);
    ck_assert_int_eq(fake_count("EVALSHA"), 2);
    assert_recovers();
    finish();
}
END_TEST

/* ---- shutdown ---- */

static const enum fake_mode held_modes[] = {FAKE_SILENT, FAKE_MUTE};

/*
 * rl_free with every check pending (SILENT: sent, unanswered; MUTE:
 * queued behind a handshake that never completes): each callback runs
 * exactly once, inside rl_free, with RL_ERR_SHUTDOWN.
 */
START_TEST(free_completes_checks_in_flight)
{
    enum fake_mode mode = held_modes[_i];
    long sent = mode == FAKE_SILENT ? 2 : 0;
    int i;

    start(mode, RL_FALLBACK_ALLOW);
    submit(N_CHECKS);
    for (i = 0; i < 30 && fake_count("EVALSHA") < sent; i++)
        th_run_for(run.base, 5);
    th_run_for(run.base, 10);
    ck_assert_int_eq(fake_count("EVALSHA"), sent);
    ck_assert_int_eq(metric(RL_METRIC_INFLIGHT), sent);
    ck_assert_int_eq(run.calls, 0);
    ck_assert_int_lt(th_mono_ms() - run.submit_ms, CMD_TIMEOUT_MS);
    rl_free(run.rl);
    ck_assert_int_eq(run.calls, N_CHECKS);
    for (i = 0; i < N_CHECKS; i++) {
        ck_assert_int_eq(run.slots[i].rec.calls, 1);
        ck_assert(!run.slots[i].rec.sync);
    }
    assert_fallback_allow(0, N_CHECKS, RL_ERR_SHUTDOWN);
    th_run_for(run.base, QUIET_MS);
    ck_assert_int_eq(run.calls, N_CHECKS);
    event_base_free(run.base);
    fake_redis_stop(run.fake);
}
END_TEST

/* The first callback frees the limiter: calls before it. */
static int calls_at_free = -1;

static void
free_in_cb(const rl_result *r, void *arg)
{
    slot_cb(r, arg);
    if (calls_at_free < 0) {
        calls_at_free = run.calls;
        rl_free(run.rl);
        run.rl = NULL;
    }
}

/*
 * rl_free inside a callback, with checks still in flight: the first
 * burst times out (SILENT) and its first callback frees the limiter
 * while the second burst waits for its reply.  Every check gets exactly
 * one callback: the first burst its timeout (or the shutdown, for one
 * whose deadline had not yet been reached in that tick), the second the
 * shutdown; the limiter goes when the callback returns, and the loop is
 * left empty.
 */
START_TEST(free_inside_a_callback_with_checks_in_flight)
{
    int i, status;

    start(FAKE_SILENT, RL_FALLBACK_ALLOW);
    submit_with(10, free_in_cb);
    th_run_for(run.base, 50);
    submit(10);
    ck_assert(th_wait_for(run.base, &run.calls, 20, WAIT_MS));
    th_run_for(run.base, QUIET_MS);
    ck_assert_int_eq(calls_at_free, 1);
    ck_assert_ptr_null(run.rl);
    ck_assert_int_eq(run.calls, 20);
    ck_assert_int_eq(run.slots[0].rec.r.status, RL_ERR_TIMEOUT);
    for (i = 0; i < 20; i++) {
        ck_assert_int_eq(run.slots[i].rec.calls, 1);
        status = run.slots[i].rec.r.status;
        ck_assert(status == RL_ERR_SHUTDOWN ||
                  (i < 10 && status == RL_ERR_TIMEOUT));
    }
    ck_assert_int_eq(fake_count("EVALSHA"), 2);
    ck_assert_int_eq(event_base_get_num_events(run.base,
                                               EVENT_BASE_COUNT_ADDED), 0);
    event_base_free(run.base);
    fake_redis_stop(run.fake);
}
END_TEST

/* ---- stalled connections ---- */

/*
 * A connection whose replies stopped coming must be given up: otherwise
 * every later check is pipelined behind the missing reply and times out
 * too, the batches pile up in flight, and no reconnect is tried for as
 * long as TCP keeps the socket open (a peer gone without a FIN or RST:
 * about 15 minutes).  After a second wave of timeouts a command timeout
 * after the first, the library drops the connection and reconnects.
 */
START_TEST(stalled_connection_is_recycled)
{
    const rl_result *r;
    int burst, i, timeouts = 0, dropped = 0;

    start(FAKE_SILENT, RL_FALLBACK_ALLOW);
    for (burst = 0; burst < 3; burst++) {
        submit(10);
        wait_all();
    }
    /* The first burst times out; a later one that was still in flight
       when the connection was given up completes with RL_ERR_REDIS. */
    assert_fallback_allow(0, 10, RL_ERR_TIMEOUT);
    for (i = 0; i < 30; i++) {
        r = &run.slots[i].rec.r;
        ck_assert_int_eq(r->source, RL_SOURCE_FALLBACK);
        ck_assert(r->status == RL_ERR_TIMEOUT || r->status == RL_ERR_REDIS);
        timeouts += r->status == RL_ERR_TIMEOUT;
        dropped += r->status == RL_ERR_REDIS;
    }
    ck_assert_int_eq(timeouts + dropped, 30);
    ck_assert_int_ge(timeouts, 20);
    ck_assert_msg(fake_count("connections") >= 2 &&
                  metric(RL_METRIC_INFLIGHT) < 3,
                  "after 3 bursts timed out on a silent server: "
                  "%ld connection(s), %lld batches still in flight",
                  fake_count("connections"),
                  (long long)metric(RL_METRIC_INFLIGHT));
    finish();
}
END_TEST

/* ---- the suite ---- */

static Suite *
fake_suite(void)
{
    Suite *s = suite_create("fake");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, fake_speaks_resp);
    tcase_add_test(tc, good_replies_are_delivered);
    tcase_add_test(tc, handshake_sends_auth_and_select);
    tcase_add_test(tc, mode_changes_on_one_connection);
    tcase_add_loop_test(tc, bad_reply_is_a_protocol_error, 0,
                        N_GARBAGE_MODES);
    tcase_add_test(tc, deny_fallback_on_a_bad_reply);
    tcase_add_test(tc, split_verdict_in_a_group_is_a_protocol_error);
    tcase_add_test(tc, error_reply_is_a_redis_error);
    tcase_add_test(tc, noscript_forever_retries_once);
    tcase_add_test(tc, noscript_forever_one_batch);
    tcase_add_loop_test(tc, no_reply_times_out, 0, 2);
    tcase_add_test(tc, mute_server_times_out_and_reconnects);
    tcase_add_test(tc, closed_connection_is_not_resent);
    tcase_add_test(tc, garbage_bytes_drop_the_connection);
    tcase_add_loop_test(tc, free_completes_checks_in_flight, 0, 2);
    tcase_add_test(tc, late_reply_is_dropped);
    tcase_add_test(tc, refused_handshake_fails_fast);
    tcase_add_test(tc, free_inside_a_callback_with_checks_in_flight);
    tcase_add_test(tc, stalled_connection_is_recycled);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return th_run_suite(fake_suite(), CK_NORMAL);
}
