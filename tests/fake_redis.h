/*
 * fake_redis.h: a tiny fake Redis server that answers EVALSHA wrongly on
 * purpose, so the suites can prove how the library treats every shape of
 * bad reply, a connection closed under it, a reply that never comes, and
 * a server that never answers at all.  A real redis-server cannot be made
 * to do any of that.
 *
 * The fake listens on a free 127.0.0.1 port and runs in a forked child
 * process: a child has its own loop, cannot share or corrupt the test's
 * memory or descriptors, and is stopped by one SIGKILL however it is
 * stuck.  It speaks just enough RESP: commands are arrays of bulk strings;
 * AUTH and SELECT get +OK, PING gets +PONG, SCRIPT LOAD gets the hex SHA-1
 * of the script text (OpenSSL), any other command an error, and EVALSHA
 * is answered as the current mode says.  In FAKE_GOOD an EVALSHA whose
 * SHA no SCRIPT LOAD produced gets -NOSCRIPT, as from a real Redis.
 *
 * The mode and the counters live in one shared memory page (an anonymous
 * MAP_SHARED mapping made before the fork), so the test reads counts and
 * changes the mode across the process boundary at any time.
 *
 * Life cycle: fake_redis_stop() kills (SIGKILL) and reaps the child.  A
 * fake never outlives its test: the child gets PR_SET_PDEATHSIG SIGKILL,
 * stays in the test's process group (which Check kills after each test),
 * and an atexit handler stops every fake the exiting process started and
 * did not stop.  Start and stop a fake in the same process (the test, or
 * a checked fixture).  Not thread-safe.
 */
#ifndef RL_TEST_FAKE_REDIS_H
#define RL_TEST_FAKE_REDIS_H

#include <stdbool.h>

/*
 * How EVALSHA is answered (and, for LOAD_ERROR, SCRIPT LOAD).  n is the
 * number of checks of the command, and max and window are each check's
 * own; "the last decision" is the four numbers of the batch's last check,
 * so a library that trusted the first decisions before validating all of
 * them would be caught.
 */
enum fake_mode {
    FAKE_GOOD = 0,          /* 4n integers: 1, max - cost, window, 0 */
    FAKE_WRONG_COUNT,       /* 4n - 1 of those integers */
    FAKE_WRONG_TYPE,        /* 4n bulk strings of the same numbers */
    FAKE_NOT_ARRAY,         /* +OK */
    FAKE_NEGATIVE,          /* the last decision's remaining is -1 */
    FAKE_HUGE,              /* the last decision's remaining is 2^62 and
                               its reset 9223372036854775807 */
    FAKE_ALLOWED_WITH_RETRY,/* the last decision: allowed 1, retry 5 */
    FAKE_NIL,               /* a nil bulk string: $-1 */
    FAKE_ERROR,             /* -ERR fake error */
    FAKE_NOSCRIPT_ALWAYS,   /* -NOSCRIPT ... every time */
    FAKE_TRUNCATED,         /* the first half of a good reply, then
                               nothing more on that connection */
    FAKE_CLOSE,             /* closes the connection (after reading what
                               the client sent in the same burst) */
    FAKE_SILENT,            /* never answers EVALSHA */
    FAKE_NESTED,            /* 4n one-element arrays of the integers */
    FAKE_GARBAGE,           /* "hello\r\n": not RESP at all */
    FAKE_MUTE,              /* answers nothing, the handshake included */
    FAKE_LATE,              /* a good reply, FAKE_LATE_MS late (the fake
                               sleeps: all its connections wait) */
    FAKE_LOAD_ERROR,        /* SCRIPT LOAD gets -ERR: the handshake is
                               refused; EVALSHA as in GOOD */
    FAKE_SPLIT_VERDICT,     /* the last decision: denied, retry 5 (a
                               verdict split inside a multi-limit group) */
    FAKE_MODE_COUNT_        /* not a mode */
};

#define FAKE_LATE_MS 300

struct fake_redis;

/* The mode's name, as written above without FAKE_ ("GOOD"); static. */
const char *fake_mode_name(enum fake_mode mode);

/*
 * Starts a fake in `mode` on a free 127.0.0.1 port; it accepts at once
 * (the socket listens before this returns).  Returns a handle for
 * fake_redis_stop(), or NULL after printing why to stderr.
 */
struct fake_redis *fake_redis_start(enum fake_mode mode);

/* The TCP port the fake listens on. */
int fake_redis_port(const struct fake_redis *f);

/* Changes how the following EVALSHA commands are answered. */
void fake_redis_set_mode(struct fake_redis *f, enum fake_mode mode);

/*
 * How many commands named `name` the fake has received, case-insensitive:
 * "EVALSHA", "SCRIPT LOAD", "AUTH", "SELECT", "PING", or "OTHER" for any
 * other command.  Three more counters: "connections" (accepted),
 * "checks" (checks carried by every EVALSHA, the n of each summed) and
 * "noscript" (-NOSCRIPT replies sent, in any mode).  -1 for an unknown
 * name.  A command is counted when it has been read whole, before it is
 * answered.
 */
long fake_redis_count(const struct fake_redis *f, const char *name);

/*
 * Kills the fake with SIGKILL, reaps it and frees f; every connection to
 * it is reset.  f may be NULL.
 */
void fake_redis_stop(struct fake_redis *f);

#endif
