/*
 * fixture_redis.h: a real redis-server for the integration suites.  Each
 * fixture runs its own server in a fresh mktemp directory on a free
 * 127.0.0.1 port, so tests can pause, kill and restart it to inject the
 * failures the library must survive, and read INFO commandstats to assert
 * how many commands the library really sent.
 *
 * Finding the server: $REDIS_SERVER if set, else redis-server on $PATH,
 * else /usr/bin/redis-server.  Temporary directories go under $TMPDIR or
 * /tmp and are named fx_redis.<pid>.XXXXXX.
 *
 * Check and CK_FORK.  Check runs each test in a forked child.  Start the
 * fixture inside the test or in a checked fixture
 * (tcase_add_checked_fixture), which runs in that child too, and stop it
 * in the test or the checked teardown.  A server is never left running:
 *  - a passing test's child ends with exit(), and an atexit handler stops
 *    every server the exiting process started and has not stopped;
 *  - a failing ck_assert ends the child with _exit(1), which skips atexit
 *    handlers and the checked teardown; the server stays in the test's
 *    process group (the fixture never calls setpgid), and Check's runner
 *    SIGKILLs that group after each test;
 *  - on Linux the server also gets PR_SET_PDEATHSIG SIGKILL, so it dies
 *    with the thread that started it however that thread ends (crash,
 *    _exit, CK_NOFORK runs, other harnesses).  Start fixtures from a
 *    thread that outlives them: the main thread.
 * A directory left behind by a process that ended without cleanup is
 * removed by a later fx_redis_start() once its owner pid is gone and the
 * directory is ten minutes old.
 *
 * A server started in the runner process (an unchecked fixture or main)
 * is inherited by the forked tests: they may send it commands and pause
 * or resume it, but only the process that started it may kill, restart
 * or stop it (waitpid works only for one's own children), and only that
 * process's atexit handler stops it.
 *
 * Commands through fx_redis_cmd() block, on one connection kept in the
 * handle, with a 2 s timeout.  Do not call them while the server is
 * paused unless a 2 s failure is what the test wants.  Not thread-safe.
 */
#ifndef RL_TEST_FIXTURE_REDIS_H
#define RL_TEST_FIXTURE_REDIS_H

#include <stdbool.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

/*
 * How to configure a server; all fields optional, and a NULL
 * struct fx_redis_opts * means all defaults.  The strings are copied.
 * Passwords and user names are quoted into redis.conf, so they may hold
 * any byte but NUL.
 */
struct fx_redis_opts {
    const char *requirepass;  /* password of the default user */
    const char *user;         /* an ACL user with every permission: */
    const char *user_pass;    /* "user <user> on ><user_pass> ~* &* +@all" */
    bool unixsocket;          /* also listen on <dir>/redis.sock */
    const char *extra;        /* config lines appended last, verbatim, so
                                 they override the fixture's defaults;
                                 separated by '\n' */
};

/*
 * One running (or deliberately killed) server.  The first fields are for
 * tests to read, never to write; the rest belong to the fixture.  The
 * handle owns its strings, which live until fx_redis_stop().
 */
struct fx_redis {
    const char *host;     /* always "127.0.0.1" */
    int port;             /* fixed for the handle's life, restarts too */
    pid_t pid;            /* the server's pid; -1 after fx_redis_kill() */
    char *dir;            /* the temp dir: redis.conf, redis.log */
    char *sock;           /* unix socket path, or NULL if not asked for */

    /* private */
    char *bin;            /* the redis-server executable */
    char *conf;           /* <dir>/redis.conf */
    char *log;            /* <dir>/redis.log */
    char *user;           /* AUTH user, or NULL */
    char *pass;           /* AUTH password, or NULL for no AUTH */
    redisContext *ctx;    /* fx_redis_cmd's connection, or NULL */
    pid_t owner;          /* the process that started the server */
    bool paused;          /* stopped by fx_redis_pause() */
};

/* ---- life cycle ---- */

/*
 * True if a redis-server executable can be found.  A suite's main() can
 * return 77 when it is false, which automake's test driver reports as
 * SKIP rather than FAIL.
 */
bool fx_redis_available(void);

/*
 * Starts a server configured by o (NULL for defaults) and waits until it
 * answers, at most about 5 s per attempt, retrying on a fresh port when
 * another process took the chosen one.  The server has persistence off,
 * DEBUG enabled and its statistics reset.  Returns a handle to release
 * with fx_redis_stop(), or NULL after printing why (and the tail of
 * redis.log) to stderr.
 */
struct fx_redis *fx_redis_start(const struct fx_redis_opts *o);

/*
 * Stops the server (SIGCONT, then SIGTERM, then SIGKILL after 3 s), reaps
 * it, removes its directory recursively and frees r.  r may be NULL or a
 * handle whose server was killed.
 */
void fx_redis_stop(struct fx_redis *r);

/* ---- failure injection ---- */

/* Freezes the server with SIGSTOP: connects still complete (the kernel
 * accepts them) but nothing is answered.  Returns 0, or -1 on error. */
int fx_redis_pause(struct fx_redis *r);

/* Thaws a paused server with SIGCONT.  Returns 0, or -1 on error. */
int fx_redis_resume(struct fx_redis *r);

/* Crashes the server with SIGKILL and reaps it; its data is lost and its
 * port refuses connections.  r->pid becomes -1.  Returns 0, or -1 if no
 * server was running. */
int fx_redis_kill(struct fx_redis *r);

/*
 * Starts the server again on the same port with the same configuration,
 * killing it first (SIGKILL) if it still runs, and waits until it
 * answers; retries a few times if the port is still busy.  The new
 * server is empty and its statistics reset; r->pid changes.  Returns 0,
 * or -1 after printing why, with r->pid -1.
 */
int fx_redis_restart(struct fx_redis *r);

/* ---- commands, for assertions ---- */

/*
 * Opens a new blocking connection to the server's TCP port, without AUTH,
 * with connect and command timeouts of timeout_ms.  Returns a context the
 * caller releases with redisFree(), or NULL if the connection failed.
 */
redisContext *fx_redis_connect(const struct fx_redis *r, int timeout_ms);

/*
 * Runs one command on the handle's connection, opening it (and sending
 * AUTH as the ACL user if set, else with requirepass) if needed.  fmt is
 * hiredis's redisCommand() format (%s, %b, %d, ...).  Returns the reply,
 * an error reply included, which the caller releases with
 * freeReplyObject(); or NULL on a connection error or timeout, after
 * which the next call reconnects.
 */
redisReply *fx_redis_cmd(struct fx_redis *r, const char *fmt, ...);

/* Runs a command and returns its integer reply, or -1 for any other reply
 * or a failure (so do not use it for replies that may be -1). */
long long fx_redis_int(struct fx_redis *r, const char *fmt, ...);

/*
 * Returns the calls count of one command from INFO commandstats: name
 * such as "evalsha" or "config|resetstat", case-insensitive.  Returns 0
 * when the command has not run since the last reset, -1 on failure.
 * Commands run by scripts (redis.call) and inside MULTI/EXEC count too.
 */
long long fx_redis_commandstat(struct fx_redis *r, const char *name);

/*
 * Returns the sum of the calls of every command in INFO commandstats,
 * except the fixture's own bookkeeping: INFO, AUTH and CONFIG RESETSTAT
 * (so AUTH sent by the library does not count either).  Thus right after
 * fx_redis_start(), fx_redis_restart() or fx_redis_reset_stats() it is 0,
 * and "the library sent nothing" is an exact assertion.  Like
 * total_commands_processed it counts script and transaction commands;
 * unlike it, it is taken from the same snapshot as the per-command
 * counts and does not count the fixture's INFO and AUTH.  -1 on failure.
 */
long long fx_redis_total_commands(struct fx_redis *r);

/* Resets the statistics (CONFIG RESETSTAT).  Returns 0, or -1. */
int fx_redis_reset_stats(struct fx_redis *r);

/* Empties every database (FLUSHALL).  Returns 0, or -1. */
int fx_redis_flushall(struct fx_redis *r);

#endif
