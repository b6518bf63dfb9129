/*
 * cache.c: the decision cache (cache.h), key -> "blocked until T for this
 * limit and cost", so that checks of a key Redis just denied are answered
 * here until T.  Its one hot path is a lookup that hits the same key again
 * and again (a hot abuser, millions of times a second), so a hit hashes
 * the key, reads one bucket and one entry, and writes two counters when
 * that entry is already the most recently used.  Nothing on it allocates.
 *
 *   - Hash.  SipHash-1-3 (rl__siphash13, store.c) keyed with a 128-bit
 *     secret drawn per cache from getrandom() (OpenSSL's RAND_bytes as the
 *     fallback), so that whoever chooses the keys cannot choose
 *     collisions and turn the chains into lists.
 *   - Table.  Chaining: a power-of-two array of 32-bit bucket heads, each
 *     the index of the first entry of its chain, the chain linked through
 *     the entries.  The load stays about 1.  It starts at START_BUCKETS
 *     buckets and doubles up to the power of two >= max_size, incrementally
 *     as Redis's dict does, so that no put pays for a whole rehash: while
 *     it doubles, every put moves MIGRATE_STEP old buckets into the new
 *     array.  A key is in the old array exactly when its old bucket is not
 *     yet moved (new keys included), so a lookup still reads one chain.
 *   - Entries.  128 bytes, 64-byte aligned: the first cache line holds what
 *     a lookup reads (hash, expiry, limit) and the links, the second the
 *     key, up to KEY_INLINE bytes inline, else a malloc'd copy.  Entries
 *     live in segments that never move and are named by 32-bit indices (0:
 *     none); freed ones are reused, the last freed first.  Memory grows
 *     with the entries held, never to max_size up front.
 *   - Recency.  True LRU: a doubly linked list through the entries, the
 *     most recently used at its head; a hit moves its entry to the head (a
 *     hit on the head moves nothing); a new key in a full cache evicts the
 *     tail.
 *   - Expiry.  A 4-ary min-heap of {blocked_until, entry}, each entry
 *     knowing its place, so that the earliest expiry is its root (exact and
 *     O(1) for the sweep timer), the sweep pops expired roots and touches
 *     nothing else, and dropping any entry is O(log n).  A new entry
 *     usually expires after most others (blocks of similar lengths), so it
 *     stays near the leaves, O(1).  Four siblings share one cache line (the
 *     root is at position HEAP_ROOT so that they are 64-byte aligned), and
 *     the heap is segmented too, so it never moves as it grows.
 *
 * Every entry dropped (expired, evicted, deleted, replaced by a put of the
 * same key, cleared) goes through drop(), which unlinks it from its chain,
 * the list and the heap.  At most 2^31 entries are kept, whatever max_size
 * says.
 */
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "rl_private.h"

#define MAX_SIZE_CAP (INT64_C(1) << 31)
#define KEY_INLINE 56
/* Entries per segment: 4096 of 128 bytes, 512 KiB. */
#define SEG_SHIFT 12
#define SEG_ENTS (UINT32_C(1) << SEG_SHIFT)
/* Heap nodes per segment: 4096 of 16 bytes, 64 KiB. */
#define HEAP_SHIFT 12
#define HEAP_SEG (UINT32_C(1) << HEAP_SHIFT)
/* The root's position: the children of p are 4(p - 2) .. 4(p - 2) + 3. */
#define HEAP_ROOT 3
#define START_BUCKETS 1024
/* Old buckets moved by each put while the table doubles: any value >= 1
   ends the move before the new array is due to double. */
#define MIGRATE_STEP 8
#define NONE 0

/* What a denial recorded. */
struct block {
    int64_t until;          /* blocked_until, absolute ms */
    int64_t reset_at;       /* absolute ms */
    int64_t max;
    int64_t window;
    int64_t cost;
};

struct entry {
    /* First line: what a lookup reads, and the links. */
    uint64_t hash;
    struct block b;
    uint32_t chain;         /* next in the bucket; free: next free */
    uint32_t heap;          /* position in the heap; free: 0 */
    uint32_t newer, older;  /* LRU neighbours, NONE at the ends */
    /* Second line: the key. */
    uint32_t keylen;
    union {
        char bytes[KEY_INLINE];
        char *ptr;          /* keylen > KEY_INLINE: a malloc'd copy */
    } key;
};

_Static_assert(sizeof(struct entry) == 128, "an entry is two cache lines");
_Static_assert(offsetof(struct entry, keylen) == 64, "the key line");

struct hnode {
    int64_t until;
    uint32_t ent;
    uint32_t unused;
};

_Static_assert(sizeof(struct hnode) * 4 == 64, "4 siblings, one line");

/* Arrays that grow by 64-byte aligned segments, never moving. */
struct segs {
    void **p;
    uint32_t n;
    uint32_t cap;
};

struct table {
    uint32_t *heads;        /* NULL: none */
    size_t mask;            /* buckets - 1 */
};

struct rl_cache {
    struct table t;         /* the table (while it doubles, the old one) */
    struct table grown;     /* while it doubles, the new one; else none */
    size_t mig;             /* buckets [0, mig) of t moved; 0 if none */
    size_t max_buckets;     /* the power of two >= max_size */
    struct segs ents;       /* entry i: ents.p[i >> SEG_SHIFT][i % SEG] */
    uint32_t seg_ents;      /* SEG_ENTS, or max_size + 1 when fewer */
    uint32_t n_ents;        /* entries [1, n_ents) are held or free */
    uint32_t free_ent;      /* head of the free chain, NONE: none */
    uint32_t newest;        /* LRU head, NONE when empty */
    uint32_t oldest;        /* LRU tail, NONE when empty */
    struct segs heap;       /* node p: heap.p[p >> HEAP_SHIFT][p % SEG] */
    uint32_t heap_seg;      /* HEAP_SEG, or fewer for a small cache */
    size_t count;           /* entries held; the heap's size */
    size_t max_size;
    uint64_t k0, k1;        /* the hash secret */
    uint64_t hash_mask;     /* all ones, except in tests */
    int64_t hits, misses, evictions, expired;
};

/* ---- randomness, hashing ---- */

static inline uint64_t
hash_key(const struct rl_cache *c, const void *key, size_t keylen)
{
    return rl__siphash13(c->k0, c->k1, key, keylen) & c->hash_mask;
}

/* ---- segments ---- */

/* Appends a segment of `bytes`; false when out of memory (nothing then
   changes but the room for segment pointers). */
static bool
segs_add(struct segs *s, size_t bytes)
{
    uint32_t cap = s->cap == 0 ? 8 : 2 * s->cap;
    void **p;
    void *seg;

    if (s->n == s->cap) {
        p = realloc(s->p, cap * sizeof(*p));
        if (p == NULL)
            return false;
        s->p = p;
        s->cap = cap;
    }
    if (posix_memalign(&seg, 64, bytes) != 0)
        return false;
    s->p[s->n++] = seg;
    return true;
}

static void
segs_free(struct segs *s)
{
    uint32_t i;

    for (i = 0; i < s->n; i++)
        free(s->p[i]);
    free(s->p);
    memset(s, 0, sizeof(*s));
}

static inline struct entry *
ent(const struct rl_cache *c, uint32_t i)
{
    return (struct entry *)c->ents.p[i >> SEG_SHIFT] + (i & (SEG_ENTS - 1));
}

static inline const char *
ent_key(const struct entry *e)
{
    return e->keylen > KEY_INLINE ? e->key.ptr : e->key.bytes;
}

static inline struct hnode *
hat(const struct rl_cache *c, size_t p)
{
    return (struct hnode *)c->heap.p[p >> HEAP_SHIFT] + (p & (HEAP_SEG - 1));
}

/* Makes sure a new key has an entry and a heap node to take: false when
   out of memory (the cache then holds what it held). */
static bool
reserve(struct rl_cache *c)
{
    size_t ents = (size_t)c->ents.n * c->seg_ents;
    size_t nodes = (size_t)c->heap.n * c->heap_seg;

    if (c->free_ent == NONE && c->n_ents >= ents &&
        !segs_add(&c->ents, c->seg_ents * sizeof(struct entry)))
        return false;
    if (c->count + HEAP_ROOT + 1 > nodes &&
        !segs_add(&c->heap, c->heap_seg * sizeof(struct hnode)))
        return false;
    return true;
}

/* An entry for a new key, the last freed first (after reserve). */
static uint32_t
ent_take(struct rl_cache *c)
{
    uint32_t i = c->free_ent;

    if (i != NONE) {
        c->free_ent = ent(c, i)->chain;
        return i;
    }
    return c->n_ents++;
}

/* ---- the table ---- */

/* The head of the chain where a key hashed h is (or would be put). */
static inline uint32_t *
bucket(const struct rl_cache *c, uint64_t h)
{
    size_t b = h & c->t.mask;

    if (b < c->mig)
        return &c->grown.heads[h & c->grown.mask];
    return &c->t.heads[b];
}

/* The link (bucket head or chain field) holding the entry of key, hashed
   h; when absent, the one holding NONE at the end of its chain. */
static inline uint32_t *
find(const struct rl_cache *c, uint64_t h, const void *key, size_t keylen)
{
    uint32_t *link = bucket(c, h);
    struct entry *e;

    while (*link != NONE) {
        e = ent(c, *link);
        if (e->hash == h && e->keylen == keylen &&
            memcmp(ent_key(e), key, keylen) == 0)
            break;
        link = &e->chain;
    }
    return link;
}

/* The link holding entry i, which is held. */
static uint32_t *
link_of(const struct rl_cache *c, uint32_t i)
{
    uint32_t *link = bucket(c, ent(c, i)->hash);

    while (*link != i)
        link = &ent(c, *link)->chain;
    return link;
}

/* Starts doubling the table when the next key would take the load above 1
   (and it may still grow).  Out of memory: the load grows instead, and
   the next put tries again. */
static void
grow(struct rl_cache *c)
{
    size_t n = c->t.mask + 1;

    if (c->grown.heads != NULL || c->count < n || n >= c->max_buckets)
        return;
    c->grown.heads = calloc(2 * n, sizeof(*c->grown.heads));
    if (c->grown.heads == NULL)
        return;
    c->grown.mask = 2 * n - 1;
    c->mig = 0;
}

/* Moves MIGRATE_STEP buckets into the doubled table; the last one done,
   the doubled table becomes the table. */
static void
migrate(struct rl_cache *c)
{
    uint32_t i, next, *head;
    struct entry *e;
    int step;

    for (step = 0; step < MIGRATE_STEP && c->mig <= c->t.mask; step++) {
        for (i = c->t.heads[c->mig]; i != NONE; i = next) {
            e = ent(c, i);
            next = e->chain;
            head = &c->grown.heads[e->hash & c->grown.mask];
            e->chain = *head;
            *head = i;
        }
        c->t.heads[c->mig++] = NONE;
    }
    if (c->mig > c->t.mask) {
        free(c->t.heads);
        c->t = c->grown;
        c->grown.heads = NULL;
        c->grown.mask = 0;
        c->mig = 0;
    }
}

/* ---- recency ---- */

static void
lru_unlink(struct rl_cache *c, uint32_t i)
{
    struct entry *e = ent(c, i);

    if (e->newer != NONE)
        ent(c, e->newer)->older = e->older;
    else
        c->newest = e->older;
    if (e->older != NONE)
        ent(c, e->older)->newer = e->newer;
    else
        c->oldest = e->newer;
}

static void
lru_push(struct rl_cache *c, uint32_t i)
{
    struct entry *e = ent(c, i);

    e->newer = NONE;
    e->older = c->newest;
    if (c->newest != NONE)
        ent(c, c->newest)->newer = i;
    else
        c->oldest = i;
    c->newest = i;
}

static inline void
lru_touch(struct rl_cache *c, uint32_t i)
{
    if (c->newest != i) {
        lru_unlink(c, i);
        lru_push(c, i);
    }
}

/* ---- the expiry heap ---- */

static inline void
heap_place(struct rl_cache *c, size_t p, struct hnode n)
{
    *hat(c, p) = n;
    ent(c, n.ent)->heap = (uint32_t)p;
}

/* Places n at p or above, moving down the ancestors that expire later. */
static void
sift_up(struct rl_cache *c, size_t p, struct hnode n)
{
    size_t q;

    while (p > HEAP_ROOT) {
        q = p / 4 + 2;
        if (hat(c, q)->until <= n.until)
            break;
        heap_place(c, p, *hat(c, q));
        p = q;
    }
    heap_place(c, p, n);
}

/* The earliest child of p among positions <= last, or 0 when none.  The
   siblings are one aligned group of four, in one segment. */
static size_t
min_child(const struct rl_cache *c, size_t p, size_t last)
{
    size_t first = 4 * (p - 2), k, n, best = 0;
    const struct hnode *g;

    if (first > last)
        return 0;
    n = last - first + 1 < 4 ? last - first + 1 : 4;
    g = hat(c, first);
    for (k = 1; k < n; k++)
        if (g[k].until < g[best].until)
            best = k;
    return first + best;
}

/* Places n at p or below, moving up the children that expire earlier. */
static void
sift_down(struct rl_cache *c, size_t p, struct hnode n, size_t last)
{
    size_t q;

    for (;;) {
        q = min_child(c, p, last);
        if (q == 0 || hat(c, q)->until >= n.until)
            break;
        heap_place(c, p, *hat(c, q));
        p = q;
    }
    heap_place(c, p, n);
}

/* Places n at p, where its key changed, or wherever the order takes it. */
static void
heap_fix(struct rl_cache *c, size_t p, struct hnode n, size_t last)
{
    if (p > HEAP_ROOT && hat(c, p / 4 + 2)->until > n.until)
        sift_up(c, p, n);
    else
        sift_down(c, p, n, last);
}

/* Removes the node at p from the heap of c->count nodes (the caller then
   counts one entry less). */
static void
heap_remove(struct rl_cache *c, size_t p)
{
    size_t last = c->count + HEAP_ROOT - 1;

    if (p != last)
        heap_fix(c, p, *hat(c, last), last - 1);
}

/* ---- entries in and out ---- */

/* Drops the held entry that *link holds: from its chain, the list and the
   heap; frees its key. */
static void
drop(struct rl_cache *c, uint32_t *link)
{
    uint32_t i = *link;
    struct entry *e = ent(c, i);

    *link = e->chain;
    lru_unlink(c, i);
    heap_remove(c, e->heap);
    c->count--;
    if (e->keylen > KEY_INLINE)
        free(e->key.ptr);
    e->keylen = 0;
    e->heap = 0;
    e->chain = c->free_ent;
    c->free_ent = i;
}

/* Adds a new key, hashed h, with its copy when longer than KEY_INLINE,
   blocked as b (after reserve or an eviction). */
static void
insert(struct rl_cache *c, uint64_t h, const void *key, size_t keylen,
       char *copy, const struct block *b)
{
    uint32_t i = ent_take(c), *head;
    struct entry *e = ent(c, i);

    e->hash = h;
    e->b = *b;
    e->keylen = (uint32_t)keylen;
    if (copy != NULL)
        e->key.ptr = copy;
    else
        memcpy(e->key.bytes, key, keylen);
    head = bucket(c, h);
    e->chain = *head;
    *head = i;
    lru_push(c, i);
    c->count++;
    sift_up(c, c->count + HEAP_ROOT - 1, (struct hnode){ b->until, i, 0 });
}

/* Gives held entry i the block b, as the most recently used. */
static void
replace(struct rl_cache *c, uint32_t i, const struct block *b)
{
    struct entry *e = ent(c, i);

    e->b = *b;
    heap_fix(c, e->heap, (struct hnode){ b->until, i, 0 },
             c->count + HEAP_ROOT - 1);
    lru_touch(c, i);
}

/* Frees the long keys' copies. */
static void
free_keys(struct rl_cache *c)
{
    uint32_t i;
    struct entry *e;

    for (i = c->newest; i != NONE; i = e->older) {
        e = ent(c, i);
        if (e->keylen > KEY_INLINE)
            free(e->key.ptr);
    }
}

/* ---- the interface ---- */

struct rl_cache *
rl__cache_new(int64_t max_size)
{
    struct rl_cache *c;
    uint64_t k[2];
    size_t n;

    if (max_size < 1 || !rl__random_bytes(k, sizeof(k)))
        return NULL;
    if (max_size > MAX_SIZE_CAP)
        max_size = MAX_SIZE_CAP;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->max_size = (size_t)max_size;
    for (c->max_buckets = 1; c->max_buckets < c->max_size;)
        c->max_buckets *= 2;
    n = c->max_buckets < START_BUCKETS ? c->max_buckets : START_BUCKETS;
    c->t.heads = calloc(n, sizeof(*c->t.heads));
    if (c->t.heads == NULL) {
        free(c);
        return NULL;
    }
    c->t.mask = n - 1;
    c->seg_ents = max_size < SEG_ENTS ? (uint32_t)max_size + 1 : SEG_ENTS;
    /* The positions up to max_size + HEAP_ROOT, in whole groups of 4. */
    n = (c->max_size + HEAP_ROOT + 4) & ~(size_t)3;
    c->heap_seg = n < HEAP_SEG ? (uint32_t)n : HEAP_SEG;
    c->n_ents = 1;
    c->k0 = k[0];
    c->k1 = k[1];
    c->hash_mask = UINT64_MAX;
    return c;
}

void
rl__cache_free(struct rl_cache *c)
{
    if (c == NULL)
        return;
    free_keys(c);
    segs_free(&c->ents);
    segs_free(&c->heap);
    free(c->t.heads);
    free(c->grown.heads);
    free(c);
}

/* Whole milliseconds from now to t, for t > now; saturated. */
static inline int64_t
ms_until(int64_t t, int64_t now)
{
    int64_t d;

    if (__builtin_sub_overflow(t, now, &d))
        return INT64_MAX;
    return d;
}

bool
rl__cache_lookup(struct rl_cache *c, const void *key, size_t keylen,
                 int64_t max, int64_t window, int64_t cost, int64_t now_ms,
                 struct rl_cache_entry_info *out)
{
    uint32_t *link;
    struct entry *e;

    if (c->count == 0)
        goto miss; /* no hashing when nothing is in */
    link = find(c, hash_key(c, key, keylen), key, keylen);
    if (*link == NONE)
        goto miss;
    e = ent(c, *link);
    if (now_ms >= e->b.until) {
        drop(c, link);
        c->expired++;
        goto miss;
    }
    if (e->b.max != max || e->b.window != window || cost < e->b.cost)
        goto miss;
    lru_touch(c, *link);
    out->retry_after_ms = ms_until(e->b.until, now_ms);
    out->reset_ms = e->b.reset_at > e->b.until ?
                    ms_until(e->b.reset_at, now_ms) : out->retry_after_ms;
    c->hits++;
    return true;
miss:
    c->misses++;
    return false;
}

int
rl__cache_put(struct rl_cache *c, const void *key, size_t keylen,
              int64_t max, int64_t window, int64_t cost,
              int64_t blocked_until_ms, int64_t reset_at_ms)
{
    struct block b = { blocked_until_ms, reset_at_ms, max, window, cost };
    uint64_t h = hash_key(c, key, keylen);
    uint32_t *link = find(c, h, key, keylen);
    char *copy = NULL;

    if (*link != NONE) {
        replace(c, *link, &b);
        goto out;
    }
    if (keylen > KEY_INLINE) {
        copy = malloc(keylen);
        if (copy == NULL)
            return RL_ERR_NOMEM;
        memcpy(copy, key, keylen);
    }
    if (c->count == c->max_size) {
        drop(c, link_of(c, c->oldest));
        c->evictions++;
    } else if (!reserve(c)) {
        free(copy);
        return RL_ERR_NOMEM;
    }
    grow(c);
    insert(c, h, key, keylen, copy, &b);
out:
    if (c->grown.heads != NULL)
        migrate(c);
    return RL_OK;
}

bool
rl__cache_del(struct rl_cache *c, const void *key, size_t keylen)
{
    uint32_t *link;

    if (c->count == 0)
        return false;
    link = find(c, hash_key(c, key, keylen), key, keylen);
    if (*link == NONE)
        return false;
    drop(c, link);
    return true;
}

/*
 * Drops every entry and the memory they held.  The table goes back to its
 * first size when that can be had, else keeps its size, emptied.
 */
void
rl__cache_clear(struct rl_cache *c)
{
    size_t n = c->max_buckets < START_BUCKETS ? c->max_buckets
                                              : START_BUCKETS;
    uint32_t *heads = calloc(n, sizeof(*heads));

    free_keys(c);
    segs_free(&c->ents);
    segs_free(&c->heap);
    free(c->grown.heads);
    c->grown.heads = NULL;
    c->grown.mask = 0;
    c->mig = 0;
    if (heads != NULL) {
        free(c->t.heads);
        c->t.heads = heads;
        c->t.mask = n - 1;
    } else {
        memset(c->t.heads, 0, (c->t.mask + 1) * sizeof(*c->t.heads));
    }
    c->n_ents = 1;
    c->free_ent = NONE;
    c->newest = NONE;
    c->oldest = NONE;
    c->count = 0;
}

int64_t
rl__cache_sweep(struct rl_cache *c, int64_t now_ms, int64_t budget)
{
    int64_t n = 0;
    const struct hnode *root;

    while (n < budget && c->count > 0) {
        root = hat(c, HEAP_ROOT);
        if (root->until > now_ms)
            break;
        drop(c, link_of(c, root->ent));
        n++;
    }
    c->expired += n;
    return n;
}

int64_t
rl__cache_next_expiry(const struct rl_cache *c)
{
    return c->count > 0 ? hat(c, HEAP_ROOT)->until : INT64_MAX;
}

int64_t
rl__cache_size(const struct rl_cache *c)
{
    return (int64_t)c->count;
}

void
rl__cache_stats(const struct rl_cache *c, struct rl_cache_tally *out)
{
    out->hits = c->hits;
    out->misses = c->misses;
    out->size = (int64_t)c->count;
    out->evictions = c->evictions;
    out->expired = c->expired;
}

/* ---- test hooks ---- */

uint64_t
rl__cache_hash(const struct rl_cache *c, const void *key, size_t keylen)
{
    return hash_key(c, key, keylen);
}

void
rl__cache_test_hash(struct rl_cache *c, uint64_t k0, uint64_t k1,
                    uint64_t mask)
{
    c->k0 = k0;
    c->k1 = k1;
    c->hash_mask = mask;
}

bool
rl__cache_peek(const struct rl_cache *c, const void *key, size_t keylen,
               int64_t *until, int64_t *reset_at, int64_t *max,
               int64_t *window, int64_t *cost)
{
    uint32_t *link = find(c, hash_key(c, key, keylen), key, keylen);
    const struct entry *e;

    if (*link == NONE)
        return false;
    e = ent(c, *link);
    if (until != NULL)
        *until = e->b.until;
    if (reset_at != NULL)
        *reset_at = e->b.reset_at;
    if (max != NULL)
        *max = e->b.max;
    if (window != NULL)
        *window = e->b.window;
    if (cost != NULL)
        *cost = e->b.cost;
    return true;
}

/* Entries on the list, checking both directions; SIZE_MAX when broken. */
static size_t
verify_list(const struct rl_cache *c)
{
    uint32_t i, prev = NONE;
    size_t n = 0;
    const struct entry *e;

    for (i = c->newest; i != NONE; i = e->older) {
        e = ent(c, i);
        if (e->newer != prev || e->heap < HEAP_ROOT || ++n > c->count)
            return SIZE_MAX;
        if (hash_key(c, ent_key(e), e->keylen) != e->hash ||
            *find(c, e->hash, ent_key(e), e->keylen) != i)
            return SIZE_MAX;
        prev = i;
    }
    return prev == c->oldest ? n : SIZE_MAX;
}

/* Entries in the chains of t (from bucket `from`) that belong there, or
   SIZE_MAX when one does not. */
static size_t
verify_table(const struct rl_cache *c, const struct table *t, size_t from)
{
    size_t b, n = 0;
    uint32_t i;
    const struct entry *e;

    for (b = 0; b <= t->mask; b++) {
        for (i = t->heads[b]; i != NONE; i = e->chain) {
            e = ent(c, i);
            if (b < from || (e->hash & t->mask) != b || ++n > c->count)
                return SIZE_MAX;
        }
    }
    return n;
}

/* Whether every node points at its entry and back, and none expires
   before its parent. */
static bool
verify_heap(const struct rl_cache *c)
{
    size_t p, last = c->count + HEAP_ROOT - 1;
    const struct hnode *n;

    for (p = HEAP_ROOT; p <= last; p++) {
        n = hat(c, p);
        if (n->ent == NONE || n->ent >= c->n_ents ||
            ent(c, n->ent)->heap != p || ent(c, n->ent)->b.until != n->until)
            return false;
        if (p > HEAP_ROOT && hat(c, p / 4 + 2)->until > n->until)
            return false;
    }
    return true;
}

int
rl__cache_verify(const struct rl_cache *c)
{
    size_t in_t, in_grown = 0, freed = 0;
    uint32_t i;

    if (c->count > c->max_size)
        return 1;
    if (verify_list(c) != c->count)
        return 2;
    in_t = verify_table(c, &c->t, c->grown.heads != NULL ? c->mig : 0);
    if (c->grown.heads != NULL)
        in_grown = verify_table(c, &c->grown, 0);
    if (in_t == SIZE_MAX || in_grown == SIZE_MAX ||
        in_t + in_grown != c->count)
        return 3;
    if (!verify_heap(c))
        return 4;
    for (i = c->free_ent; i != NONE; i = ent(c, i)->chain)
        if (ent(c, i)->heap != 0 || ++freed > c->n_ents)
            return 5;
    if (c->count + freed + 1 != c->n_ents)
        return 5;
    if (c->grown.heads == NULL && c->mig != 0)
        return 6;
    return 0;
}
