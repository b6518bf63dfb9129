/*
 * keys.c: the Redis key of a user key.
 *
 * User keys are arbitrary bytes.  Written into a Redis key as they are,
 * a key with braces would move the Redis Cluster hash tag, and a key such
 * as "a:fw:b" could collide with the key of another limiter.  So every
 * byte outside printable ASCII, and '{', '}' and '%' themselves, is written
 * as %XX (an injective escape), and the hash tag braces are always ours:
 *
 *   PREFIX ":" ALG ":{" esc(TAG) "}" esc(KEY)
 *
 * TAG is the user's own hash tag, the bytes between the first '{' of the
 * key and the next '}' when there are any (Redis Cluster's rule), so keys
 * that name one tag ("{user:42}:minute", "{user:42}:hour") land in one slot
 * and can be checked together atomically; a key without one is its own
 * tag, and then esc(KEY) is left out (the tag already holds it).  A key
 * with a tag is never mistaken for one without: only its Redis key has
 * bytes after the closing brace.
 */
#include <string.h>

#include "redis.h"

static const char alg_tags[][3] = {
    [RL_SLIDING_WINDOW] = "sw", [RL_TOKEN_BUCKET] = "tb",
    [RL_FIXED_WINDOW] = "fw",   [RL_SLIDING_LOG] = "sl",
    [RL_GCRA] = "gc",
};

/* 1 for the bytes written as they are: printable ASCII (0x21 to 0x7e)
   but '%', '{' and '}'.  One load a byte rather than five tests. */
static const unsigned char plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static size_t
escape(const char *src, size_t len, char *dst)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, n = 0;
    unsigned char b;

    for (i = 0; i < len; i++) {
        b = (unsigned char)src[i];
        if (plain[b]) {
            dst[n++] = (char)b;
            continue;
        }
        dst[n++] = '%';
        dst[n++] = hex[b >> 4];
        dst[n++] = hex[b & 15];
    }
    return n;
}

/* The user's hash tag: *tag and *taglen, or false when there is none. */
static bool
user_tag(const char *key, size_t keylen, const char **tag, size_t *taglen)
{
    const char *open = memchr(key, '{', keylen);
    const char *close;

    if (open == NULL)
        return false;
    close = memchr(open + 1, '}', keylen - (size_t)(open + 1 - key));
    if (close == NULL || close == open + 1)
        return false;
    *tag = open + 1;
    *taglen = (size_t)(close - open - 1);
    return true;
}

size_t
rl__redis_key(const char *prefix, rl_algorithm alg, const char *key,
              size_t keylen, char *buf)
{
    size_t plen = strlen(prefix), n = 0, taglen;
    const char *tag;

    memcpy(buf, prefix, plen);
    n = plen;
    buf[n++] = ':';
    buf[n++] = alg_tags[alg][0];
    buf[n++] = alg_tags[alg][1];
    buf[n++] = ':';
    buf[n++] = '{';
    if (!user_tag(key, keylen, &tag, &taglen)) {
        n += escape(key, keylen, buf + n);
        buf[n++] = '}';
        return n;
    }
    n += escape(tag, taglen, buf + n);
    buf[n++] = '}';
    n += escape(key, keylen, buf + n);
    return n;
}

/* ---- from a Redis key back to the user key (the warm-up's SCAN) ---- */

static int
hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* esc() undone into dst (RL_KEY_MAX bytes); the length, or 0 when src
   holds a broken escape or undoes to more than RL_KEY_MAX bytes. */
static size_t
unescape(const char *src, size_t len, char *dst)
{
    size_t i, n = 0;
    int hi, lo;

    for (i = 0; i < len; i++) {
        if (n == RL_KEY_MAX)
            return 0;
        if (src[i] != '%') {
            dst[n++] = src[i];
            continue;
        }
        if (len - i < 3)
            return 0;
        hi = hex_digit(src[i + 1]);
        lo = hex_digit(src[i + 2]);
        if (hi < 0 || lo < 0)
            return 0;
        dst[n++] = (char)(hi << 4 | lo);
        i += 2;
    }
    return n;
}

/* The user key rkey's layout gives, into buf; 0 when it gives none.
   Lenient: any byte may come raw or escaped, and a tag may be any. */
static size_t
decode_layout(const char *prefix, rl_algorithm alg, const char *rkey,
              size_t rlen, char *buf)
{
    size_t plen = strlen(prefix), head = plen + 5;
    const char *close;

    if (rlen <= head || memcmp(rkey, prefix, plen) != 0 ||
        rkey[plen] != ':' || rkey[plen + 1] != alg_tags[alg][0] ||
        rkey[plen + 2] != alg_tags[alg][1] || rkey[plen + 3] != ':' ||
        rkey[plen + 4] != '{')
        return 0;
    close = memchr(rkey + head, '}', rlen - head);
    if (close == NULL)
        return 0;
    if ((size_t)(close + 1 - rkey) == rlen) /* no tag of the user's */
        return unescape(rkey + head, (size_t)(close - rkey) - head, buf);
    return unescape(close + 1, rlen - (size_t)(close + 1 - rkey), buf);
}

/*
 * Only the one Redis key the encoder writes for a user key is taken: any
 * other spelling ("{%41}", "{a b}", "{x}abc" for "abc") holds no state of
 * that user key, so the warm-up would peek at a key it never found, or at
 * one key twice.  Encoding the result again and comparing is the one
 * test that cannot drift from rl__redis_key.
 */
size_t
rl__redis_key_decode(const char *prefix, rl_algorithm alg, const char *rkey,
                     size_t rlen, char *buf)
{
    char again[RL_REDIS_KEY_MAX];
    size_t len;

    if (rlen > sizeof(again))
        return 0;
    len = decode_layout(prefix, alg, rkey, rlen, buf);
    if (len == 0 || rl__redis_key(prefix, alg, buf, len, again) != rlen ||
        memcmp(again, rkey, rlen) != 0)
        return 0;
    return len;
}

size_t
rl__redis_key_match(const char *prefix, rl_algorithm alg, char *buf)
{
    size_t n = 0;

    for (; *prefix != '\0'; prefix++) {
        if (strchr("*?[]\\", *prefix) != NULL)
            buf[n++] = '\\';
        buf[n++] = *prefix;
    }
    buf[n++] = ':';
    buf[n++] = alg_tags[alg][0];
    buf[n++] = alg_tags[alg][1];
    buf[n++] = ':';
    buf[n++] = '{';
    buf[n++] = '*';
    return n;
}
