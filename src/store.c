/*
 * store.c: the in-process store of the local backend.  It maps (algorithm,
 * key bytes) to the rl_algo_state of that key, drops a state once it is
 * fresh again (its expiry), and never holds more than max_keys of them,
 * evicting the least recently used key beyond that.
 *
 * It is on the hot path of every local check.  A hit costs one keyed hash,
 * a probe of the slot array, one key comparison and a move to the front of
 * the recency list, without allocating.  With many keys the cost is cache
 * misses more than instructions, so what a hit touches besides the key's
 * own entry lives in two dense arrays (8 bytes per slot, 24 per key) that
 * are far likelier to be cached than scattered entries are:
 *
 *   - Hash.  SipHash-1-3 keyed with a 128-bit secret drawn per store and
 *     per algorithm from getrandom() (OpenSSL's RAND_bytes as the
 *     fallback), so that whoever chooses the keys cannot choose collisions
 *     and push the table into long probe runs.  One secret per algorithm
 *     makes (alg, key) and (alg', key) unrelated without hashing alg.
 *   - Slots.  Open addressing with linear probing over a power-of-two
 *     array of 8-byte slots {low 32 bits of the hash, node index}.  The
 *     home slot is the hash's low bits, so the tag alone rehashes; a probe
 *     reads an entry only on a tag match, then compares the full hash,
 *     length, algorithm and bytes.  The load stays at most 3/4; the array
 *     doubles by rehash as keys are added (amortised); removal shifts the
 *     rest of the probe run back (no tombstones).
 *   - Nodes.  One 24-byte node per key, {entry, expiry, prev, next},
 *     indexed from the slots.  prev/next link the nodes in recency order
 *     (node 0 is the list head: its next is the most recently used key,
 *     its prev the least, the one evicted), so moving a key to the front
 *     touches its neighbours' nodes, not their entries.  The sweep walks
 *     this array with a cursor kept between calls, reading expiries
 *     without touching entries, looking at no more than
 *     SWEEP_SCAN_PER_DROP nodes per key its budget lets it drop.  Free
 *     nodes are chained through next and reused first.
 *   - Entries.  One allocation per key: the state, the full hash, and the
 *     key bytes inline at the tail.  Entries never move.
 *
 * A state not yet given an expiry (rl__store_set_expiry) never expires;
 * rl__store_get hands an expired state back cleared.  Every state dropped
 * (expired, evicted, deleted, freed) goes through rl__algo_state_clear,
 * which releases the sliding log.  At most 2^31 keys are kept, whatever
 * max_keys says.
 *
 * Lifetime of the state pointers: rl__store_get returns a pointer into the
 * entry, valid until the next rl__store_get, rl__store_del, rl__store_sweep
 * or rl__store_free on the same store (any of them may drop that entry).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#ifdef __linux__
#include <sys/random.h>
#endif

#include "rl_private.h"

#define EXPIRE_NEVER INT64_MAX
#define MIN_SLOTS 16
#define MIN_NODES 16
#define MAX_KEYS_CAP (UINT32_C(1) << 31)
/* Nodes the sweep may look at for each key its budget lets it drop. */
#define SWEEP_SCAN_PER_DROP 32
/* Hash secrets: one per algorithm, indexed by alg & (N_SEED - 1). */
#define N_SEED 8

/*
 * Test hooks (tests/test_store.c), not for use by the library: declared
 * here rather than in rl_private.h, which this file does not own.
 */
uint64_t rl__siphash13(uint64_t k0, uint64_t k1, const void *data,
                       size_t len);
uint64_t rl__store_hash(const struct rl_store *s, rl_algorithm alg,
                        const void *key, size_t keylen);
void rl__store_test_hash(struct rl_store *s, uint64_t k0, uint64_t k1,
                         uint64_t mask);
int64_t rl__store_verify(const struct rl_store *s);

struct entry {
    uint64_t hash;
    rl_algo_state st;
    uint32_t node;    /* index of its node */
    uint32_t keylen;
    uint8_t alg;
    char key[];       /* keylen bytes, not NUL terminated */
};

struct node {
    struct entry *e;  /* NULL: free (or the list head) */
    int64_t expire_at;
    uint32_t prev;    /* toward the most recently used */
    uint32_t next;    /* toward the least recently used; free chain */
};

struct slot {
    uint32_t tag;     /* the low 32 bits of the hash */
    uint32_t node;    /* 0: empty */
};

struct rl_store {
    struct slot *slots;
    size_t mask;      /* slots - 1; a power of two minus one, < 2^32 */
    struct node *nodes;
    uint32_t n_nodes; /* nodes[0, n_nodes) have been used */
    uint32_t cap_nodes;
    uint32_t free_node; /* head of the free chain, 0: none */
    uint32_t cursor;  /* the node the next sweep starts at */
    size_t count;
    size_t max_keys;
    uint64_t seed[N_SEED][2];
    uint64_t hash_mask; /* all ones, except in tests that force collisions */
    int64_t evictions;
    int64_t expired;
};

/* ---- the hash: SipHash-1-3 ---- */

static inline uint64_t
rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t
load_le64(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

#define SIPROUND(v0, v1, v2, v3)                                           \
    do {                                                                   \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);          \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                             \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                             \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);          \
    } while (0)

static inline uint32_t
load_le32(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

/*
 * The last len % 8 bytes of the message, at p, with its length in the top
 * byte.  Overlapping loads instead of a byte loop: a message of 8 bytes or
 * more is read through its last 8, a shorter one by two loads that cover
 * it.
 */
static inline uint64_t
last_word(const unsigned char *p, size_t len)
{
    size_t r = len & 7;
    uint64_t b = (uint64_t)len << 56;

    if (r == 0)
        return b;
    if (len >= 8)
        return b | load_le64(p + r - 8) >> (64 - 8 * r);
    if (r >= 4)
        return b | load_le32(p) |
               (uint64_t)load_le32(p + r - 4) << (8 * r - 32);
    return b | p[0] | (uint64_t)p[r / 2] << (8 * (r / 2)) |
           (uint64_t)p[r - 1] << (8 * (r - 1));
}

/*
 * SipHash with one compression and three finalization rounds (Aumasson and
 * Bernstein, "SipHash: a fast short-input PRF"), as the 64-bit value.
 */
static inline __attribute__((always_inline)) uint64_t
siphash13(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
    const unsigned char *p = data;
    const unsigned char *end = p + (len & ~(size_t)7);
    uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);
    uint64_t m;

    for (; p != end; p += 8) {
        m = load_le64(p);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    m = last_word(p, len);
    v3 ^= m;
    SIPROUND(v0, v1, v2, v3);
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t
rl__siphash13(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
    return siphash13(k0, k1, data, len);
}

static inline __attribute__((always_inline)) uint64_t
key_hash(const struct rl_store *s, rl_algorithm alg, const void *key,
         size_t keylen)
{
    const uint64_t *k = s->seed[(unsigned)alg & (N_SEED - 1)];

    return siphash13(k[0], k[1], key, keylen) & s->hash_mask;
}

uint64_t
rl__store_hash(const struct rl_store *s, rl_algorithm alg, const void *key,
               size_t keylen)
{
    return key_hash(s, alg, key, keylen);
}

/*
 * Gives every algorithm the hash secret (k0, k1) and keeps only the bits
 * of mask of every hash, so that tests can predict hashes and force
 * collisions: (alg, key) and (alg', key) collide, and with a narrow mask
 * so do most keys.  Empty store only.
 */
void
rl__store_test_hash(struct rl_store *s, uint64_t k0, uint64_t k1,
                    uint64_t mask)
{
    int i;

    for (i = 0; i < N_SEED; i++) {
        s->seed[i][0] = k0;
        s->seed[i][1] = k1;
    }
    s->hash_mask = mask;
}

/* Fills buf with secret random bytes; returns false when none are to be
   had (the store then refuses to exist rather than run unkeyed). */
static bool
random_bytes(void *buf, size_t len)
{
#ifdef __linux__
    unsigned char *p = buf;
    size_t got = 0;
    ssize_t n;

    while (got < len) {
        n = getrandom(p + got, len - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == len)
        return true;
#endif
    return len <= (size_t)INT32_MAX && RAND_bytes(buf, (int)len) == 1;
}

/* ---- nodes and the recency list ---- */

static inline void
lru_unlink(struct node *nodes, uint32_t i)
{
    nodes[nodes[i].prev].next = nodes[i].next;
    nodes[nodes[i].next].prev = nodes[i].prev;
}

static inline void
lru_push_front(struct node *nodes, uint32_t i)
{
    nodes[i].prev = 0;
    nodes[i].next = nodes[0].next;
    nodes[nodes[0].next].prev = i;
    nodes[0].next = i;
}

/* A node for a new key (made the most recently used), 0 when out of
   memory. */
static uint32_t
node_new(struct rl_store *s, struct entry *e)
{
    struct node *grown;
    uint64_t cap;
    uint32_t i;

    if (s->free_node != 0) {
        i = s->free_node;
        s->free_node = s->nodes[i].next;
    } else {
        if (s->n_nodes == s->cap_nodes) {
            cap = (uint64_t)s->cap_nodes * 2;
            if (cap > (uint64_t)s->max_keys + 1)
                cap = (uint64_t)s->max_keys + 1;
            grown = realloc(s->nodes, (size_t)cap * sizeof(*grown));
            if (grown == NULL)
                return 0;
            s->nodes = grown;
            s->cap_nodes = (uint32_t)cap;
        }
        i = s->n_nodes++;
    }
    s->nodes[i].e = e;
    s->nodes[i].expire_at = EXPIRE_NEVER;
    lru_push_front(s->nodes, i);
    return i;
}

static void
node_free(struct rl_store *s, uint32_t i)
{
    lru_unlink(s->nodes, i);
    s->nodes[i].e = NULL;
    s->nodes[i].next = s->free_node;
    s->free_node = i;
}

/* ---- the slot array ---- */

/* memcmp(a, b, n) == 0, without the call for the common short keys. */
static inline bool
same_bytes(const char *a, const char *b, size_t n)
{
    const unsigned char *x = (const unsigned char *)a;
    const unsigned char *y = (const unsigned char *)b;

    if (n >= 8 && n <= 16)
        return load_le64(x) == load_le64(y) &&
               load_le64(x + n - 8) == load_le64(y + n - 8);
    if (n >= 4 && n < 8)
        return load_le32(x) == load_le32(y) &&
               load_le32(x + n - 4) == load_le32(y + n - 4);
    return memcmp(a, b, n) == 0;
}

static inline bool
entry_is(const struct entry *e, uint64_t hash, rl_algorithm alg,
         const char *key, size_t keylen)
{
    return e->hash == hash && e->keylen == keylen &&
           e->alg == (uint8_t)alg && same_bytes(e->key, key, keylen);
}

/* The first empty slot of the probe run from tag's home. */
static size_t
free_slot(const struct rl_store *s, uint32_t tag)
{
    size_t i = tag & s->mask;

    while (s->slots[i].node != 0)
        i = (i + 1) & s->mask;
    return i;
}

/* The slot that refers to node n of entry e (which must be in it). */
static size_t
slot_of(const struct rl_store *s, const struct entry *e)
{
    size_t i = (uint32_t)e->hash & s->mask;

    while (s->slots[i].node != e->node)
        i = (i + 1) & s->mask;
    return i;
}

/*
 * Empties slot i and closes the gap: every later slot of the probe run
 * whose home is not between the gap and itself moves back into it.
 */
static void
slot_remove(struct rl_store *s, size_t i)
{
    size_t j = i;
    size_t home;

    for (;;) {
        s->slots[i].node = 0;
        do {
            j = (j + 1) & s->mask;
            if (s->slots[j].node == 0)
                return;
            home = s->slots[j].tag & s->mask;
        } while (((j - home) & s->mask) < ((j - i) & s->mask));
        s->slots[i] = s->slots[j];
        i = j;
    }
}

/* Doubles the slot array.  Returns false when out of memory (the store is
   then unchanged). */
static bool
grow(struct rl_store *s)
{
    size_t n = s->mask + 1;
    struct slot *old = s->slots;
    size_t i;

    if (n >= ((size_t)1 << 31))
        return false;
    s->slots = calloc(2 * n, sizeof(*old));
    if (s->slots == NULL) {
        s->slots = old;
        return false;
    }
    s->mask = 2 * n - 1;
    for (i = 0; i < n; i++) {
        if (old[i].node != 0)
            s->slots[free_slot(s, old[i].tag)] = old[i];
    }
    free(old);
    return true;
}

/* ---- entries ---- */

/* Removes the key of slot i from the slots and the list, releases its
   state and frees it. */
static void
drop(struct rl_store *s, size_t i)
{
    struct entry *e = s->nodes[s->slots[i].node].e;

    slot_remove(s, i);
    node_free(s, e->node);
    s->count--;
    rl__algo_state_clear(&e->st);
    free(e);
}

/* Makes room for one more key in a full store: drops the least recently
   used key, counted as expired if it was, else as evicted. */
static void
drop_lru(struct rl_store *s, int64_t now_ms)
{
    struct node *n = &s->nodes[s->nodes[0].prev];

    if (n->expire_at <= now_ms)
        s->expired++;
    else
        s->evictions++;
    drop(s, slot_of(s, n->e));
}

/* Adds a fresh (alg, key) as the most recently used key.  NULL when out of
   memory.  Kept out of line: the hit path stays small. */
static __attribute__((noinline)) rl_algo_state *
insert(struct rl_store *s, rl_algorithm alg, const char *key, size_t keylen,
       uint64_t hash, int64_t now_ms)
{
    struct entry *e;
    size_t i, size;

    if (keylen > UINT32_MAX)
        return NULL;
    size = offsetof(struct entry, key) + keylen;
    e = malloc(size < sizeof(*e) ? sizeof(*e) : size);
    if (e == NULL)
        return NULL;
    if (s->count >= s->max_keys)
        drop_lru(s, now_ms);
    else if (s->count + 1 > (s->mask + 1) / 4 * 3 && !grow(s))
        goto out_free_entry;
    e->node = node_new(s, e);
    if (e->node == 0)
        goto out_free_entry;
    memset(&e->st, 0, sizeof(e->st));
    e->hash = hash;
    e->keylen = (uint32_t)keylen;
    e->alg = (uint8_t)alg;
    if (keylen > 0)
        memcpy(e->key, key, keylen);
    i = free_slot(s, (uint32_t)hash);
    s->slots[i].tag = (uint32_t)hash;
    s->slots[i].node = e->node;
    s->count++;
    return &e->st;

out_free_entry:
    free(e);
    return NULL;
}

/* ---- the interface ---- */

struct rl_store *
rl__store_new(int64_t max_keys)
{
    struct rl_store *s;

    if (max_keys < 1)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->slots = calloc(MIN_SLOTS, sizeof(*s->slots));
    s->nodes = calloc(MIN_NODES, sizeof(*s->nodes));
    if (s->slots == NULL || s->nodes == NULL)
        goto out_free;
    if (!random_bytes(s->seed, sizeof(s->seed)))
        goto out_free;
    s->hash_mask = UINT64_MAX;
    s->mask = MIN_SLOTS - 1;
    s->cap_nodes = MIN_NODES;
    s->n_nodes = 1; /* node 0 is the list head, linked to itself */
    s->cursor = 1;
    s->max_keys = (uint64_t)max_keys > MAX_KEYS_CAP ? MAX_KEYS_CAP
                                                     : (size_t)max_keys;
    return s;

out_free:
    free(s->slots);
    free(s->nodes);
    free(s);
    return NULL;
}

void
rl__store_free(struct rl_store *s)
{
    uint32_t i;

    if (s == NULL)
        return;
    for (i = 1; i < s->n_nodes; i++) {
        if (s->nodes[i].e != NULL) {
            rl__algo_state_clear(&s->nodes[i].e->st);
            free(s->nodes[i].e);
        }
    }
    free(s->slots);
    free(s->nodes);
    free(s);
}

/*
 * The state of (alg, key) at now_ms; see rl_private.h.  The pointer stays
 * valid until the next rl__store_get, rl__store_del, rl__store_sweep or
 * rl__store_free on this store.
 */
rl_algo_state *
rl__store_get(struct rl_store *s, rl_algorithm alg, const char *key,
              size_t keylen, int64_t now_ms)
{
    uint64_t hash = key_hash(s, alg, key, keylen);
    uint32_t tag = (uint32_t)hash;
    size_t i = tag & s->mask;
    uint32_t idx;
    struct node *n;

    for (;;) {
        idx = s->slots[i].node;
        if (idx == 0)
            return insert(s, alg, key, keylen, hash, now_ms);
        n = &s->nodes[idx];
        if (s->slots[i].tag == tag && entry_is(n->e, hash, alg, key, keylen))
            break;
        i = (i + 1) & s->mask;
    }
    if (n->expire_at <= now_ms) {
        rl__algo_state_clear(&n->e->st);
        n->expire_at = EXPIRE_NEVER;
        s->expired++;
    }
    if (s->nodes[0].next != idx) {
        lru_unlink(s->nodes, idx);
        lru_push_front(s->nodes, idx);
    }
    return &n->e->st;
}

/* st must be the pointer the last rl__store_get on s returned. */
void
rl__store_set_expiry(struct rl_store *s, rl_algo_state *st,
                     int64_t expire_at_ms)
{
    struct entry *e;

    e = (struct entry *)((char *)st - offsetof(struct entry, st));
    s->nodes[e->node].expire_at = expire_at_ms;
}

bool
rl__store_del(struct rl_store *s, rl_algorithm alg, const char *key,
              size_t keylen)
{
    uint64_t hash = key_hash(s, alg, key, keylen);
    uint32_t tag = (uint32_t)hash;
    size_t i = tag & s->mask;

    for (;;) {
        if (s->slots[i].node == 0)
            return false;
        if (s->slots[i].tag == tag &&
            entry_is(s->nodes[s->slots[i].node].e, hash, alg, key, keylen))
            break;
        i = (i + 1) & s->mask;
    }
    drop(s, i);
    return true;
}

/*
 * Drops up to `budget` keys expired at now_ms, looking at no more than
 * SWEEP_SCAN_PER_DROP * budget nodes (at most all of them), from where the
 * last call stopped.  Nodes do not move, so calls that each look at k
 * nodes visit every node once per n_nodes / k calls; only the expired
 * keys' entries are read.
 */
int64_t
rl__store_sweep(struct rl_store *s, int64_t now_ms, int64_t budget)
{
    uint32_t limit = s->n_nodes - 1;
    uint32_t seen, i = s->cursor;
    int64_t dropped = 0;
    struct node *n;

    if (budget < 1)
        return 0;
    if ((uint64_t)budget < limit / SWEEP_SCAN_PER_DROP)
        limit = (uint32_t)budget * SWEEP_SCAN_PER_DROP;
    for (seen = 0; seen < limit && dropped < budget; seen++) {
        if (i >= s->n_nodes)
            i = 1;
        n = &s->nodes[i];
        if (n->e != NULL && n->expire_at <= now_ms) {
            drop(s, slot_of(s, n->e));
            dropped++;
        }
        i++;
    }
    s->cursor = i;
    s->expired += dropped;
    return dropped;
}

void
rl__store_stats(const struct rl_store *s, struct rl_store_stats *out)
{
    out->keys = (int64_t)s->count;
    out->evictions = s->evictions;
    out->expired = s->expired;
}

/* ---- consistency (tests) ---- */

/* Whether the slot of e is in the probe run of its home, every slot from
   the home up to it full (bounded, unlike slot_of). */
static bool
findable(const struct rl_store *s, const struct entry *e)
{
    size_t i = (uint32_t)e->hash & s->mask;
    size_t k;

    for (k = 0; k <= s->mask && s->slots[i].node != 0; k++) {
        if (s->slots[i].node == e->node)
            return s->slots[i].tag == (uint32_t)e->hash;
        i = (i + 1) & s->mask;
    }
    return false;
}

/* Whether the recency list from the head holds exactly `count` nodes,
   each in use and linked both ways. */
static bool
list_ok(const struct rl_store *s)
{
    uint32_t i, listed = 0;

    for (i = s->nodes[0].next; i != 0; i = s->nodes[i].next) {
        if (i >= s->n_nodes || s->nodes[i].e == NULL ||
            s->nodes[s->nodes[i].next].prev != i || listed++ > s->count)
            return false;
    }
    return listed == s->count && s->nodes[s->nodes[0].next].prev == 0;
}

/*
 * Checks the invariants: the list, every used node's entry findable from
 * its home slot under its tag, one slot per key, free nodes on the free
 * chain, the load and the bound.  Returns the longest probe distance, or
 * -1 when something does not hold.
 */
int64_t
rl__store_verify(const struct rl_store *s)
{
    size_t i, used = 0, held = 0, freed = 0, dist, longest = 0;
    const struct entry *e;

    if (!list_ok(s))
        return -1;
    for (i = 1; i < s->n_nodes; i++) {
        e = s->nodes[i].e;
        if (e != NULL && (e->node != i || !findable(s, e)))
            return -1;
        used += e != NULL;
    }
    for (i = s->free_node; i != 0 && freed <= s->n_nodes;
         i = s->nodes[i].next) {
        if (s->nodes[i].e != NULL)
            return -1;
        freed++;
    }
    for (i = 0; i <= s->mask; i++) {
        if (s->slots[i].node == 0)
            continue;
        held++;
        dist = (i - s->slots[i].tag) & s->mask;
        if (dist > longest)
            longest = dist;
    }
    if (used != s->count || held != s->count ||
        used + freed + 1 != s->n_nodes || s->count > s->max_keys ||
        s->count > (s->mask + 1) / 4 * 3)
        return -1;
    return (int64_t)longest;
}
