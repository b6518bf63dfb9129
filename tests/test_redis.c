/*
 * test_redis.c: the Redis backend against a real redis-server that the
 * fixture starts on a private loopback port: exact admissions for every
 * algorithm under bursts, atomicity across processes, coalescing (INFO
 * commandstats), SCRIPT FLUSH in the middle of traffic, key layout and
 * expiry, odd keys, reset, AUTH with a password and an ACL user, a wrong
 * password, a unix socket, and a refused connection.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "fixture_redis.h"
#include "helpers.h"

static struct event_base *base;
static struct fx_redis *srv;
static int64_t now;

/* ---- tallies ---- */

struct tally {
    int calls, allowed, denied, sync;
    int by_source[3];
    int by_status[16]; /* index -status */
    int64_t last_remaining, last_retry;
};

static void
tally_cb(const rl_result *r, void *arg)
{
    struct tally *t = arg;

    t->calls++;
    if (r->allowed)
        t->allowed++;
    else
        t->denied++;
    t->by_source[r->source]++;
    t->by_status[-r->status]++;
    t->last_remaining = r->remaining;
    t->last_retry = r->retry_after_ms;
    if (th_in_submit)
        t->sync++;
}

/* ---- fixture ---- */

static void
start_server(const struct fx_redis_opts *o)
{
    base = event_base_new();
    srv = fx_redis_start(o);
    ck_assert_ptr_nonnull(srv);
    now = 1700000000000;
}

static void
setup(void)
{
    start_server(NULL);
}

static void
teardown(void)
{
    fx_redis_stop(srv);
    event_base_free(base);
}

static void
redis_config(rl_config *cfg, rl_algorithm alg, bool fixed_clock)
{
    th_redis_config(cfg, alg, srv->host, srv->port,
                    fixed_clock ? &now : NULL);
}

static rl_limiter *
new_redis(rl_algorithm alg, bool fixed_clock)
{
    rl_config cfg;
    rl_limiter *rl = NULL;

    redis_config(&cfg, alg, fixed_clock);
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    return rl;
}

/* Submits n checks in one tick and waits for their callbacks. */
static void
burst(rl_limiter *rl, const char *key, int n, int64_t max, int64_t window,
      struct tally *t)
{
    int i, target = t->calls + n;

    th_in_submit = true;
    for (i = 0; i < n; i++)
        ck_assert_int_eq(rl_check_async(rl, key, max, window, tally_cb, t),
                         RL_OK);
    th_in_submit = false;
    ck_assert(th_wait_for(base, &t->calls, target, 5000));
    ck_assert_int_eq(t->calls, target);
    ck_assert_int_eq(t->sync, 0);
}

/* ---- admissions ---- */

START_TEST(burst_admits_exactly_max)
{
    rl_limiter *rl = new_redis((rl_algorithm)_i, true);
    struct tally t = {0};

    burst(rl, "user:1", 2000, 100, 60000, &t);
    ck_assert_int_eq(t.allowed, 100);
    ck_assert_int_eq(t.by_source[RL_SOURCE_BACKEND], 2000);
    ck_assert_int_eq(t.by_status[0], 2000);
    burst(rl, "user:2", 50, 100, 60000, &t);
    ck_assert_int_eq(t.allowed, 150);
    rl_free(rl);
}
END_TEST

/* With Redis TIME deciding (no clock set), the counts still hold. */
START_TEST(redis_time_decides)
{
    rl_limiter *rl = new_redis(RL_SLIDING_LOG, false);
    struct tally t = {0};

    burst(rl, "user:t", 500, 40, 600000, &t);
    ck_assert_int_eq(t.allowed, 40);
    ck_assert_int_eq(t.by_source[RL_SOURCE_BACKEND], 500);
    rl_free(rl);
}
END_TEST

START_TEST(fields_of_a_denial)
{
    rl_limiter *rl = new_redis(RL_FIXED_WINDOW, true);
    struct tally t = {0};

    now += 400;
    burst(rl, "k", 3, 3, 1000, &t);
    ck_assert_int_eq(t.last_remaining, 0);
    burst(rl, "k", 1, 3, 1000, &t);
    ck_assert_int_eq(t.denied, 1);
    ck_assert_int_eq(t.last_retry, 600);
    rl_free(rl);
}
END_TEST

/* ---- coalescing ---- */

START_TEST(a_burst_costs_at_most_n_over_8_commands)
{
    rl_limiter *rl = new_redis(RL_FIXED_WINDOW, true);
    struct tally t = {0};
    char key[32];
    long long evalsha;
    int64_t sent;
    int i, target = 1000;

    burst(rl, "warm", 1, 10, 1000, &t); /* connected, script loaded */
    ck_assert_int_eq(fx_redis_reset_stats(srv), 0);
    sent = rl_metric(rl, RL_METRIC_REDIS_COMMANDS);
    th_in_submit = true;
    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i % 100);
        ck_assert_int_eq(rl_check_async(rl, key, 5, 1000, tally_cb, &t),
                         RL_OK);
    }
    th_in_submit = false;
    ck_assert(th_wait_for(base, &t.calls, target + 1, 5000));
    /* Every command the library sent this burst is an EVALSHA (the
       server's totals also count the calls scripts make inside). */
    evalsha = fx_redis_commandstat(srv, "evalsha");
    ck_assert_int_le(evalsha, 1000 / 8);
    ck_assert_int_eq(evalsha, (1000 + 63) / 64);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_REDIS_COMMANDS) - sent, evalsha);
    ck_assert_int_eq(t.allowed, 1 + 100 * 5);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_BATCHES), 1 + (1000 + 63) / 64);
    rl_free(rl);
}
END_TEST

/* The last argument of the next EVALSHA a MONITOR connection shows
   (quoted, as MONITOR prints it), into mode; false on a timeout. */
static bool
next_evalsha_mode(redisContext *mon, char *mode, size_t size)
{
    redisReply *r;
    const char *end, *start;
    bool found = false;

    while (!found) {
        if (redisGetReply(mon, (void **)&r) != REDIS_OK)
            return false;
        /* The client's command, not the scripts' own calls ("lua"). */
        if (r->type == REDIS_REPLY_STATUS && strstr(r->str, "\"EVALSHA\"") &&
            !strstr(r->str, " lua]")) {
            end = r->str + r->len;
            start = end - 2;
            while (start > r->str && *start != '"')
                start--;
            snprintf(mode, size, "%.*s", (int)(end - start), start);
            found = true;
        }
        freeReplyObject(r);
    }
    return true;
}

/*
 * The mode each batch goes in, as Redis sees it: "U" when no key comes
 * twice (the scripts then build no map of each key's last check), ""
 * when one does, wherever its second check stands; a batch of one goes
 * "U"; and each check still gets what it would alone.
 */
START_TEST(distinct_keys_go_in_mode_u)
{
    static const struct {
        int n, dup_of, dup_at; /* check dup_at repeats dup_of's key */
        const char *mode;
    } b[] = {
        {1, -1, -1, "\"U\""}, {10, -1, -1, "\"U\""},
        {64, -1, -1, "\"U\""}, {10, 0, 9, "\"\""}, {10, 3, 4, "\"\""},
        {64, 62, 63, "\"\""}, {2, 0, 1, "\"\""},
    };
    rl_limiter *rl = new_redis(RL_FIXED_WINDOW, true);
    struct tally t = {0};
    redisContext *mon;
    redisReply *r;
    char key[32], mode[16];
    size_t k;
    int i, target = 1, want_allowed = 1;

    burst(rl, "warm", 1, 10, 1000, &t); /* connected, script loaded */
    mon = fx_redis_connect(srv, 5000);
    ck_assert_ptr_nonnull(mon);
    r = redisCommand(mon, "MONITOR");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->str, "OK");
    freeReplyObject(r);
    for (k = 0; k < sizeof(b) / sizeof(b[0]); k++) {
        for (i = 0; i < b[k].n; i++) {
            snprintf(key, sizeof(key), "m%zu-%d", k,
                     i == b[k].dup_at ? b[k].dup_of : i);
            ck_assert_int_eq(rl_check_async(rl, key, 1, 60000, tally_cb,
                                            &t), RL_OK);
        }
        target += b[k].n;
        /* max 1: the repeated key's second check is denied. */
        want_allowed += b[k].n - (b[k].dup_at >= 0);
        ck_assert(th_wait_for(base, &t.calls, target, 5000));
        ck_assert(next_evalsha_mode(mon, mode, sizeof(mode)));
        ck_assert_msg(strcmp(mode, b[k].mode) == 0,
                      "batch %zu went in mode %s, not %s", k, mode,
                      b[k].mode);
    }
    ck_assert_int_eq(t.calls, target);
    ck_assert_int_eq(t.allowed, want_allowed);
    ck_assert_int_eq(t.by_source[RL_SOURCE_BACKEND], target);
    redisFree(mon);
    rl_free(rl);
}
END_TEST

/*
 * Submits n checks on distinct keys in one tick and runs that tick (the
 * flush), leaving their callbacks for later.
 */
static void
submit_tick(rl_limiter *rl, const char *tag, int n, struct tally *t)
{
    char key[32];
    int i;

    for (i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "%s%d", tag, i);
        ck_assert_int_eq(rl_check_async(rl, key, 5, 60000, tally_cb, t),
                         RL_OK);
    }
    th_run_for(base, 20);
}

/*
 * pipeline_depth 1, with Redis frozen (SIGSTOP) so that replies wait: a
 * check goes at once when nothing is in flight; the next tick's 10 checks
 * wait for its reply; a tick of 64 fills a batch, which leaves at once,
 * taking the 10 waiting along with 54 of its own; the 10 left over leave
 * when a reply comes back.  With 0 (the loop's first run) every tick
 * sends what it has.  Every check is answered by Redis.
 */
START_TEST(pipeline_depth_holds_a_partial_batch)
{
    int depth = _i, want_batches[3];
    struct tally t = {0};
    rl_limiter *rl;
    rl_config cfg;
    int64_t b0;

    redis_config(&cfg, RL_FIXED_WINDOW, true);
    cfg.pipeline_depth = depth;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    burst(rl, "warm", 1, 10, 1000, &t); /* connected, script loaded */
    b0 = rl_metric(rl, RL_METRIC_BATCHES);
    ck_assert_int_eq(fx_redis_pause(srv), 0);
    want_batches[0] = 1;
    want_batches[1] = depth == 1 ? 1 : 2;
    want_batches[2] = depth == 1 ? 2 : 3;
    submit_tick(rl, "a", 1, &t);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_BATCHES) - b0, want_batches[0]);
    submit_tick(rl, "b", 10, &t);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_BATCHES) - b0, want_batches[1]);
    submit_tick(rl, "c", 64, &t);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_BATCHES) - b0, want_batches[2]);
    ck_assert_int_eq(t.calls, 1);
    ck_assert_int_eq(fx_redis_resume(srv), 0);
    ck_assert(th_wait_for(base, &t.calls, 1 + 75, 5000));
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_BATCHES) - b0, 3);
    ck_assert_int_eq(rl_metric(rl, RL_METRIC_BATCHED_CHECKS), 1 + 75);
    ck_assert_int_eq(t.by_source[RL_SOURCE_BACKEND], 1 + 75);
    ck_assert_int_eq(t.allowed, 1 + 75);
    rl_free(rl);
}
END_TEST

/* ---- scripts ---- */

START_TEST(script_flush_in_the_middle_of_traffic)
{
    rl_limiter *rl = new_redis(RL_GCRA, true);
    struct tally t = {0};
    redisReply *r;

    burst(rl, "k", 30, 50, 60000, &t);
    r = fx_redis_cmd(srv, "SCRIPT FLUSH");
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    burst(rl, "k", 300, 50, 60000, &t);
    ck_assert_int_eq(t.allowed, 50);
    ck_assert_int_eq(t.by_source[RL_SOURCE_BACKEND], 330);
    ck_assert_int_ge(rl_metric(rl, RL_METRIC_REDIS_NOSCRIPT), 1);
    ck_assert_int_eq(fx_redis_commandstat(srv, "eval"), 0);
    rl_free(rl);
}
END_TEST

/* ---- keys ---- */

static void
assert_every_key_expires(const char *prefix, long long max_pttl)
{
    redisReply *keys = fx_redis_cmd(srv, "KEYS *");
    long long pttl;
    size_t i;

    ck_assert_ptr_nonnull(keys);
    ck_assert_int_gt((long long)keys->elements, 0);
    for (i = 0; i < keys->elements; i++) {
        ck_assert_int_eq(strncmp(keys->element[i]->str, prefix,
                                 strlen(prefix)), 0);
        pttl = fx_redis_int(srv, "PTTL %b", keys->element[i]->str,
                            keys->element[i]->len);
        ck_assert_int_gt(pttl, 0);
        ck_assert_int_le(pttl, max_pttl);
    }
    freeReplyObject(keys);
}

START_TEST(every_key_has_the_prefix_and_an_expiry)
{
    rl_algorithm alg = (rl_algorithm)_i;
    rl_config cfg;
    rl_limiter *rl = NULL;
    struct tally t = {0};
    /* Sliding window keeps two windows; the others one. */
    long long need = alg == RL_SLIDING_WINDOW ? 2 * 5000 : 5000;

    redis_config(&cfg, alg, false);
    cfg.redis.key_prefix = "myapp";
    cfg.redis.ttl_buffer_s = 3;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    burst(rl, "a", 10, 5, 5000, &t);
    burst(rl, "b", 1, 5, 5000, &t);
    assert_every_key_expires("myapp:", need + 3000);
    rl_free(rl);
}
END_TEST

START_TEST(odd_keys_are_independent_and_escaped)
{
    static const char *const keys[] = {
        "a", "{a}", "a}", "{a", "a b", "a\nb", "ключ", "%7B", "x:{t}:y",
        "{}", "a%", "rate_limit:fw:{a}",
    };
    size_t i, n = sizeof(keys) / sizeof(keys[0]);
    rl_limiter *rl = new_redis(RL_FIXED_WINDOW, true);
    struct tally t = {0};
    redisReply *all;

    for (i = 0; i < n; i++) {
        burst(rl, keys[i], 3, 2, 60000, &t);
        ck_assert_int_eq(t.allowed, 2 * (int)(i + 1));
    }
    all = fx_redis_cmd(srv, "KEYS *");
    ck_assert_int_eq((long long)all->elements, (long long)n);
    for (i = 0; i < all->elements; i++)
        ck_assert_ptr_null(strchr(all->element[i]->str, ' '));
    freeReplyObject(all);
    /* A user hash tag is kept as the Redis hash tag. */
    ck_assert_int_eq(fx_redis_int(srv, "EXISTS %s",
                                  "rate_limit:fw:{t}x:%7Bt%7D:y"), 1);
    ck_assert_int_eq(fx_redis_int(srv, "EXISTS %s", "rate_limit:fw:{a}"), 1);
    rl_free(rl);
}
END_TEST

START_TEST(reset_deletes_the_key)
{
    rl_limiter *rl = new_redis(RL_SLIDING_WINDOW, true);
    struct th_rec done = {0};
    struct tally t = {0};

    burst(rl, "k", 5, 3, 60000, &t);
    ck_assert_int_eq(fx_redis_int(srv, "DBSIZE"), 1);
    ck_assert_int_eq(rl_reset_async(rl, "k", th_done_cb, &done), RL_OK);
    ck_assert(th_wait_for(base, &done.calls, 1, 3000));
    ck_assert_int_eq(done.status, RL_OK);
    ck_assert_int_eq(fx_redis_int(srv, "DBSIZE"), 0);
    burst(rl, "k", 5, 3, 60000, &t);
    ck_assert_int_eq(t.allowed, 6);
    rl_free(rl);
}
END_TEST

/* ---- many processes, one limit ---- */

static int
child_run(int port, int n, int64_t max)
{
    struct event_base *b = event_base_new();
    rl_config cfg;
    rl_limiter *rl = NULL;
    struct tally t = {0};
    int i;

    rl_config_init(&cfg);
    cfg.redis.port = port;
    cfg.algorithm = RL_SLIDING_WINDOW;
    if (rl_new(b, &cfg, &rl) != RL_OK)
        return 255;
    for (i = 0; i < n; i++)
        rl_check_async(rl, "shared", max, 600000, tally_cb, &t);
    th_wait_for(b, &t.calls, n, 10000);
    rl_free(rl);
    event_base_free(b);
    if (t.calls != n || t.by_source[RL_SOURCE_BACKEND] != n)
        return 254;
    return t.allowed; /* < 254 by construction */
}

START_TEST(processes_racing_share_one_limit)
{
    pid_t pids[4];
    int i, status, allowed = 0;

    for (i = 0; i < 4; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0)
            _exit(child_run(srv->port, 400, 250));
    }
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status));
        ck_assert_int_lt(WEXITSTATUS(status), 254);
        allowed += WEXITSTATUS(status);
    }
    ck_assert_int_eq(allowed, 250);
}
END_TEST

/* ---- connections ---- */

START_TEST(refused_connection_falls_back)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    struct tally t = {0};
    struct th_log log = {{0}, 0};
    int port = srv->port;

    fx_redis_kill(srv);
    redis_config(&cfg, RL_FIXED_WINDOW, true);
    cfg.redis.port = port;
    cfg.log_cb = th_log_cb;
    cfg.log_arg = &log;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    burst(rl, "k", 20, 5, 1000, &t);
    ck_assert_int_eq(t.allowed, 20); /* fail open by default */
    ck_assert_int_eq(t.by_source[RL_SOURCE_FALLBACK], 20);
    ck_assert_int_eq(t.by_status[-RL_ERR_REDIS], 20);
    ck_assert_int_eq(log.lines, 1); /* said once */
    rl_free(rl);
}
END_TEST

static void
auth_case(const struct fx_redis_opts *o, const char *user, const char *pass,
          bool ok)
{
    rl_config cfg;
    rl_limiter *rl = NULL;
    struct tally t = {0};
    struct th_log log = {{0}, 0};

    teardown();
    start_server(o);
    redis_config(&cfg, RL_FIXED_WINDOW, true);
    cfg.redis.username = user;
    cfg.redis.password = pass;
    cfg.log_cb = th_log_cb;
    cfg.log_arg = &log;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    burst(rl, "k", 10, 4, 1000, &t);
    if (ok) {
        ck_assert_int_eq(t.allowed, 4);
        ck_assert_int_eq(t.by_source[RL_SOURCE_BACKEND], 10);
    } else {
        ck_assert_int_eq(t.by_source[RL_SOURCE_FALLBACK], 10);
        ck_assert_int_eq(t.by_status[-RL_ERR_REDIS], 10);
        ck_assert_int_eq(log.lines, 1);
        ck_assert_ptr_null(strstr(log.text, pass));
    }
    rl_free(rl);
}

START_TEST(auth_with_password)
{
    struct fx_redis_opts o = {.requirepass = "s3cret-pw"};

    auth_case(&o, NULL, "s3cret-pw", true);
    auth_case(&o, NULL, "wrong-pw-123", false);
}
END_TEST

START_TEST(auth_with_acl_user)
{
    struct fx_redis_opts o = {.user = "alice", .user_pass = "al1ce-pw"};

    auth_case(&o, "alice", "al1ce-pw", true);
    auth_case(&o, "alice", "not-her-pw", false);
}
END_TEST

START_TEST(unix_socket_and_url)
{
    struct fx_redis_opts o = {.unixsocket = true};
    char url[600];
    rl_config cfg;
    rl_limiter *rl = NULL;
    struct tally t = {0};

    teardown();
    start_server(&o);
    snprintf(url, sizeof(url), "unix://%s", srv->sock);
    redis_config(&cfg, RL_TOKEN_BUCKET, true);
    cfg.redis.url = url;
    cfg.redis.port = 1; /* the URL wins */
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    burst(rl, "k", 10, 4, 1000, &t);
    ck_assert_int_eq(t.allowed, 4);
    ck_assert_int_eq(t.by_source[RL_SOURCE_BACKEND], 10);
    rl_free(rl);
}
END_TEST

START_TEST(url_selects_the_db)
{
    char url[128];
    rl_config cfg;
    rl_limiter *rl = NULL;
    struct tally t = {0};

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/3", srv->port);
    redis_config(&cfg, RL_FIXED_WINDOW, true);
    cfg.redis.url = url;
    ck_assert_int_eq(rl_new(base, &cfg, &rl), RL_OK);
    burst(rl, "k", 3, 2, 1000, &t);
    ck_assert_int_eq(t.by_source[RL_SOURCE_BACKEND], 3);
    ck_assert_int_eq(fx_redis_int(srv, "DBSIZE"), 0);
    ck_assert_int_eq(fx_redis_int(srv, "SELECT 3"), -1); /* status reply */
    ck_assert_int_eq(fx_redis_int(srv, "DBSIZE"), 1);
    rl_free(rl);
}
END_TEST

static Suite *
redis_suite(void)
{
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, burst_admits_exactly_max, RL_SLIDING_WINDOW,
                        RL_GCRA + 1);
    tcase_add_test(tc, redis_time_decides);
    tcase_add_test(tc, fields_of_a_denial);
    tcase_add_test(tc, a_burst_costs_at_most_n_over_8_commands);
    tcase_add_test(tc, distinct_keys_go_in_mode_u);
    tcase_add_loop_test(tc, pipeline_depth_holds_a_partial_batch, 0, 2);
    tcase_add_test(tc, script_flush_in_the_middle_of_traffic);
    tcase_add_loop_test(tc, every_key_has_the_prefix_and_an_expiry,
                        RL_SLIDING_WINDOW, RL_GCRA + 1);
    tcase_add_test(tc, odd_keys_are_independent_and_escaped);
    tcase_add_test(tc, reset_deletes_the_key);
    tcase_add_test(tc, processes_racing_share_one_limit);
    tcase_add_test(tc, refused_connection_falls_back);
    tcase_add_test(tc, auth_with_password);
    tcase_add_test(tc, auth_with_acl_user);
    tcase_add_test(tc, unix_socket_and_url);
    tcase_add_test(tc, url_selects_the_db);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return fx_redis_available() ? th_run_suite(redis_suite(), CK_NORMAL) : 77;
}
