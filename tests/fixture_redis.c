/*
 * fixture_redis.c: runs a private redis-server for the integration suites
 * and injects failures into it.  The server is a child of the test: its
 * pid is what SIGSTOP, SIGKILL and restarts act on, its private directory
 * and loopback port keep concurrent test binaries apart, and its INFO
 * commandstats tell a test what the library really sent.  Cleanup is in
 * layers (see fixture_redis.h) because Check ends a failing forked test
 * with _exit(), which skips atexit handlers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "fixture_redis.h"

#define FX_HOST "127.0.0.1"
#define FX_PREFIX "fx_redis."
#define FX_MAX_LIVE 64          /* servers alive at once, per process */
#define FX_TRIES 5              /* launches before giving up */
#define FX_READY_MS 5000        /* per launch */
#define FX_PROBE_MS 200         /* connect timeout while waiting */
#define FX_STOP_MS 3000         /* SIGTERM grace before SIGKILL */
#define FX_CMD_MS 2000          /* fx_redis_cmd connect and reply */
#define FX_STALE_SECS 600       /* age before sweeping an orphaned dir */

enum launch_state { LS_READY, LS_EXITED, LS_TIMEOUT };

/* ---- small helpers ---- */

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        continue;
}

static struct timeval
tv_ms(int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    return tv;
}

/* Returns "a/b" in a new string, or NULL. */
static char *
join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);

    if (p != NULL)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Waits for pid to end, for good: a SIGKILLed child always does. */
static void
reap(pid_t pid)
{
    int st;

    while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
        continue;
}

/* True once pid has ended (and is reaped, if it is our child). */
static bool
has_ended(pid_t pid)
{
    int st;
    pid_t rc = waitpid(pid, &st, WNOHANG);

    if (rc == pid)
        return true;
    if (rc == -1 && errno == ECHILD)
        return kill(pid, 0) == -1 && errno == ESRCH;
    return false;
}

static void
kill_reap(struct fx_redis *r)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGKILL);
    reap(r->pid);
    r->pid = -1;
    r->paused = false;
}

static void
drop_ctx(struct fx_redis *r)
{
    if (r->ctx != NULL)
        redisFree(r->ctx);
    r->ctx = NULL;
}

/* ---- cleanup registry ---- */

/* Servers started and not stopped, for the atexit handler: the only
 * global state of the fixture. */
static struct fx_redis *live[FX_MAX_LIVE];

/* Stops the servers this process started; a forked test inherits its
 * parent's entries and must leave them alone. */
static void
stop_all(void)
{
    pid_t self = getpid();
    int i;

    for (i = 0; i < FX_MAX_LIVE; i++)
        if (live[i] != NULL && live[i]->owner == self)
            fx_redis_stop(live[i]);
}

static int
registry_add(struct fx_redis *r)
{
    static bool hooked;
    int i;

    if (!hooked) {
        if (atexit(stop_all) != 0)
            return -1;
        hooked = true;
    }
    for (i = 0; i < FX_MAX_LIVE; i++) {
        if (live[i] == NULL) {
            live[i] = r;
            return 0;
        }
    }
    fprintf(stderr, "fx_redis: more than %d servers\n", FX_MAX_LIVE);
    return -1;
}

static void
registry_del(struct fx_redis *r)
{
    int i;

    for (i = 0; i < FX_MAX_LIVE; i++)
        if (live[i] == r)
            live[i] = NULL;
}

/* ---- the temporary directory ---- */

static const char *
tmp_base(void)
{
    const char *t = getenv("TMPDIR");

    return t != NULL && *t != '\0' ? t : "/tmp";
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        fprintf(stderr, "fx_redis: remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void
rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* True for our directory "fx_redis.<pid>.XXXXXX" whose owner is gone and
 * which is old enough that no test in another pid namespace sharing this
 * directory could still be using it. */
static bool
is_stale(const char *base, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    char *end;
    long pid;

    if (strncmp(name, FX_PREFIX, strlen(FX_PREFIX)) != 0)
        return false;
    pid = strtol(name + strlen(FX_PREFIX), &end, 10);
    if (pid <= 0 || *end != '.')
        return false;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
        return false;
    snprintf(path, sizeof(path), "%s/%s", base, name);
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return false;
    return st.st_uid == getuid() && time(NULL) - st.st_mtime > FX_STALE_SECS;
}

/* Removes the directories of processes that ended without cleaning up
 * (a failing forked test ends with _exit). */
static void
sweep_stale(const char *base)
{
    DIR *d = opendir(base);
    struct dirent *e;
    char *path;

    if (d == NULL)
        return;
    for (;;) {
        e = readdir(d);
        if (e == NULL)
            break;
        if (!is_stale(base, e->d_name))
            continue;
        path = join(base, e->d_name);
        if (path != NULL)
            rm_tree(path);
        free(path);
    }
    closedir(d);
}

/* Makes the private directory, as an absolute path (redis chdirs). */
static char *
make_dir(void)
{
    const char *base = tmp_base();
    size_t n = strlen(base) + sizeof(FX_PREFIX) + 32;
    char *tmpl = malloc(n);
    char *dir = NULL;

    if (tmpl == NULL)
        return NULL;
    snprintf(tmpl, n, "%s/" FX_PREFIX "%ld.XXXXXX", base, (long)getpid());
    if (mkdtemp(tmpl) == NULL) {
        fprintf(stderr, "fx_redis: mkdtemp %s: %s\n", tmpl, strerror(errno));
        goto out;
    }
    dir = realpath(tmpl, NULL);
    if (dir == NULL)
        rm_tree(tmpl);
out:
    free(tmpl);
    return dir;
}

/* ---- configuration ---- */

/* Writes prefix and s as one double-quoted redis.conf argument. */
static void
put_quoted(FILE *f, const char *prefix, const char *s)
{
    unsigned char c;

    fprintf(f, " \"%s", prefix);
    for (; *s != '\0'; s++) {
        c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void
put_line(FILE *f, const char *key, const char *value)
{
    fputs(key, f);
    put_quoted(f, "", value);
    fputc('\n', f);
}

/* Writes redis.conf.  The port is given on the command line instead, so
 * the file stays the same across launches on other ports. */
static int
write_conf(const struct fx_redis *r, const struct fx_redis_opts *o)
{
    FILE *f = fopen(r->conf, "w");

    if (f == NULL) {
        fprintf(stderr, "fx_redis: %s: %s\n", r->conf, strerror(errno));
        return -1;
    }
    fputs("bind 127.0.0.1\nprotected-mode no\ndaemonize no\n"
          "save \"\"\nappendonly no\nenable-debug-command yes\n", f);
    put_line(f, "dir", r->dir);
    put_line(f, "logfile", r->log);
    if (r->sock != NULL) {
        put_line(f, "unixsocket", r->sock);
        fputs("unixsocketperm 700\n", f);
    }
    if (o->requirepass != NULL)
        put_line(f, "requirepass", o->requirepass);
    if (o->user != NULL) {
        fputs("user", f);
        put_quoted(f, "", o->user);
        fputs(" on", f);
        if (o->user_pass != NULL)
            put_quoted(f, ">", o->user_pass);
        else
            fputs(" nopass", f);
        fputs(" ~* &* +@all\n", f);
    }
    if (o->extra != NULL)
        fprintf(f, "%s\n", o->extra);
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- the server process ---- */

static char *
find_bin(bool quiet)
{
    const char *env = getenv("REDIS_SERVER");
    char *path, *dir, *cand, *save = NULL;

    if (env != NULL && *env != '\0') {
        if (access(env, X_OK) == 0)
            return strdup(env);
        if (!quiet)
            fprintf(stderr, "fx_redis: $REDIS_SERVER %s: not executable\n",
                    env);
        return NULL;
    }
    path = strdup(getenv("PATH") != NULL ? getenv("PATH") : "");
    dir = path != NULL ? strtok_r(path, ":", &save) : NULL;
    while (dir != NULL) {
        cand = join(dir, "redis-server");
        if (cand != NULL && access(cand, X_OK) == 0) {
            free(path);
            return cand;
        }
        free(cand);
        dir = strtok_r(NULL, ":", &save);
    }
    free(path);
    if (access("/usr/bin/redis-server", X_OK) == 0)
        return strdup("/usr/bin/redis-server");
    if (!quiet)
        fprintf(stderr, "fx_redis: no redis-server; set $REDIS_SERVER\n");
    return NULL;
}

/* Returns a 127.0.0.1 port that was free a moment ago, or -1. */
static int
free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd, port = -1;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void
close_from(int lo, long maxfd)
{
    long fd;

#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lo, ~0U, 0U) == 0)
        return;
#endif
    for (fd = lo; fd < maxfd; fd++)
        close((int)fd);
}

/*
 * In the forked child: die with the parent, stdio to the log, no
 * inherited descriptors (a copy of a test's socket would keep it open
 * after the test closes it), default signal mask, then exec.
 */
static void
exec_server(const struct fx_redis *r, char *const argv[], pid_t parent,
            long maxfd)
{
    sigset_t none;
    int fd;

#ifdef __linux__
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
#else
    (void)parent;
#endif
    fd = open("/dev/null", O_RDONLY);
    if (fd < 0 || dup2(fd, 0) < 0)
        _exit(127);
    fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
        _exit(127);
    close_from(3, maxfd);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(r->bin, argv);
    _exit(127);
}

/* Forks and execs "redis-server redis.conf --port N"; returns the pid. */
static pid_t
spawn(const struct fx_redis *r)
{
    char opt[] = "--port", port[16];
    char *argv[] = { r->bin, r->conf, opt, port, NULL };
    long maxfd = sysconf(_SC_OPEN_MAX);
    pid_t parent = getpid(), pid;

    if (maxfd < 0 || maxfd > 65536)
        maxfd = 65536;
    snprintf(port, sizeof(port), "%d", r->port);
    pid = fork();
    if (pid == 0)
        exec_server(r, argv, parent, maxfd);
    if (pid < 0)
        fprintf(stderr, "fx_redis: fork: %s\n", strerror(errno));
    return pid;
}

static void
print_log_tail(const char *log)
{
    char buf[2048];
    FILE *f = fopen(log, "r");
    long size;
    size_t n;

    if (f == NULL)
        return;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    if (size > (long)sizeof(buf) - 1)
        fseek(f, size - (long)sizeof(buf) + 1, SEEK_SET);
    else
        fseek(f, 0, SEEK_SET);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "---- tail of %s ----\n%s---- end ----\n", log, buf);
}

/* ---- connections ---- */

static redisContext *
connect_tcp(int port, int timeout_ms, bool quiet)
{
    redisContext *c;

    c = redisConnectWithTimeout(FX_HOST, port, tv_ms(timeout_ms));
    if (c != NULL && c->err == 0 &&
        redisSetTimeout(c, tv_ms(timeout_ms)) == REDIS_OK)
        return c;
    if (!quiet)
        fprintf(stderr, "fx_redis: connect to port %d: %s\n", port,
                c != NULL ? c->errstr : "out of memory");
    if (c != NULL)
        redisFree(c);
    return NULL;
}

/* Connects and authenticates as the handle says. */
static redisContext *
open_conn(const struct fx_redis *r, int timeout_ms, bool quiet)
{
    redisContext *c = connect_tcp(r->port, timeout_ms, quiet);
    redisReply *rep;

    if (c == NULL || r->pass == NULL)
        return c;
    if (r->user != NULL)
        rep = redisCommand(c, "AUTH %s %s", r->user, r->pass);
    else
        rep = redisCommand(c, "AUTH %s", r->pass);
    if (rep != NULL && rep->type == REDIS_REPLY_STATUS) {
        freeReplyObject(rep);
        return c;
    }
    if (!quiet)
        fprintf(stderr, "fx_redis: AUTH on port %d: %s\n", r->port,
                rep != NULL && rep->str != NULL ? rep->str : c->errstr);
    if (rep != NULL)
        freeReplyObject(rep);
    redisFree(c);
    return NULL;
}

/* Connects once; succeeds only if the server there is our child (another
 * process may have won the race for the port).  Keeps the connection. */
static int
probe(struct fx_redis *r)
{
    redisContext *c = open_conn(r, FX_PROBE_MS, true);
    redisReply *rep;
    const char *p;
    long long pid = -1;

    if (c == NULL)
        return -1;
    rep = redisCommand(c, "INFO server");
    if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
        p = strstr(rep->str, "\nprocess_id:");
        if (p != NULL)
            pid = strtoll(p + strlen("\nprocess_id:"), NULL, 10);
    }
    if (rep != NULL)
        freeReplyObject(rep);
    if (pid != (long long)r->pid ||
        redisSetTimeout(c, tv_ms(FX_CMD_MS)) != REDIS_OK) {
        redisFree(c);
        return -1;
    }
    drop_ctx(r);
    r->ctx = c;
    return 0;
}

/* ---- launching ---- */

static enum launch_state
wait_ready(struct fx_redis *r)
{
    long long deadline = now_ms() + FX_READY_MS;

    do {
        if (has_ended(r->pid)) {
            r->pid = -1;
            return LS_EXITED;
        }
        if (probe(r) == 0)
            return LS_READY;
        sleep_ms(10);
    } while (now_ms() < deadline);
    return LS_TIMEOUT;
}

/*
 * Starts the server and waits for it, up to FX_TRIES times: on a fresh
 * port each time if new_port (another process may take the port between
 * free_port() and the server's bind), else on r->port again after a pause
 * (a restart).  Leaves the statistics reset.
 */
static int
launch(struct fx_redis *r, bool new_port)
{
    enum launch_state st;
    int attempt;

    for (attempt = 0; attempt < FX_TRIES; attempt++) {
        if (new_port)
            r->port = free_port();
        if (r->port <= 0)
            break;
        r->pid = spawn(r);
        if (r->pid < 0)
            break;
        st = wait_ready(r);
        if (st == LS_READY && fx_redis_reset_stats(r) == 0)
            return 0;
        if (st != LS_EXITED)
            break;
        if (!new_port)
            sleep_ms(100);
    }
    kill_reap(r);
    fprintf(stderr, "fx_redis: redis-server %s on port %d did not start\n",
            r->bin, r->port);
    print_log_tail(r->log);
    return -1;
}

/* ---- life cycle ---- */

static int
init_paths(struct fx_redis *r, bool unixsocket)
{
    struct sockaddr_un sun;

    r->bin = find_bin(false);
    if (r->bin == NULL)
        return -1;
    r->dir = make_dir();
    if (r->dir == NULL)
        return -1;
    r->conf = join(r->dir, "redis.conf");
    r->log = join(r->dir, "redis.log");
    if (r->conf == NULL || r->log == NULL)
        return -1;
    if (!unixsocket)
        return 0;
    r->sock = join(r->dir, "redis.sock");
    if (r->sock == NULL)
        return -1;
    if (strlen(r->sock) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "fx_redis: socket path too long: %s\n", r->sock);
        return -1;
    }
    return 0;
}

/* Keeps what fx_redis_cmd() needs to authenticate: the ACL user if any,
 * else the default user's requirepass. */
static int
init_auth(struct fx_redis *r, const struct fx_redis_opts *o)
{
    const char *pass = o->user != NULL ? o->user_pass : o->requirepass;

    if (o->user != NULL) {
        r->user = strdup(o->user);
        if (r->user == NULL)
            return -1;
        if (pass == NULL)
            pass = "nopass"; /* any password opens a nopass user */
    }
    if (pass != NULL) {
        r->pass = strdup(pass);
        if (r->pass == NULL)
            return -1;
    }
    return 0;
}

bool
fx_redis_available(void)
{
    char *bin = find_bin(true);
    bool found = bin != NULL;

    free(bin);
    return found;
}

struct fx_redis *
fx_redis_start(const struct fx_redis_opts *o)
{
    static const struct fx_redis_opts defaults;
    struct fx_redis *r;

    if (o == NULL)
        o = &defaults;
    sweep_stale(tmp_base());
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->host = FX_HOST;
    r->pid = -1;
    r->owner = getpid();
    if (registry_add(r) != 0) {
        free(r);
        return NULL;
    }
    if (init_paths(r, o->unixsocket) != 0 || init_auth(r, o) != 0)
        goto out_stop;
    if (write_conf(r, o) != 0 || launch(r, true) != 0)
        goto out_stop;
    return r;

out_stop:
    fx_redis_stop(r);
    return NULL;
}

/* SIGCONT (it may be paused), SIGTERM, and SIGKILL after FX_STOP_MS. */
static void
terminate(struct fx_redis *r)
{
    long long deadline = now_ms() + FX_STOP_MS;

    if (r->pid <= 0)
        return;
    kill(r->pid, SIGCONT);
    kill(r->pid, SIGTERM);
    while (now_ms() < deadline) {
        if (has_ended(r->pid)) {
            r->pid = -1;
            return;
        }
        sleep_ms(5);
    }
    fprintf(stderr, "fx_redis: pid %ld ignored SIGTERM\n", (long)r->pid);
    kill_reap(r);
}

void
fx_redis_stop(struct fx_redis *r)
{
    if (r == NULL)
        return;
    registry_del(r);
    drop_ctx(r);
    terminate(r);
    if (r->dir != NULL)
        rm_tree(r->dir);
    free(r->dir);
    free(r->sock);
    free(r->bin);
    free(r->conf);
    free(r->log);
    free(r->user);
    free(r->pass);
    free(r);
}

/* ---- failure injection ---- */

/* Waits until the child reports the state change just signalled, so the
 * caller knows it took effect; an inherited server cannot be waited for. */
static void
wait_state(struct fx_redis *r, int flag)
{
    int st;
    pid_t rc;

    if (r->owner != getpid())
        return;
    do {
        rc = waitpid(r->pid, &st, flag);
    } while (rc == -1 && errno == EINTR);
    if (rc == r->pid && (WIFEXITED(st) || WIFSIGNALED(st)))
        r->pid = -1;
}

int
fx_redis_pause(struct fx_redis *r)
{
    if (r->pid <= 0)
        return -1;
    if (r->paused)
        return 0;
    if (kill(r->pid, SIGSTOP) != 0)
        return -1;
    wait_state(r, WUNTRACED);
    r->paused = true;
    return r->pid > 0 ? 0 : -1;
}

int
fx_redis_resume(struct fx_redis *r)
{
    if (r->pid <= 0 || kill(r->pid, SIGCONT) != 0)
        return -1;
    if (r->paused)
        wait_state(r, WCONTINUED);
    r->paused = false;
    return r->pid > 0 ? 0 : -1;
}

int
fx_redis_kill(struct fx_redis *r)
{
    drop_ctx(r);
    if (r->pid <= 0)
        return -1;
    kill_reap(r);
    return 0;
}

int
fx_redis_restart(struct fx_redis *r)
{
    drop_ctx(r);
    kill_reap(r);
    return launch(r, false);
}

/* ---- commands ---- */

redisContext *
fx_redis_connect(const struct fx_redis *r, int timeout_ms)
{
    return connect_tcp(r->port, timeout_ms, false);
}

static redisReply *
vcmd(struct fx_redis *r, const char *fmt, va_list ap)
{
    redisReply *rep;

    if (r->ctx == NULL) {
        r->ctx = open_conn(r, FX_CMD_MS, false);
        if (r->ctx == NULL)
            return NULL;
    }
    rep = redisvCommand(r->ctx, fmt, ap);
    if (rep == NULL) {
        fprintf(stderr, "fx_redis: command on port %d: %s\n", r->port,
                r->ctx->errstr);
        drop_ctx(r);
    }
    return rep;
}

redisReply *
fx_redis_cmd(struct fx_redis *r, const char *fmt, ...)
{
    redisReply *rep;
    va_list ap;

    va_start(ap, fmt);
    rep = vcmd(r, fmt, ap);
    va_end(ap);
    return rep;
}

long long
fx_redis_int(struct fx_redis *r, const char *fmt, ...)
{
    redisReply *rep;
    long long v = -1;
    va_list ap;

    va_start(ap, fmt);
    rep = vcmd(r, fmt, ap);
    va_end(ap);
    if (rep != NULL && rep->type == REDIS_REPLY_INTEGER)
        v = rep->integer;
    if (rep != NULL)
        freeReplyObject(rep);
    return v;
}

/* Frees a reply and returns 0 if it was a status (+OK), else -1. */
static int
status_ok(redisReply *rep)
{
    int rc = rep != NULL && rep->type == REDIS_REPLY_STATUS ? 0 : -1;

    if (rep != NULL)
        freeReplyObject(rep);
    return rc;
}

int
fx_redis_reset_stats(struct fx_redis *r)
{
    return status_ok(fx_redis_cmd(r, "CONFIG RESETSTAT"));
}

int
fx_redis_flushall(struct fx_redis *r)
{
    return status_ok(fx_redis_cmd(r, "FLUSHALL"));
}

/* ---- statistics ---- */

/* The fixture's own commands, left out of fx_redis_total_commands(). */
static const char *const own_cmds[] = { "info", "auth", "config|resetstat" };

static bool
is_own(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof(own_cmds) / sizeof(own_cmds[0]); i++)
        if (strlen(own_cmds[i]) == len && memcmp(own_cmds[i], name, len) == 0)
            return true;
    return false;
}

/* INFO commandstats; every "cmdstat_" line follows a '\n'. */
static redisReply *
stats_reply(struct fx_redis *r)
{
    redisReply *rep = fx_redis_cmd(r, "INFO commandstats");

    if (rep != NULL && rep->type == REDIS_REPLY_STRING)
        return rep;
    if (rep != NULL)
        freeReplyObject(rep);
    return NULL;
}

long long
fx_redis_commandstat(struct fx_redis *r, const char *name)
{
    char needle[160];
    redisReply *rep;
    const char *p;
    long long n = 0;
    size_t i, len = strlen(name);

    if (len > 100)
        return -1;
    snprintf(needle, sizeof(needle), "\ncmdstat_%s:calls=", name);
    for (i = 0; needle[i] != '\0'; i++)
        needle[i] = (char)tolower((unsigned char)needle[i]);
    rep = stats_reply(r);
    if (rep == NULL)
        return -1;
    p = strstr(rep->str, needle);
    if (p != NULL)
        n = strtoll(p + strlen(needle), NULL, 10);
    freeReplyObject(rep);
    return n;
}

long long
fx_redis_total_commands(struct fx_redis *r)
{
    static const char line[] = "\ncmdstat_", calls[] = ":calls=";
    redisReply *rep = stats_reply(r);
    const char *p, *name, *colon;
    long long sum = 0;

    if (rep == NULL)
        return -1;
    p = strstr(rep->str, line);
    while (p != NULL) {
        name = p + strlen(line);
        colon = strchr(name, ':');
        if (colon == NULL || strncmp(colon, calls, strlen(calls)) != 0)
            break;
        if (!is_own(name, (size_t)(colon - name)))
            sum += strtoll(colon + strlen(calls), NULL, 10);
        p = strstr(colon, line);
    }
    freeReplyObject(rep);
    return sum;
}
