/*
 * test_fixture.c: the redis-server fixture itself, since every integration
 * suite trusts it: a server starts and answers, commandstats counts are
 * exact, pause freezes and resume thaws, kill and restart keep the port
 * and lose the data, passwords and ACL users authenticate, the unix
 * socket and extra config lines work, and no server or directory
 * survives a stop, a normal exit, or an abrupt one.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "check_main.h"
#include "fixture_redis.h"

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Asserts that a reply is a status or string equal to want, frees it. */
static void
expect_str(redisReply *rep, const char *want)
{
    ck_assert_ptr_nonnull(rep);
    ck_assert(rep->type == REDIS_REPLY_STATUS ||
              rep->type == REDIS_REPLY_STRING);
    ck_assert_str_eq(rep->str, want);
    freeReplyObject(rep);
}

/* Asserts that a reply is an error starting with prefix, frees it. */
static void
expect_err(redisReply *rep, const char *prefix)
{
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ERROR);
    ck_assert_msg(strncmp(rep->str, prefix, strlen(prefix)) == 0,
                  "error \"%s\", want \"%s...\"", rep->str, prefix);
    freeReplyObject(rep);
}

/* True once pid is gone: no such process, or a zombie nobody reaps (the
 * orphaned server of an ended child, under an init that does not reap). */
static bool
gone(pid_t pid)
{
    char path[64], state = '?';
    FILE *f;

    if (kill(pid, 0) == -1 && errno == ESRCH)
        return true;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return true;
    if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
        state = '?';
    fclose(f);
    return state == 'Z';
}

static bool
wait_gone(pid_t pid, int ms)
{
    long long deadline = now_ms() + ms;

    while (!gone(pid) && now_ms() < deadline)
        usleep(5000);
    return gone(pid);
}

static bool
dir_exists(const char *dir)
{
    struct stat st;

    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- start and commands ---- */

START_TEST(start_ping_set_get)
{
    struct fx_redis *r = fx_redis_start(NULL);

    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->host, "127.0.0.1");
    ck_assert_int_gt(r->port, 0);
    ck_assert_int_gt(r->pid, 0);
    ck_assert(dir_exists(r->dir));
    ck_assert_ptr_null(r->sock);
    expect_str(fx_redis_cmd(r, "PING"), "PONG");
    expect_str(fx_redis_cmd(r, "SET %s %b", "k", "v\0w", (size_t)3), "OK");
    ck_assert_int_eq(fx_redis_int(r, "STRLEN k"), 3);
    expect_str(fx_redis_cmd(r, "SET k hello"), "OK");
    expect_str(fx_redis_cmd(r, "GET k"), "hello");
    expect_str(fx_redis_cmd(r, "DEBUG SLEEP 0"), "OK");
    fx_redis_stop(r);
}
END_TEST

START_TEST(commandstats_exact)
{
    struct fx_redis *r = fx_redis_start(NULL);
    redisReply *rep;
    char sha[41];
    int i;

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(fx_redis_total_commands(r), 0);
    for (i = 0; i < 5; i++)
        expect_str(fx_redis_cmd(r, "SET k%d v", i), "OK");
    for (i = 0; i < 3; i++)
        expect_str(fx_redis_cmd(r, "GET k%d", i), "v");
    ck_assert_int_eq(fx_redis_commandstat(r, "set"), 5);
    ck_assert_int_eq(fx_redis_commandstat(r, "GET"), 3);
    ck_assert_int_eq(fx_redis_commandstat(r, "evalsha"), 0);
    ck_assert_int_eq(fx_redis_total_commands(r), 8);

    rep = fx_redis_cmd(r, "SCRIPT LOAD %s", "return redis.call('incr', "
                       "KEYS[1])");
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    snprintf(sha, sizeof(sha), "%s", rep->str);
    freeReplyObject(rep);
    for (i = 1; i <= 4; i++)
        ck_assert_int_eq(fx_redis_int(r, "EVALSHA %s 1 n", sha), i);
    ck_assert_int_eq(fx_redis_commandstat(r, "evalsha"), 4);
    ck_assert_int_eq(fx_redis_commandstat(r, "eval"), 0);
    ck_assert_int_eq(fx_redis_commandstat(r, "incr"), 4);
    ck_assert_int_eq(fx_redis_commandstat(r, "script|load"), 1);
    ck_assert_int_eq(fx_redis_total_commands(r), 8 + 1 + 4 + 4);

    ck_assert_int_eq(fx_redis_reset_stats(r), 0);
    ck_assert_int_eq(fx_redis_total_commands(r), 0);
    ck_assert_int_eq(fx_redis_commandstat(r, "set"), 0);
    ck_assert_int_eq(fx_redis_flushall(r), 0);
    ck_assert_int_eq(fx_redis_int(r, "DBSIZE"), 0);
    fx_redis_stop(r);
}
END_TEST

/* ---- failure injection ---- */

START_TEST(pause_then_resume)
{
    struct fx_redis *r = fx_redis_start(NULL);
    redisContext *c;
    redisReply *rep;
    long long t0, took;

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(fx_redis_pause(r), 0);
    ck_assert_int_eq(fx_redis_pause(r), 0); /* idempotent */
    c = fx_redis_connect(r, 200); /* the kernel still accepts */
    ck_assert_ptr_nonnull(c);
    t0 = now_ms();
    rep = redisCommand(c, "PING");
    took = now_ms() - t0;
    ck_assert_ptr_null(rep);
    ck_assert_int_ne(c->err, 0);
    ck_assert_int_ge(took, 150);
    ck_assert_int_lt(took, 1000);
    redisFree(c);

    ck_assert_int_eq(fx_redis_resume(r), 0);
    c = fx_redis_connect(r, 200);
    ck_assert_ptr_nonnull(c);
    expect_str(redisCommand(c, "PING"), "PONG");
    redisFree(c);
    expect_str(fx_redis_cmd(r, "PING"), "PONG");
    fx_redis_stop(r);
}
END_TEST

START_TEST(kill_then_restart_same_port)
{
    struct fx_redis *r = fx_redis_start(NULL);
    redisReply *rep;
    pid_t old;
    int port;

    ck_assert_ptr_nonnull(r);
    port = r->port;
    old = r->pid;
    expect_str(fx_redis_cmd(r, "SET k v"), "OK");
    ck_assert_int_eq(fx_redis_kill(r), 0);
    ck_assert_int_eq(r->pid, -1);
    ck_assert(kill(old, 0) == -1 && errno == ESRCH);
    ck_assert_ptr_null(fx_redis_connect(r, 200)); /* refused */
    ck_assert_int_eq(fx_redis_kill(r), -1);

    ck_assert_int_eq(fx_redis_restart(r), 0);
    ck_assert_int_eq(r->port, port);
    ck_assert_int_gt(r->pid, 0);
    ck_assert_int_ne(r->pid, old);
    ck_assert_int_eq(fx_redis_total_commands(r), 0);
    rep = fx_redis_cmd(r, "GET k");
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_NIL); /* no persistence */
    freeReplyObject(rep);

    old = r->pid; /* a restart of a running server crashes it first */
    ck_assert_int_eq(fx_redis_restart(r), 0);
    ck_assert_int_eq(r->port, port);
    ck_assert(kill(old, 0) == -1 && errno == ESRCH);
    expect_str(fx_redis_cmd(r, "PING"), "PONG");
    fx_redis_stop(r);
}
END_TEST

/* ---- authentication ---- */

START_TEST(requirepass)
{
    struct fx_redis_opts o = { .requirepass = "s3 cret\"" };
    struct fx_redis *r = fx_redis_start(&o);
    redisContext *c;

    ck_assert_ptr_nonnull(r);
    c = fx_redis_connect(r, 1000);
    ck_assert_ptr_nonnull(c);
    expect_err(redisCommand(c, "PING"), "NOAUTH");
    expect_err(redisCommand(c, "AUTH wrong"), "WRONGPASS");
    expect_str(redisCommand(c, "AUTH %s", o.requirepass), "OK");
    expect_str(redisCommand(c, "PING"), "PONG");
    redisFree(c);
    expect_str(fx_redis_cmd(r, "PING"), "PONG");
    fx_redis_stop(r);
}
END_TEST

START_TEST(acl_user)
{
    struct fx_redis_opts o = {
        .requirepass = "admin", .user = "alice", .user_pass = "secret",
    };
    struct fx_redis *r = fx_redis_start(&o);
    redisContext *c;

    ck_assert_ptr_nonnull(r);
    expect_str(fx_redis_cmd(r, "ACL WHOAMI"), "alice");
    expect_str(fx_redis_cmd(r, "SET k v"), "OK");
    c = fx_redis_connect(r, 1000);
    ck_assert_ptr_nonnull(c);
    expect_err(redisCommand(c, "GET k"), "NOAUTH");
    expect_err(redisCommand(c, "AUTH alice wrong"), "WRONGPASS");
    expect_str(redisCommand(c, "AUTH alice secret"), "OK");
    expect_str(redisCommand(c, "GET k"), "v");
    redisFree(c);
    fx_redis_stop(r);
}
END_TEST

/* ---- options ---- */

START_TEST(unix_socket)
{
    struct fx_redis_opts o = { .unixsocket = true };
    struct fx_redis *r = fx_redis_start(&o);
    struct timeval tv = { 1, 0 };
    redisContext *c;

    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(r->sock);
    ck_assert(strncmp(r->sock, r->dir, strlen(r->dir)) == 0);
    c = redisConnectUnixWithTimeout(r->sock, tv);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->err, 0);
    expect_str(redisCommand(c, "PING"), "PONG");
    redisFree(c);
    expect_str(fx_redis_cmd(r, "PING"), "PONG"); /* TCP still works */
    fx_redis_stop(r);
}
END_TEST

START_TEST(extra_config)
{
    struct fx_redis_opts o = { .extra = "maxclients 77\nhz 20" };
    struct fx_redis *r = fx_redis_start(&o);
    redisReply *rep;

    ck_assert_ptr_nonnull(r);
    rep = fx_redis_cmd(r, "CONFIG GET maxclients");
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(rep->elements, 2);
    ck_assert_str_eq(rep->element[1]->str, "77");
    freeReplyObject(rep);
    rep = fx_redis_cmd(r, "CONFIG GET save");
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->elements, 2);
    ck_assert_str_eq(rep->element[1]->str, ""); /* no persistence */
    freeReplyObject(rep);
    fx_redis_stop(r);
}
END_TEST

/* ---- cleanup ---- */

START_TEST(stop_removes_everything)
{
    struct fx_redis *r = fx_redis_start(NULL);
    char dir[4096];
    pid_t pid;

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(fx_redis_pause(r), 0); /* stop must thaw it */
    pid = r->pid;
    snprintf(dir, sizeof(dir), "%s", r->dir);
    fx_redis_stop(r);
    ck_assert(!dir_exists(dir));
    ck_assert(kill(pid, 0) == -1 && errno == ESRCH);
    fx_redis_stop(NULL);
}
END_TEST

/*
 * Runs a child that starts a server, reports its pid and directory (dir
 * holds 4096 bytes), and ends without stopping it: with exit() if clean,
 * else with _exit().
 */
static void
orphaning_child(bool clean, pid_t *server, char *dir)
{
    struct fx_redis *r;
    int fds[2], st;
    pid_t child;
    FILE *f;

    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(fds[0]);
        r = fx_redis_start(NULL);
        if (r != NULL)
            dprintf(fds[1], "%ld %s\n", (long)r->pid, r->dir);
        if (clean)
            exit(r != NULL ? 0 : 1);
        _exit(r != NULL ? 0 : 1);
    }
    close(fds[1]);
    f = fdopen(fds[0], "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%d %4095s", server, dir), 2);
    fclose(f);
    ck_assert_int_eq(waitpid(child, &st, 0), child);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

START_TEST(exit_stops_leftovers)
{
    char dir[4096];
    pid_t server;

    orphaning_child(true, &server, dir);
    ck_assert(gone(server));      /* the atexit handler reaped it */
    ck_assert(!dir_exists(dir));
}
END_TEST

#ifdef __linux__
START_TEST(abrupt_exit_kills_and_sweeps)
{
    struct timeval old[2] = { { 0, 0 }, { 0, 0 } };
    struct fx_redis *r;
    char dir[4096];
    pid_t server;
    int st;

    /* Adopt the orphaned server, to reap it rather than leave a zombie
     * under an init that may not reap. */
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    orphaning_child(false, &server, dir);
    ck_assert(wait_gone(server, 2000));
    ck_assert_int_eq(waitpid(server, &st, 0), server);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL); /* PDEATHSIG */
    ck_assert(dir_exists(dir));         /* _exit skipped the cleanup */

    old[0].tv_sec = old[1].tv_sec = time(NULL) - 3600;
    ck_assert_int_eq(utimes(dir, old), 0);
    r = fx_redis_start(NULL);           /* sweeps stale directories */
    ck_assert_ptr_nonnull(r);
    ck_assert(!dir_exists(dir));
    fx_redis_stop(r);
}
END_TEST
#endif

static Suite *
fixture_suite(void)
{
    Suite *s = suite_create("fixture_redis");
    TCase *tc = tcase_create("server");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, start_ping_set_get);
    tcase_add_test(tc, commandstats_exact);
    tcase_add_test(tc, pause_then_resume);
    tcase_add_test(tc, kill_then_restart_same_port);
    tcase_add_test(tc, requirepass);
    tcase_add_test(tc, acl_user);
    tcase_add_test(tc, unix_socket);
    tcase_add_test(tc, extra_config);
    tcase_add_test(tc, stop_removes_everything);
    tcase_add_test(tc, exit_stops_leftovers);
#ifdef __linux__
    tcase_add_test(tc, abrupt_exit_kills_and_sweeps);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return fx_redis_available() ? th_run_suite(fixture_suite(), CK_NORMAL) : 77;
}
