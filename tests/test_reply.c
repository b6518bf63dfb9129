/*
 * test_reply.c: the reply functions of src/reply.c, on a hiredis reader
 * fed raw RESP bytes, no server.  Every reply is also parsed by a reader
 * with hiredis's own functions and the two trees must be the same, field
 * by field: integers (to the 64-bit limits), nil bulks and nil arrays,
 * empty and nested arrays (to the reader's depth of 7), strings with NUL
 * and CRLF inside, statuses, errors, a batch-sized array of 4 * 64
 * integers (laid out in one block), replies split across many feeds, and
 * random trees fed in random pieces.  Garbage must fail the reader the
 * same way, with half-built trees that own strings and nested arrays; a
 * reader freed half way through a reply frees that too.  The suite runs
 * under ASan and LeakSanitizer: a leak or a bad free fails it.
 */
#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "check_main.h"
#include "reply.h"

#define MAX_REPLIES 64

/* ---- readers ---- */

static redisReader *
reader_ours(void)
{
    redisReader *rd = redisReaderCreate();

    ck_assert_ptr_nonnull(rd);
    rl__reply_install(rd);
    return rd;
}

static redisReader *
reader_hiredis(void)
{
    redisReader *rd = redisReaderCreate();

    ck_assert_ptr_nonnull(rd);
    return rd;
}

/* Frees a reply the way hiredis does: with the reader's own function. */
static void
drop(redisReader *rd, void *reply)
{
    rd->fn->freeObject(reply);
}

/* Feeds len bytes at once; returns the one reply they hold. */
static redisReply *
parse(redisReader *rd, const char *s, size_t len)
{
    void *reply = NULL;

    ck_assert_int_eq(redisReaderFeed(rd, s, len), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    return reply;
}

/* Feeds s in pieces of `step` bytes, taking replies as they complete;
   returns how many came (at most max). */
static int
parse_pieces(redisReader *rd, const char *s, size_t len, size_t step,
             void **out, int max)
{
    size_t off, n;
    void *reply;
    int got = 0;

    for (off = 0; off < len; off += n) {
        n = len - off < step ? len - off : step;
        ck_assert_int_eq(redisReaderFeed(rd, s + off, n), REDIS_OK);
        for (;;) {
            reply = NULL;
            ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
            if (reply == NULL)
                break;
            ck_assert_int_lt(got, max);
            out[got++] = reply;
        }
    }
    return got;
}

/* ---- comparing trees ---- */

static void
same_tree(const redisReply *a, const redisReply *b)
{
    size_t i;

    FAST_EQ(a->type, b->type);
    FAST_EQ(a->integer, b->integer);
    FAST_EQ(a->len, b->len);
    FAST_EQ(a->elements, b->elements);
    FAST_EQ(a->str == NULL, b->str == NULL);
    if (a->str != NULL)
        FAST_EQ(memcmp(a->str, b->str, a->len + 1), 0);
    FAST_EQ(a->element == NULL, b->element == NULL);
    for (i = 0; i < a->elements; i++)
        same_tree(a->element[i], b->element[i]);
}

/* Parses s with both readers, in one feed, and compares; returns ours
   (the caller checks more, then drops it with rd). */
static redisReply *
parse_both(redisReader *rd, const char *s, size_t len)
{
    redisReader *ref = reader_hiredis();
    redisReply *mine = parse(rd, s, len), *theirs = parse(ref, s, len);

    same_tree(mine, theirs);
    freeReplyObject(theirs);
    redisReaderFree(ref);
    return mine;
}

/* The same as parse_both for a string literal, dropping the reply. */
static void
check_same(const char *s, size_t len)
{
    redisReader *rd = reader_ours();

    drop(rd, parse_both(rd, s, len));
    redisReaderFree(rd);
}

#define CHECK_SAME(lit) check_same(lit, sizeof(lit) - 1)

/* ---- scalars at the top ---- */

START_TEST(test_integer)
{
    redisReader *rd = reader_ours();
    redisReply *r;

    r = parse_both(rd, ":42\r\n", 5);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 42);
    ck_assert_ptr_null(r->str);
    ck_assert_ptr_null(r->element);
    drop(rd, r);
    redisReaderFree(rd);
    CHECK_SAME(":-1\r\n");
    CHECK_SAME(":0\r\n");
    CHECK_SAME(":9223372036854775807\r\n");
    CHECK_SAME(":-9223372036854775808\r\n");
}
END_TEST

START_TEST(test_strings)
{
    static const char bin[] = "$7\r\n" "a\0b\r\nc\n" "\r\n";
    redisReader *rd = reader_ours();
    redisReply *r;

    r = parse_both(rd, bin, sizeof(bin) - 1);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(r->len, 7);
    ck_assert_int_eq(memcmp(r->str, "a\0b\r\nc\n", 8), 0);
    drop(rd, r);
    r = parse_both(rd, "+OK\r\n", 5);
    ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
    ck_assert_str_eq(r->str, "OK");
    drop(rd, r);
    r = parse_both(rd, "-NOSCRIPT No matching script\r\n", 30);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    ck_assert_str_eq(r->str, "NOSCRIPT No matching script");
    drop(rd, r);
    redisReaderFree(rd);
    CHECK_SAME("$0\r\n\r\n");
    CHECK_SAME("+\r\n");
    CHECK_SAME("-\r\n");
}
END_TEST

START_TEST(test_nil)
{
    redisReader *rd = reader_ours();
    redisReply *r;

    r = parse_both(rd, "$-1\r\n", 5);
    ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
    drop(rd, r);
    r = parse_both(rd, "*-1\r\n", 5);
    ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
    drop(rd, r);
    redisReaderFree(rd);
}
END_TEST

/* ---- arrays ---- */

START_TEST(test_empty_array)
{
    redisReader *rd = reader_ours();
    redisReply *r;

    r = parse_both(rd, "*0\r\n", 4);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 0);
    ck_assert_ptr_null(r->element);
    drop(rd, r);
    redisReaderFree(rd);
    CHECK_SAME("*2\r\n*0\r\n*0\r\n");
}
END_TEST

START_TEST(test_mixed_array)
{
    static const char s[] = "*8\r\n:7\r\n$-1\r\n*-1\r\n$3\r\nfoo\r\n"
                            "+OK\r\n-ERR no\r\n*0\r\n*2\r\n:1\r\n$1\r\nx\r\n";
    redisReader *rd = reader_ours();
    redisReply *r;

    r = parse_both(rd, s, sizeof(s) - 1);
    ck_assert_uint_eq(r->elements, 8);
    ck_assert_int_eq(r->element[0]->integer, 7);
    ck_assert_int_eq(r->element[1]->type, REDIS_REPLY_NIL);
    ck_assert_int_eq(r->element[2]->type, REDIS_REPLY_NIL);
    ck_assert_str_eq(r->element[3]->str, "foo");
    ck_assert_str_eq(r->element[4]->str, "OK");
    ck_assert_int_eq(r->element[5]->type, REDIS_REPLY_ERROR);
    ck_assert_uint_eq(r->element[6]->elements, 0);
    ck_assert_str_eq(r->element[7]->element[1]->str, "x");
    drop(rd, r);
    redisReaderFree(rd);
}
END_TEST

START_TEST(test_nested)
{
    /* Depth 7, the reader's most, with strings at every level. */
    static const char s[] = "*2\r\n$1\r\na\r\n*2\r\n$1\r\nb\r\n*2\r\n+c\r\n"
                            "*2\r\n-d\r\n*2\r\n:1\r\n*2\r\n$-1\r\n*1\r\n"
                            "$1\r\ne\r\n";
    redisReader *rd = reader_ours();
    redisReply *r, *e;
    int depth = 1;

    r = parse_both(rd, s, sizeof(s) - 1);
    for (e = r; e->type == REDIS_REPLY_ARRAY; e = e->element[e->elements - 1])
        depth++;
    ck_assert_int_eq(depth, 8); /* 7 arrays, then the string "e" */
    ck_assert_str_eq(e->str, "e");
    drop(rd, r);
    redisReaderFree(rd);
    CHECK_SAME("*3\r\n*1\r\n*1\r\n:5\r\n*2\r\n*0\r\n$2\r\nhi\r\n:6\r\n");
}
END_TEST

/* A batch's reply: 4 integers for each of 64 checks, in one block. */
START_TEST(test_batch_array)
{
    char s[256 * 16 + 16];
    size_t len;
    redisReader *rd = reader_ours();
    redisReply *r;
    int i;

    len = (size_t)snprintf(s, sizeof(s), "*256\r\n");
    for (i = 0; i < 256; i++)
        len += (size_t)snprintf(s + len, sizeof(s) - len, ":%d\r\n",
                                i * 1000 - 7);
    r = parse_both(rd, s, len);
    ck_assert_uint_eq(r->elements, 256);
    for (i = 0; i < 256; i++) {
        FAST_EQ(r->element[i]->type, REDIS_REPLY_INTEGER);
        FAST_EQ(r->element[i]->integer, i * 1000 - 7);
        FAST_EQ(r->element[i] == r->element[0] + i, 1); /* slots in a row */
    }
    drop(rd, r);
    redisReaderFree(rd);
}
END_TEST

/* ---- feeds ---- */

/* A reply in pieces of every size from 1 byte, two replies per feed. */
START_TEST(test_split_feeds)
{
    static const char s[] = "*4\r\n:1\r\n*2\r\n$5\r\nhello\r\n$-1\r\n"
                            "+OK\r\n:-3\r\n"
                            "*3\r\n:1\r\n:0\r\n-ERR x\r\n";
    redisReader *rd, *ref = reader_hiredis();
    redisReply *want[2];
    void *got[MAX_REPLIES];
    size_t step;
    int n;

    ck_assert_int_eq(parse_pieces(ref, s, sizeof(s) - 1, sizeof(s),
                                  (void **)want, 2), 2);
    for (step = 1; step <= sizeof(s); step++) {
        rd = reader_ours();
        n = parse_pieces(rd, s, sizeof(s) - 1, step, got, MAX_REPLIES);
        ck_assert_int_eq(n, 2);
        same_tree(got[0], want[0]);
        same_tree(got[1], want[1]);
        drop(rd, got[0]);
        drop(rd, got[1]);
        redisReaderFree(rd);
    }
    freeReplyObject(want[0]);
    freeReplyObject(want[1]);
    redisReaderFree(ref);
}
END_TEST

/* A reader freed half way through a reply frees the half-built tree. */
START_TEST(test_free_mid_reply)
{
    static const char s[] = "*3\r\n$3\r\nfoo\r\n*2\r\n+OK\r\n:1";
    redisReader *rd = reader_ours();
    void *reply = NULL;

    ck_assert_int_eq(redisReaderFeed(rd, s, sizeof(s) - 1), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    ck_assert_ptr_null(reply);
    redisReaderFree(rd);
}
END_TEST

/* ---- garbage ---- */

static const char *const garbage[] = {
    "*3\r\n$3\r\nfoo\r\n*2\r\n+OK\r\n:12x\r\n", /* bad integer, nested */
    "*2\r\n:1\r\n?what\r\n",                   /* bad type byte */
    "*2\r\n$3\r\nabc\r\n*2\r\n$x\r\n",         /* bad bulk length */
    "*2\r\n-E\r\n$-2\r\n",                     /* bulk length < -1 */
    "*2147483648\r\n",                         /* count > INT_MAX */
    "*-2\r\n",                                 /* count < -1 */
    "*abc\r\n",
    "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", /* 9 */
    "*2\r\n$1\r\na\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n",
};

/* Fails both readers alike; ours frees what it had built (ASan). */
START_TEST(test_garbage)
{
    const char *s = garbage[_i];
    redisReader *rd = reader_ours(), *ref = reader_hiredis();
    void *mine = NULL, *theirs = NULL;

    ck_assert_int_eq(redisReaderFeed(rd, s, strlen(s)), REDIS_OK);
    ck_assert_int_eq(redisReaderFeed(ref, s, strlen(s)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &mine), REDIS_ERR);
    ck_assert_int_eq(redisReaderGetReply(ref, &theirs), REDIS_ERR);
    ck_assert_ptr_null(mine);
    ck_assert_int_eq(rd->err, REDIS_ERR_PROTOCOL);
    ck_assert_int_eq(rd->err, ref->err);
    ck_assert_str_eq(rd->errstr, ref->errstr);
    ck_assert_int_eq(redisReaderFeed(rd, ":1\r\n", 4), REDIS_ERR);
    redisReaderFree(rd);
    redisReaderFree(ref);
}
END_TEST

/* ---- the guards ---- */

/* Sizes past SIZE_MAX and negative counts fail as out of memory. */
START_TEST(test_guards)
{
    redisReader *rd = reader_ours();
    redisReadTask t;

    memset(&t, 0, sizeof(t));
    t.type = REDIS_REPLY_STRING;
    ck_assert_ptr_null(rd->fn->createString(&t, (char *)"x", SIZE_MAX));
    ck_assert_ptr_null(rd->fn->createString(&t, (char *)"x", SIZE_MAX - 8));
    t.type = REDIS_REPLY_ARRAY;
    ck_assert_ptr_null(rd->fn->createArray(&t, -1));
    rd->fn->freeObject(NULL);
    rl__reply_install(NULL);
    redisReaderFree(rd);
}
END_TEST

/* ---- random trees ---- */

struct gen {
    uint64_t s;
    char *buf;
    size_t len, cap;
};

static uint64_t
rnd(struct gen *g)
{
    g->s ^= g->s << 13;
    g->s ^= g->s >> 7;
    g->s ^= g->s << 17;
    return g->s;
}

static void
put(struct gen *g, const void *p, size_t n)
{
    if (g->len + n > g->cap) {
        g->cap = 2 * (g->len + n);
        g->buf = realloc(g->buf, g->cap);
        ck_assert_ptr_nonnull(g->buf);
    }
    memcpy(g->buf + g->len, p, n);
    g->len += n;
}

static void
put_fmt(struct gen *g, char type, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%c%lld\r\n", type, v);

    put(g, tmp, (size_t)n);
}

/* A line of 0..20 bytes without CR or LF, for a status or an error. */
static void
put_line(struct gen *g, char type)
{
    size_t i, n = rnd(g) % 21;
    char c;

    put(g, &type, 1);
    for (i = 0; i < n; i++) {
        c = (char)(' ' + rnd(g) % 95);
        put(g, &c, 1);
    }
    put(g, "\r\n", 2);
}

static void
put_bulk(struct gen *g)
{
    size_t i, n = rnd(g) % 41;
    char c;

    put_fmt(g, '$', (long long)n);
    for (i = 0; i < n; i++) {
        c = (char)rnd(g); /* any byte: NUL, CR and LF too */
        put(g, &c, 1);
    }
    put(g, "\r\n", 2);
}

static void
put_tree(struct gen *g, int depth)
{
    int i, n;

    switch (rnd(g) % (depth < 7 ? 8 : 6)) {
    case 0: put_fmt(g, ':', (long long)rnd(g)); break;
    case 1: put_fmt(g, ':', (long long)(rnd(g) % 200) - 100); break;
    case 2: put(g, rnd(g) % 2 ? "$-1\r\n" : "*-1\r\n", 5); break;
    case 3: put_bulk(g); break;
    case 4: put_line(g, '+'); break;
    case 5: put_line(g, '-'); break;
    default:
        n = (int)(rnd(g) % 7);
        put_fmt(g, '*', n);
        for (i = 0; i < n; i++)
            put_tree(g, depth + 1);
    }
}

/* 40 random replies, fed whole to hiredis and in random pieces to us. */
START_TEST(test_random_trees)
{
    struct gen g = { 0x9e3779b97f4a7c15ULL * (uint64_t)(_i + 1), NULL, 0, 0 };
    redisReader *rd = reader_ours(), *ref = reader_hiredis();
    void *want[MAX_REPLIES], *got[MAX_REPLIES], *reply;
    size_t off, n;
    int i, nwant = 0, ngot = 0;

    for (i = 0; i < 40; i++)
        put_tree(&g, 1);
    ck_assert_int_eq(redisReaderFeed(ref, g.buf, g.len), REDIS_OK);
    for (reply = NULL; redisReaderGetReply(ref, &reply) == REDIS_OK &&
                       reply != NULL; reply = NULL)
        want[nwant++] = reply;
    ck_assert_int_eq(nwant, 40);
    for (off = 0; off < g.len; off += n) {
        n = 1 + rnd(&g) % 64;
        n = n > g.len - off ? g.len - off : n;
        ngot += parse_pieces(rd, g.buf + off, n, n, got + ngot,
                             MAX_REPLIES - ngot);
    }
    ck_assert_int_eq(ngot, 40);
    for (i = 0; i < 40; i++) {
        same_tree(got[i], want[i]);
        drop(rd, got[i]);
        freeReplyObject(want[i]);
    }
    free(g.buf);
    redisReaderFree(rd);
    redisReaderFree(ref);
}
END_TEST

/* ---- the suite ---- */

static Suite *
reply_suite(void)
{
    Suite *s = suite_create("reply");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_integer);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_nil);
    tcase_add_test(tc, test_empty_array);
    tcase_add_test(tc, test_mixed_array);
    tcase_add_test(tc, test_nested);
    tcase_add_test(tc, test_batch_array);
    tcase_add_test(tc, test_split_feeds);
    tcase_add_test(tc, test_free_mid_reply);
    tcase_add_loop_test(tc, test_garbage, 0,
                        (int)(sizeof(garbage) / sizeof(garbage[0])));
    tcase_add_test(tc, test_guards);
    tcase_add_loop_test(tc, test_random_trees, 0, 50);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return th_run_suite(reply_suite(), CK_ENV);
}
