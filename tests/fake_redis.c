/*
 * fake_redis.c: a fake Redis server in a forked child, for the suites that
 * must see the library face replies no real Redis sends (fake_redis.h).
 *
 * Why a process and not a thread: the child has its own address space and
 * loop, so a fake stuck on purpose (SILENT, TRUNCATED, MUTE) holds nothing
 * the test needs, and SIGKILL ends it whatever it is doing.  The parent
 * and the child share only one anonymous MAP_SHARED page: the mode, which
 * the parent writes, and the counters, which the child increments; both
 * are accessed with atomic builtins.
 *
 * The child runs a poll() loop over the listening socket and a few
 * clients.  Each read is appended to the client's buffer; every complete
 * command in it is counted, then answered into one output buffer written
 * once per read, in order, like a real Redis pipelining replies.
 */
#define _GNU_SOURCE 1

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <openssl/sha.h>

#include "fake_redis.h"

#define FAKE_MAX_LIVE 16          /* fakes alive at once, per process */
#define FAKE_MAX_CLIENTS 16       /* connections served at once */
#define FAKE_MAX_ARGS 4096        /* arguments of one command */
#define FAKE_MAX_BULK 100000000L  /* bytes of one argument */
#define FAKE_MAX_INPUT (64L << 20)/* bytes buffered per client */
#define FAKE_MAX_SHAS 32          /* scripts remembered */
#define FAKE_LINGER_MS 50         /* CLOSE: quiet time before closing */
#define FAKE_LINGER_READS 40      /* CLOSE: reads at most, then close */

/* ---- the shared page ---- */

enum fake_ctr {
    CTR_EVALSHA, CTR_SCRIPT_LOAD, CTR_AUTH, CTR_SELECT, CTR_PING,
    CTR_OTHER, CTR_CONNECTIONS, CTR_CHECKS, CTR_NOSCRIPT, CTR_COUNT_
};

static const char *const ctr_names[CTR_COUNT_] = {
    "EVALSHA", "SCRIPT LOAD", "AUTH", "SELECT", "PING", "OTHER",
    "connections", "checks", "noscript"
};

static const char *const mode_names[FAKE_MODE_COUNT_] = {
    "GOOD", "WRONG_COUNT", "WRONG_TYPE", "NOT_ARRAY", "NEGATIVE", "HUGE",
    "ALLOWED_WITH_RETRY", "NIL", "ERROR", "NOSCRIPT_ALWAYS", "TRUNCATED",
    "CLOSE", "SILENT", "NESTED", "GARBAGE", "MUTE", "LATE",
    "LOAD_ERROR", "SPLIT_VERDICT"
};

struct fake_shared {
    int mode;
    long ctr[CTR_COUNT_];
};

struct fake_redis {
    pid_t pid;                /* the child */
    pid_t owner;              /* the process that forked it */
    int port;
    struct fake_shared *sh;
};

/* ---- the child's state ---- */

struct arg {
    const char *p;
    size_t len;
};

struct buf {
    char *p;
    size_t len, cap;
};

struct client {
    int fd;                   /* -1: a free slot */
    struct buf in;
    bool stuck;               /* TRUNCATED: never write again */
    bool closing;             /* CLOSE: drain, then close */
};

struct server {
    int lfd;
    struct fake_shared *sh;
    struct client cl[FAKE_MAX_CLIENTS];
    struct arg args[FAKE_MAX_ARGS];
    char shas[FAKE_MAX_SHAS][41];
    int nshas;
    struct buf out;
    bool late;                /* LATE: sleep before this write */
};

const char *
fake_mode_name(enum fake_mode mode)
{
    if ((int)mode < 0 || mode >= FAKE_MODE_COUNT_)
        return "?";
    return mode_names[mode];
}

static void
count(struct server *s, enum fake_ctr c, long n)
{
    __atomic_fetch_add(&s->sh->ctr[c], n, __ATOMIC_SEQ_CST);
}

static enum fake_mode
mode_now(const struct server *s)
{
    return (enum fake_mode)__atomic_load_n(&s->sh->mode, __ATOMIC_SEQ_CST);
}

/* ---- output ---- */

/* Appends len bytes; the child gives up (exits) when memory runs out. */
static void
buf_add(struct buf *b, const void *p, size_t len)
{
    size_t cap = b->cap ? b->cap : 4096;
    char *q;

    if (b->len + len > b->cap) {
        while (cap < b->len + len)
            cap *= 2;
        q = realloc(b->p, cap);
        if (q == NULL)
            _exit(3);
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, len);
    b->len += len;
}

static void
buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* Appends "<type><v>\r\n": an integer, or an array or bulk header. */
static void
buf_num(struct buf *b, char type, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%c%lld\r\n", type, v);

    buf_add(b, tmp, (size_t)n);
}

static void
buf_bulk(struct buf *b, const char *p, size_t len)
{
    buf_num(b, '$', (long long)len);
    buf_add(b, p, len);
    buf_add(b, "\r\n", 2);
}

/* Writes everything, or gives up on an error (the client went away). */
static void
send_all(int fd, const char *p, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

/* ---- parsing RESP ---- */

/*
 * Reads "<type><digits>\r\n" at p.  Returns its length with *val set, 0
 * when more bytes are needed, -1 when it is not that header.
 */
static long
parse_header(const char *p, size_t len, char type, long *val)
{
    size_t i;
    long v = 0;

    if (len == 0)
        return 0;
    if (p[0] != type)
        return -1;
    for (i = 1; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
        if (v > FAKE_MAX_BULK)
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (i + 2 > len)
        return (i == len || p[i] == '\r') ? 0 : -1;
    if (i == 1 || p[i] != '\r' || p[i + 1] != '\n')
        return -1;
    *val = v;
    return (long)i + 2;
}

/*
 * Parses one command (an array of bulk strings) at p into s->args.
 * Returns the bytes it takes with *nargs set, 0 if incomplete, -1 if it
 * is not a command.
 */
static long
parse_command(struct server *s, const char *p, size_t len, int *nargs)
{
    long n, blen, h, i;
    size_t off;

    h = parse_header(p, len, '*', &n);
    if (h <= 0)
        return h;
    if (n < 1 || n > FAKE_MAX_ARGS)
        return -1;
    off = (size_t)h;
    for (i = 0; i < n; i++) {
        h = parse_header(p + off, len - off, '$', &blen);
        if (h <= 0)
            return h;
        off += (size_t)h;
        if (len - off < (size_t)blen + 2)
            return 0;
        if (p[off + blen] != '\r' || p[off + blen + 1] != '\n')
            return -1;
        s->args[i].p = p + off;
        s->args[i].len = (size_t)blen;
        off += (size_t)blen + 2;
    }
    *nargs = (int)n;
    return (long)off;
}

static bool
arg_is(const struct arg *a, const char *word)
{
    return a->len == strlen(word) && strncasecmp(a->p, word, a->len) == 0;
}

/* The argument as a decimal integer; 0 when it is not one. */
static long long
arg_ll(const struct arg *a)
{
    char tmp[32];
    char *end;
    long long v;

    if (a->len == 0 || a->len >= sizeof(tmp))
        return 0;
    memcpy(tmp, a->p, a->len);
    tmp[a->len] = '\0';
    v = strtoll(tmp, &end, 10);
    return *end == '\0' ? v : 0;
}

/* ---- scripts ---- */

static void
sha1_hex(const struct arg *text, char hex[41])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[SHA_DIGEST_LENGTH];
    int i;

    SHA1((const unsigned char *)text->p, text->len, md);
    for (i = 0; i < SHA_DIGEST_LENGTH; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[40] = '\0';
}

static void
script_load(struct server *s, const struct arg *text)
{
    char hex[41];
    int i;

    sha1_hex(text, hex);
    for (i = 0; i < s->nshas; i++)
        if (strcmp(s->shas[i], hex) == 0)
            break;
    if (i == s->nshas && s->nshas < FAKE_MAX_SHAS)
        memcpy(s->shas[s->nshas++], hex, sizeof(hex));
    buf_bulk(&s->out, hex, 40);
}

static bool
sha_known(const struct server *s, const struct arg *sha)
{
    int i;

    for (i = 0; i < s->nshas; i++)
        if (sha->len == 40 && memcmp(s->shas[i], sha->p, 40) == 0)
            return true;
    return false;
}

/* ---- EVALSHA ---- */

/*
 * The good decisions of EVALSHA sha n key1..keyn now ttl (max window
 * cost)*n mode, or of its second form with one (max window cost) for all
 * n checks (lua/common.lua), any mode (every check admitted is a good
 * answer to each of them): allowed, remaining, reset, retry for each
 * check.  Returns the array (malloc'd) and n, or NULL when the command is
 * not of either shape.
 */
static long long *
good_decisions(const struct server *s, int nargs, long *np)
{
    const struct arg *a = s->args;
    long n = nargs >= 3 ? (long)arg_ll(&a[2]) : -1;
    long long *v, max, cost;
    long i, base, step = 3;

    if (n >= 1 && 3 + n + 2 + 3 + 1 == nargs)
        step = 0; /* one triple for all */
    else if (n < 1 || 3 + n + 2 + 3 * n + 1 != nargs)
        return NULL;
    v = malloc((size_t)n * 4 * sizeof(*v));
    if (v == NULL)
        _exit(3);
    base = 3 + n + 2;
    for (i = 0; i < n; i++) {
        max = arg_ll(&a[base + step * i]);
        cost = arg_ll(&a[base + step * i + 2]);
        v[4 * i] = 1;
        v[4 * i + 1] = max - cost > 0 ? max - cost : 0;
        v[4 * i + 2] = arg_ll(&a[base + step * i + 1]);
        v[4 * i + 3] = 0;
    }
    *np = n;
    return v;
}

/* Spoils the batch's last decision as the mode says. */
static void
spoil_last(enum fake_mode mode, long long *last)
{
    if (mode == FAKE_NEGATIVE) {
        last[1] = -1;
    } else if (mode == FAKE_HUGE) {
        last[1] = 1LL << 62;
        last[2] = INT64_MAX;
    } else if (mode == FAKE_ALLOWED_WITH_RETRY) {
        last[0] = 1;
        last[3] = 5;
    } else if (mode == FAKE_SPLIT_VERDICT) {
        last[0] = 0;
        last[3] = 5;
    }
}

/* Writes `count` numbers as an array, each element in the mode's shape. */
static void
put_numbers(struct buf *b, enum fake_mode mode, const long long *v,
            long count)
{
    char tmp[32];
    long i;
    int len;

    buf_num(b, '*', count);
    for (i = 0; i < count; i++) {
        if (mode == FAKE_WRONG_TYPE) {
            len = snprintf(tmp, sizeof(tmp), "%lld", v[i]);
            buf_bulk(b, tmp, (size_t)len);
        } else if (mode == FAKE_NESTED) {
            buf_num(b, '*', 1);
            buf_num(b, ':', v[i]);
        } else {
            buf_num(b, ':', v[i]);
        }
    }
}

/* Answers with numbers: GOOD and every mode that spoils them. */
static void
evalsha_numbers(struct server *s, struct client *c, enum fake_mode mode,
                int nargs)
{
    long long *v;
    long n = 0;
    size_t start = s->out.len;

    v = good_decisions(s, nargs, &n);
    if (v == NULL) {
        buf_str(&s->out, "-ERR fake: not a batch of checks\r\n");
        return;
    }
    spoil_last(mode, v + 4 * (n - 1));
    put_numbers(&s->out, mode, v, mode == FAKE_WRONG_COUNT ? 4 * n - 1
                                                           : 4 * n);
    free(v);
    if (mode == FAKE_TRUNCATED) {
        s->out.len = start + (s->out.len - start) / 2;
        c->stuck = true;
    }
}

static void
noscript(struct server *s)
{
    count(s, CTR_NOSCRIPT, 1);
    buf_str(&s->out, "-NOSCRIPT No matching script. Please use EVAL.\r\n");
}

/* Counts an EVALSHA and the checks it carries. */
static void
count_evalsha(struct server *s, int nargs)
{
    count(s, CTR_EVALSHA, 1);
    if (nargs >= 3)
        count(s, CTR_CHECKS, (long)arg_ll(&s->args[2]));
}

static void
evalsha(struct server *s, struct client *c, int nargs)
{
    enum fake_mode mode = mode_now(s);

    count_evalsha(s, nargs);
    if (mode == FAKE_GOOD && (nargs < 2 || !sha_known(s, &s->args[1])))
        noscript(s);
    else if (mode == FAKE_NOSCRIPT_ALWAYS)
        noscript(s);
    else if (mode == FAKE_NOT_ARRAY)
        buf_str(&s->out, "+OK\r\n");
    else if (mode == FAKE_NIL)
        buf_str(&s->out, "$-1\r\n");
    else if (mode == FAKE_ERROR)
        buf_str(&s->out, "-ERR fake error\r\n");
    else if (mode == FAKE_GARBAGE)
        buf_str(&s->out, "hello\r\n");
    else if (mode == FAKE_CLOSE)
        c->closing = true;
    else if (mode != FAKE_SILENT)
        evalsha_numbers(s, c, mode, nargs);
    if (mode == FAKE_LATE)
        s->late = true;
}

/* ---- commands ---- */

/* Counts one command and appends its answer to s->out. */
static void
dispatch(struct server *s, struct client *c, int nargs)
{
    const struct arg *a = s->args;
    bool mute = mode_now(s) == FAKE_MUTE;

    if (arg_is(&a[0], "EVALSHA")) {
        if (mute)
            count_evalsha(s, nargs);
        else
            evalsha(s, c, nargs);
        return;
    }
    if (nargs == 3 && arg_is(&a[0], "SCRIPT") && arg_is(&a[1], "LOAD")) {
        count(s, CTR_SCRIPT_LOAD, 1);
        if (mode_now(s) == FAKE_LOAD_ERROR)
            buf_str(&s->out, "-ERR fake: script refused\r\n");
        else if (!mute)
            script_load(s, &a[2]);
    } else if (arg_is(&a[0], "AUTH") || arg_is(&a[0], "SELECT")) {
        count(s, arg_is(&a[0], "AUTH") ? CTR_AUTH : CTR_SELECT, 1);
        if (!mute)
            buf_str(&s->out, "+OK\r\n");
    } else if (arg_is(&a[0], "PING")) {
        count(s, CTR_PING, 1);
        if (!mute)
            buf_str(&s->out, "+PONG\r\n");
    } else {
        count(s, CTR_OTHER, 1);
        if (!mute)
            buf_str(&s->out, "-ERR fake: unknown command\r\n");
    }
}

/*
 * Answers every complete command buffered for c, in one write.  After a
 * TRUNCATED reply or a CLOSE, commands are still counted but no longer
 * answered.  Returns false when the input is not RESP (the client is then
 * dropped).
 */
static bool
serve_buffered(struct server *s, struct client *c)
{
    size_t off = 0, mark;
    long used;
    int nargs;
    bool ok = true, quiet;

    s->out.len = 0;
    while (off < c->in.len) {
        used = parse_command(s, c->in.p + off, c->in.len - off, &nargs);
        if (used <= 0) {
            ok = used == 0;
            break;
        }
        off += (size_t)used;
        quiet = c->stuck || c->closing;
        mark = s->out.len;
        dispatch(s, c, nargs);
        if (quiet)
            s->out.len = mark;
    }
    if (off > 0) {
        memmove(c->in.p, c->in.p + off, c->in.len - off);
        c->in.len -= off;
    }
    if (s->late && s->out.len > 0)
        usleep(FAKE_LATE_MS * 1000);
    s->late = false;
    send_all(c->fd, s->out.p, s->out.len);
    return ok;
}

/* ---- clients ---- */

static void
client_drop(struct client *c)
{
    close(c->fd);
    c->fd = -1;
    free(c->in.p);
    memset(&c->in, 0, sizeof(c->in));
    c->stuck = c->closing = false;
}

/* Reads what is there; returns false at EOF, on error or overflow. */
static bool
client_read(struct client *c)
{
    char tmp[65536];
    ssize_t n;

    if (c->in.len > (size_t)FAKE_MAX_INPUT)
        return false;
    n = read(c->fd, tmp, sizeof(tmp));
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0)
        return false;
    buf_add(&c->in, tmp, (size_t)n);
    return true;
}

/* CLOSE: counts what else arrives in the same burst, then closes. */
static void
client_linger_close(struct server *s, struct client *c)
{
    struct pollfd p = {c->fd, POLLIN, 0};
    int i;

    for (i = 0; i < FAKE_LINGER_READS; i++) {
        if (poll(&p, 1, FAKE_LINGER_MS) <= 0 || !client_read(c))
            break;
        serve_buffered(s, c);
    }
    client_drop(c);
}

static void
client_ready(struct server *s, struct client *c)
{
    bool ok = client_read(c);

    if (ok)
        ok = serve_buffered(s, c);
    if (ok && c->closing)
        client_linger_close(s, c);
    else if (!ok)
        client_drop(c);
}

static void
accept_client(struct server *s)
{
    struct timeval tv = {1, 0};
    int fd = accept(s->lfd, NULL, NULL);
    int i;

    if (fd < 0)
        return;
    count(s, CTR_CONNECTIONS, 1);
    for (i = 0; i < FAKE_MAX_CLIENTS; i++) {
        if (s->cl[i].fd < 0) {
            /* A client that stops reading cannot block the fake. */
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            s->cl[i].fd = fd;
            return;
        }
    }
    close(fd);
}

/* ---- the child ---- */

/* The child's loop: until SIGKILL, or until its parent is gone. */
static void
serve(struct server *s, pid_t parent)
{
    struct pollfd pfd[1 + FAKE_MAX_CLIENTS];
    int map[1 + FAKE_MAX_CLIENTS];
    int i, n;

    while (getppid() == parent) {
        pfd[0].fd = s->lfd;
        pfd[0].events = POLLIN;
        n = 1;
        for (i = 0; i < FAKE_MAX_CLIENTS; i++) {
            if (s->cl[i].fd < 0)
                continue;
            pfd[n].fd = s->cl[i].fd;
            pfd[n].events = POLLIN;
            map[n++] = i;
        }
        if (poll(pfd, (nfds_t)n, 1000) <= 0)
            continue;
        if (pfd[0].revents & POLLIN)
            accept_client(s);
        for (i = 1; i < n; i++)
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                client_ready(s, &s->cl[map[i]]);
    }
}

/*
 * In the forked child: die with the parent, keep no descriptor of the
 * test's but the listening socket (a copy of a test's socket would keep
 * it open after the test closes it), serve, and end with _exit so that
 * no atexit handler or sanitizer report of the test runs here.
 */
static void
child_main(int lfd, struct fake_shared *sh, pid_t parent)
{
    static struct server s;
    int i;

#ifdef __linux__
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        _exit(2);
#endif
    if (getppid() != parent || dup2(lfd, 3) < 0)
        _exit(2);
    if (close_range(4, ~0U, 0) != 0) {
        for (i = 4; i < 65536; i++)
            close(i);
    }
    signal(SIGPIPE, SIG_IGN);
    s.lfd = 3;
    s.sh = sh;
    for (i = 0; i < FAKE_MAX_CLIENTS; i++)
        s.cl[i].fd = -1;
    serve(&s, parent);
    _exit(0);
}

/* ---- the parent's side ---- */

/* Fakes started and not stopped, for the atexit handler. */
static struct fake_redis *live[FAKE_MAX_LIVE];

static void
stop_all(void)
{
    pid_t self = getpid();
    int i;

    for (i = 0; i < FAKE_MAX_LIVE; i++)
        if (live[i] != NULL && live[i]->owner == self)
            fake_redis_stop(live[i]);
}

static int
registry_add(struct fake_redis *f)
{
    static bool hooked;
    int i;

    if (!hooked) {
        if (atexit(stop_all) != 0)
            return -1;
        hooked = true;
    }
    for (i = 0; i < FAKE_MAX_LIVE; i++) {
        if (live[i] == NULL) {
            live[i] = f;
            return 0;
        }
    }
    return -1;
}

static void
registry_remove(const struct fake_redis *f)
{
    int i;

    for (i = 0; i < FAKE_MAX_LIVE; i++)
        if (live[i] == f)
            live[i] = NULL;
}

/* A socket listening on 127.0.0.1 at a port the kernel picks. */
static int
listen_any(int *port)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
        goto out_close;
    *port = ntohs(sin.sin_port);
    return fd;

out_close:
    close(fd);
    return -1;
}

struct fake_redis *
fake_redis_start(enum fake_mode mode)
{
    struct fake_redis *f = calloc(1, sizeof(*f));
    pid_t parent = getpid();
    int lfd = -1;

    if (f == NULL)
        goto out_fail;
    f->owner = parent;
    f->sh = mmap(NULL, sizeof(*f->sh), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (f->sh == MAP_FAILED)
        goto out_free;
    f->sh->mode = (int)mode;
    lfd = listen_any(&f->port);
    if (lfd < 0)
        goto out_unmap;
    fflush(NULL); /* no buffered output written twice */
    f->pid = fork();
    if (f->pid == 0)
        child_main(lfd, f->sh, parent);
    close(lfd);
    if (f->pid < 0)
        goto out_unmap;
    if (registry_add(f) == 0)
        return f;
    fake_redis_stop(f);
    goto out_fail;

out_unmap:
    munmap(f->sh, sizeof(*f->sh));
out_free:
    free(f);
out_fail:
    fprintf(stderr, "fake_redis: cannot start: %s\n", strerror(errno));
    return NULL;
}

int
fake_redis_port(const struct fake_redis *f)
{
    return f->port;
}

void
fake_redis_set_mode(struct fake_redis *f, enum fake_mode mode)
{
    __atomic_store_n(&f->sh->mode, (int)mode, __ATOMIC_SEQ_CST);
}

long
fake_redis_count(const struct fake_redis *f, const char *name)
{
    int i;

    for (i = 0; i < CTR_COUNT_; i++)
        if (strcasecmp(name, ctr_names[i]) == 0)
            return __atomic_load_n(&f->sh->ctr[i], __ATOMIC_SEQ_CST);
    return -1;
}

void
fake_redis_stop(struct fake_redis *f)
{
    if (f == NULL)
        return;
    registry_remove(f);
    if (f->pid > 0) {
        kill(f->pid, SIGKILL);
        while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
            continue;
    }
    munmap(f->sh, sizeof(*f->sh));
    free(f);
}
