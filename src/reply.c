/*
 * reply.c: hiredis reply objects in few allocations.
 *
 * hiredis builds a reply through a table of functions
 * (redisReplyObjectFunctions).  Its own callocs one redisReply per
 * element and the element vector, and frees each of them.  A batch's
 * reply is an array of 4 integers per check, so that was 4n + 2
 * allocations and as many frees per command: the largest part of the
 * client's cost per check.  These functions build the same redisReply
 * trees in one block per array:
 *
 *   struct block | slot[0] .. slot[n-1] | element[0] .. element[n-1]
 *
 * A scalar element (integer, nil, string, status, error) is the
 * redisReply in its own slot, so integers and nils cost no allocation at
 * all and a string one, for its bytes.  A nested array is a block of its
 * own, which the parent's element vector points at (its slot stays
 * unused).  A top reply that is not an array is a block without slots: a
 * string's bytes follow the header, one allocation as well.
 *
 * hiredis creates an array's elements in order, each once, and frees only
 * top replies (after the reply callback, when the reader fails half way
 * through a reply, in redisReaderFree).  So a block counts the elements
 * created so far, and a partial tree is freed exactly like a whole one;
 * it also notes whether any element owns memory, so a block of integers
 * is freed without a walk.  As with hiredis's functions, NULL means out
 * of memory and makes the reader fail with REDIS_ERR_OOM; the reader
 * itself bounds the counts (-1 to INT_MAX elements, depth 7), and the
 * sizes here are checked against SIZE_MAX all the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

struct block {
    redisReply r;       /* first: a block's address is its reply's */
    size_t filled;      /* elements created so far (0 .. r.elements) */
    int owns;           /* an element owns memory: a string or an array */
};

/* Slots first: their alignment is a redisReply's, which holds pointers,
   so the element vector after them is aligned too. */
#define ELEMENT_ROOM (sizeof(redisReply) + sizeof(redisReply *))

/* ---- blocks ---- */

/* A new block of type with `extra` bytes after its header. */
static struct block *
block_new(int type, size_t extra)
{
    struct block *b;

    if (extra > SIZE_MAX - sizeof(*b))
        return NULL;
    b = malloc(sizeof(*b) + extra);
    if (b == NULL)
        return NULL;
    b->r = (redisReply){ .type = type };
    b->filled = 0;
    b->owns = 0;
    return b;
}

/* The array block that task's object is element task->idx of. */
static struct block *
parent_of(const redisReadTask *task)
{
    return task->parent->obj;
}

static redisReply *
slot_of(struct block *p, int idx)
{
    return (redisReply *)(p + 1) + idx;
}

/* Makes child element idx of p; owns: the child holds memory of its own. */
static void
link_child(struct block *p, int idx, redisReply *child, int owns)
{
    p->r.element[idx] = child;
    p->filled = (size_t)idx + 1;
    p->owns |= owns;
}

/* ---- creating ---- */

/* An integer or nil: a top block, or the slot in its parent. */
static redisReply *
scalar_new(const redisReadTask *task, int type)
{
    struct block *b, *p;
    redisReply *r;

    if (task->parent == NULL) {
        b = block_new(type, 0);
        return b != NULL ? &b->r : NULL;
    }
    p = parent_of(task);
    r = slot_of(p, task->idx);
    *r = (redisReply){ .type = type };
    link_child(p, task->idx, r, 0);
    return r;
}

static void *
create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = scalar_new(task, REDIS_REPLY_INTEGER);

    if (r != NULL)
        r->integer = value;
    return r;
}

static void *
create_nil(const redisReadTask *task)
{
    return scalar_new(task, REDIS_REPLY_NIL);
}

/* A string, status or error (task->type): len bytes and a NUL. */
static void *
create_string(const redisReadTask *task, char *str, size_t len)
{
    struct block *b, *p;
    redisReply *r;
    char *buf;

    if (len == SIZE_MAX)
        return NULL;
    if (task->parent == NULL) {
        b = block_new(task->type, len + 1);
        if (b == NULL)
            return NULL;
        r = &b->r;
        buf = (char *)(b + 1);
    } else {
        buf = malloc(len + 1);
        if (buf == NULL)
            return NULL;
        p = parent_of(task);
        r = slot_of(p, task->idx);
        *r = (redisReply){ .type = task->type };
        link_child(p, task->idx, r, 1);
    }
    memcpy(buf, str, len);
    buf[len] = '\0';
    r->str = buf;
    r->len = len;
    return r;
}

/* An array of `elements` (0 .. INT_MAX): a block of its own, always. */
static void *
create_array(const redisReadTask *task, int elements)
{
    size_t n = (size_t)elements;
    struct block *b;

    if (elements < 0 || n > (SIZE_MAX - sizeof(*b)) / ELEMENT_ROOM)
        return NULL;
    b = block_new(REDIS_REPLY_ARRAY, n * ELEMENT_ROOM);
    if (b == NULL)
        return NULL;
    b->r.elements = n;
    if (n > 0)
        b->r.element = (redisReply **)(slot_of(b, 0) + n);
    if (task->parent != NULL)
        link_child(parent_of(task), task->idx, &b->r, 1);
    return &b->r;
}

/* ---- freeing ---- */

/* Frees a top reply or a nested array, with what its elements own. */
static void
free_reply(void *reply)
{
    struct block *b = reply;
    redisReply *e;
    size_t i;

    if (b == NULL)
        return;
    for (i = 0; b->owns && i < b->filled; i++) {
        e = b->r.element[i];
        if (e->type == REDIS_REPLY_ARRAY)
            free_reply(e);
        else
            free(e->str);   /* NULL in an integer or a nil */
    }
    free(b);
}

/* ---- installing ---- */

/* Not const: hiredis's reader takes a pointer to a mutable table. */
static redisReplyObjectFunctions reply_fns = {
    create_string,
    create_array,
    create_integer,
    create_nil,
    free_reply
};

void
rl__reply_install(redisReader *reader)
{
    if (reader != NULL)
        reader->fn = &reply_fns;
}
