/*
 * url.c: REDIS_URL, parsed.
 *
 * Two shapes are accepted, and nothing else:
 *
 *   redis://[[user]:password@]host[:port][/db]   host: a name, an IPv4
 *                                                address or [IPv6]
 *   unix:///absolute/path[?db=N]
 *
 * The scheme is matched without regard to case (RFC 3986); everything else
 * is exact.  The user and password are percent-decoded (%40 is '@'); the
 * password runs to the last '@' of the authority, so a raw '@' in it also
 * works.  A userinfo without ':' ("redis://secret@host") is refused rather
 * than guessed at: redis-cli reads it as a password, other clients as a
 * user name, and a password taken for a user name would end up in logs.
 * The unix path is taken literally (no percent-decoding).  A TCP URL
 * without a port gets 6379, the scheme's default; db is -1 when not given.
 * TLS (rediss://) and query parameters on redis:// are refused.
 *
 * Parsing first finds the parts in place, without allocating, and only then
 * copies them out; so a NULL `out` makes a pure syntax check (used by
 * rl__config_validate), and a malformed URL never allocates anything.
 * Callers never log the URL: it may hold a password.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "rl_private.h"

#define DEFAULT_PORT 6379
#define HOST_MAX 255 /* bytes of a host name (RFC 1035 limit) */
#define UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* A piece of the URL, in place. */
struct span {
    const char *p;
    size_t n;
};

/* What the URL says, before anything is copied out. */
struct parts {
    struct span host;  /* without the brackets of an IPv6 literal */
    struct span path;  /* unix socket path */
    struct span user;  /* still percent-encoded; n == 0: none */
    struct span pass;  /* still percent-encoded; p == NULL: none */
    int port;
    int db;
};

/* ---- small parsers ---- */

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Percent-decodes s into dst (NULL: only check) and NUL-terminates it.
 * dst needs s.n + 1 bytes.  A '%' without two hex digits after it, and an
 * encoded NUL byte, are RL_ERR_INVALID.
 */
static int
pct_decode(struct span s, char *dst)
{
    size_t i, o = 0;
    int hi, lo;

    for (i = 0; i < s.n; i++) {
        char c = s.p[i];

        if (c == '%') {
            if (i + 2 >= s.n)
                return RL_ERR_INVALID;
            hi = hexval(s.p[i + 1]);
            lo = hexval(s.p[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return RL_ERR_INVALID;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (dst)
            dst[o++] = c;
    }
    if (dst)
        dst[o] = '\0';
    return RL_OK;
}

/* Decimal digits only, at least one, value <= max. */
static int
parse_uint(struct span s, int max, int *out)
{
    long v = 0;
    size_t i;

    if (s.n == 0)
        return RL_ERR_INVALID;
    for (i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return RL_ERR_INVALID;
        v = v * 10 + (s.p[i] - '0');
        if (v > max)
            return RL_ERR_INVALID;
    }
    *out = (int)v;
    return RL_OK;
}

/* A host name or IPv4 address: letters, digits, '-', '.', '_'. */
static int
check_host_name(struct span h)
{
    size_t i;

    if (h.n == 0 || h.n > HOST_MAX)
        return RL_ERR_INVALID;
    for (i = 0; i < h.n; i++) {
        char c = h.p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
            return RL_ERR_INVALID;
    }
    return RL_OK;
}

/* The inside of [...]: an IPv6 address as inet_pton reads it (no zone). */
static int
check_ipv6(struct span h)
{
    char buf[INET6_ADDRSTRLEN];
    struct in6_addr a;

    if (h.n == 0 || h.n >= sizeof(buf))
        return RL_ERR_INVALID;
    memcpy(buf, h.p, h.n);
    buf[h.n] = '\0';
    if (inet_pton(AF_INET6, buf, &a) != 1)
        return RL_ERR_INVALID;
    return RL_OK;
}

/* ---- the two shapes ---- */

/* "user:password" (user may be empty; the password may not). */
static int
parse_userinfo(struct span ui, struct parts *pt)
{
    const char *colon = memchr(ui.p, ':', ui.n);

    if (colon == NULL)
        return RL_ERR_INVALID;
    pt->user.p = ui.p;
    pt->user.n = (size_t)(colon - ui.p);
    pt->pass.p = colon + 1;
    pt->pass.n = ui.n - pt->user.n - 1;
    if (pt->pass.n == 0)
        return RL_ERR_INVALID;
    if (pct_decode(pt->user, NULL) != RL_OK ||
        pct_decode(pt->pass, NULL) != RL_OK)
        return RL_ERR_INVALID;
    return RL_OK;
}

/* "host", "host:port", "[v6]" or "[v6]:port". */
static int
parse_hostport(struct span hp, struct parts *pt)
{
    const char *end = hp.p + hp.n, *rest;
    struct span port;

    pt->port = DEFAULT_PORT;
    if (hp.n > 0 && hp.p[0] == '[') {
        rest = memchr(hp.p, ']', hp.n);
        if (rest == NULL)
            return RL_ERR_INVALID;
        pt->host.p = hp.p + 1;
        pt->host.n = (size_t)(rest - pt->host.p);
        rest++;
        if (check_ipv6(pt->host) != RL_OK)
            return RL_ERR_INVALID;
    } else {
        rest = memchr(hp.p, ':', hp.n);
        if (rest == NULL)
            rest = end;
        pt->host.p = hp.p;
        pt->host.n = (size_t)(rest - hp.p);
        if (check_host_name(pt->host) != RL_OK)
            return RL_ERR_INVALID;
    }
    if (rest == end)
        return RL_OK;
    if (*rest != ':')
        return RL_ERR_INVALID;
    port.p = rest + 1;
    port.n = (size_t)(end - port.p);
    if (parse_uint(port, 65535, &pt->port) != RL_OK || pt->port == 0)
        return RL_ERR_INVALID;
    return RL_OK;
}

/* s: what follows "redis://". */
static int
parse_tcp(const char *s, struct parts *pt)
{
    size_t alen = strcspn(s, "/?#");
    struct span auth = {s, alen}, ui, db;
    const char *at = NULL, *p;

    for (p = s; p < s + alen; p++)
        if (*p == '@')
            at = p;
    if (at) {
        ui.p = s;
        ui.n = (size_t)(at - s);
        if (parse_userinfo(ui, pt) != RL_OK)
            return RL_ERR_INVALID;
        auth.p = at + 1;
        auth.n = alen - ui.n - 1;
    }
    if (parse_hostport(auth, pt) != RL_OK)
        return RL_ERR_INVALID;
    p = s + alen;
    if (*p == '\0')
        return RL_OK;
    if (*p != '/')
        return RL_ERR_INVALID;
    db.p = p + 1;
    db.n = strlen(db.p);
    if (db.n == 0)
        return RL_OK;
    return parse_uint(db, INT_MAX, &pt->db);
}

/* s: what follows "unix://", an absolute path and maybe "?db=N". */
static int
parse_unix(const char *s, struct parts *pt)
{
    size_t i, n = strcspn(s, "?");
    struct span db;

    if (n < 2 || s[0] != '/' || n > UNIX_PATH_MAX)
        return RL_ERR_INVALID;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '#')
            return RL_ERR_INVALID;
    pt->path.p = s;
    pt->path.n = n;
    if (s[n] == '\0')
        return RL_OK;
    if (strncmp(s + n, "?db=", 4) != 0)
        return RL_ERR_INVALID;
    db.p = s + n + 4;
    db.n = strlen(db.p);
    return parse_uint(db, INT_MAX, &pt->db);
}

/* ---- copying out ---- */

/* A malloc'd, NUL-terminated copy of s, percent-decoded or not. */
static int
copy_span(struct span s, bool decode, char **out)
{
    char *d = malloc(s.n + 1);

    if (d == NULL)
        return RL_ERR_NOMEM;
    if (decode) {
        pct_decode(s, d); /* checked while parsing */
    } else {
        memcpy(d, s.p, s.n);
        d[s.n] = '\0';
    }
    *out = d;
    return RL_OK;
}

static int
fill(const struct parts *pt, struct rl_redis_url *out)
{
    int rc = RL_OK;

    out->port = pt->port; /* 0 for a unix socket */
    out->db = pt->db;
    if (pt->host.p)
        rc = copy_span(pt->host, false, &out->host);
    if (rc == RL_OK && pt->path.p)
        rc = copy_span(pt->path, false, &out->unix_path);
    if (rc == RL_OK && pt->user.n > 0)
        rc = copy_span(pt->user, true, &out->username);
    if (rc == RL_OK && pt->pass.p)
        rc = copy_span(pt->pass, true, &out->password);
    if (rc != RL_OK)
        rl__redis_url_clear(out);
    return rc;
}

/* ---- entry points ---- */

/*
 * Parses url into *out (out == NULL: only says whether it parses).
 * Returns RL_OK, RL_ERR_INVALID (out cleared, nothing allocated) or
 * RL_ERR_NOMEM (out cleared, nothing leaked).
 */
int
rl__redis_url_parse(const char *url, struct rl_redis_url *out)
{
    struct parts pt;
    int rc = RL_ERR_INVALID;

    memset(&pt, 0, sizeof(pt));
    pt.db = -1;
    if (out) {
        memset(out, 0, sizeof(*out));
        out->db = -1;
    }
    if (url == NULL)
        return RL_ERR_INVALID;
    if (strncasecmp(url, "redis://", 8) == 0)
        rc = parse_tcp(url + 8, &pt);
    else if (strncasecmp(url, "unix://", 7) == 0)
        rc = parse_unix(url + 7, &pt);
    if (rc != RL_OK || out == NULL)
        return rc;
    return fill(&pt, out);
}

/* Frees what rl__redis_url_parse allocated, wiping the password first. */
void
rl__redis_url_clear(struct rl_redis_url *u)
{
    volatile char *p;

    if (u == NULL)
        return;
    if (u->password) {
        for (p = u->password; *p; p++)
            *p = '\0';
    }
    free(u->host);
    free(u->unix_path);
    free(u->username);
    free(u->password);
    memset(u, 0, sizeof(*u));
    u->db = -1;
}
