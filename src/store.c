/*
 * store.c: the in-process store of the local backend.  It maps (algorithm,
 * key bytes) to the rl_algo_state of that key, drops a state once it is
 * fresh again (its expiry), and never holds more than max_keys of them,
 * evicting beyond that a key not used lately (CLOCK, below).
 *
 * It is on the hot path of every local check, and with many keys its cost
 * is cache misses (250-400 ns each on the machines we measured) more than
 * instructions.  So a hit reads two places, each one or two cache lines,
 * the second found from the first: a slot, then the key's record.  Nothing
 * else (no list neighbours, no separate entry).  A caller holding a batch
 * can start both loads early, rl__store_prefetch then
 * rl__store_prefetch_record, so that the misses of the batch overlap.
 *
 *   - Hash.  SipHash-1-3 keyed with a 128-bit secret drawn per store and
 *     per algorithm from getrandom() (OpenSSL's RAND_bytes as the
 *     fallback), so that whoever chooses the keys cannot choose collisions
 *     and push the table into long probe runs.  One secret per algorithm
 *     makes (alg, key) and (alg', key) unrelated without hashing alg.
 *   - Slots.  Open addressing with linear probing over a power-of-two
 *     array of 8-byte slots {low 32 bits of the hash, record index}.  The
 *     home slot is the hash's low bits, so the tag alone rehashes; a probe
 *     reads a record only on a tag match, then compares the full hash,
 *     length, algorithm and bytes.  The load stays at most 3/4; removal
 *     shifts the rest of the probe run back (no tombstones).  The array
 *     starts sized for min(max_keys, PRESIZE_KEYS) keys (1 MiB at most).
 *     Beyond, it doubles incrementally, so that no get pays for a whole
 *     rehash (at a million keys one get used to stall ~30 ms): new keys go
 *     to the new array, every get moves MIGRATE_STEP slots of the old one
 *     or more, and lookups search both until the old one is empty.  Moves
 *     take whole clusters (runs of full slots), so what is left of the old
 *     array still answers lookups by plain probing.
 *   - Records.  One 128-byte record per key, 64-byte aligned: the first
 *     cache line holds the full hash, the expiry and the state, the second
 *     the key's length, algorithm and bytes (up to KEY_INLINE inline, else
 *     a malloc'd copy, which costs long keys a third load).  Records live
 *     in segments of SEG_RECS that never move, so a state pointer is valid
 *     as long as its key is held, and the store grows without copying.
 *     Freed records are reused, the last freed first.
 *   - Eviction: CLOCK (second chance), the usual approximation of least
 *     recently used (Redis and memcached approximate it too).  A get sets
 *     the key's reference bit; a full store makes room by moving a hand
 *     over the records in index order, clearing the bits it finds set and
 *     evicting the first key whose bit is clear: a key not got since the
 *     hand last passed it, or since it was added.  The new key takes that
 *     record, just behind the hand.  So a key got since the hand last
 *     passed it survives, and with no gets (and no deletions, whose holes
 *     the next new keys fill wherever they are) keys leave in the order
 *     they were added.  The bits are a bitmap, one bit per record (128 KiB
 *     for a million keys), which stays cached: setting one costs no miss,
 *     and a whole turn of the hand costs one word operation per 64 keys,
 *     amortised O(1) per eviction.  A full store has no free records, so
 *     the hand meets held keys only.  Exact LRU cost a list move per hit:
 *     two more records touched, likely two more misses.
 *   - Sweep.  It walks the records with a cursor kept between calls,
 *     reading the expiry in their first line (one cache line per record),
 *     looking at no more than SWEEP_SCAN_PER_DROP records per key its
 *     budget lets it drop.

 * A state not yet given an expiry (rl__store_set_expiry) never expires;
 * rl__store_get hands an expired state back cleared.  Every state dropped
 * (expired, evicted, deleted, freed) goes through rl__algo_state_clear,
 * which releases the sliding log.  At most 2^31 keys are kept, whatever
 * max_keys says.
 *
 * Lifetime of the state pointers: rl__store_get returns a pointer into the
 * record, valid until the next rl__store_get, rl__store_del, rl__store_sweep
 * or rl__store_free on the same store (any of them may drop that key).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#ifdef __linux__
#include <sys/random.h>
#endif

#include "rl_private.h"

#define EXPIRE_NEVER INT64_MAX
#define MAX_KEYS_CAP (UINT32_C(1) << 31)
/* The slot array is first sized for min(max_keys, PRESIZE_KEYS) keys. */
#define PRESIZE_KEYS 65536
#define MIN_SLOTS 16
/* Old slots each get moves while the slot array doubles (then it finishes
   the cluster it is in).  Any value >= 2 ends the move before the new
   array is 3/4 full. */
#define MIGRATE_STEP 16
/* Records per segment: 4096 of 128 bytes, 512 KiB. */
#define SEG_SHIFT 12
#define SEG_RECS (UINT32_C(1) << SEG_SHIFT)
#define KEY_INLINE 56
#define ALG_FREE 0xff
/* Records the sweep may look at for each key its budget lets it drop. */
#define SWEEP_SCAN_PER_DROP 32
/* Hash secrets: one per algorithm, indexed by alg & (N_SEED - 1). */
#define N_SEED 8
#define NOWHERE SIZE_MAX

struct rec {
    /* First line: what a hit reads and writes. */
    union {
        uint64_t hash;
        uint64_t next_free; /* a free record: the next one, 0: none */
    } u;
    int64_t expire_at;      /* EXPIRE_NEVER: none set, or free */
    rl_algo_state st;
    /* Second line: the key. */
    uint32_t keylen;
    uint8_t alg;            /* ALG_FREE: a free record */
    union {
        char bytes[KEY_INLINE];
        char *ptr;          /* keylen > KEY_INLINE: a malloc'd copy */
    } key;
};

_Static_assert(sizeof(struct rec) == 128, "a record is two cache lines");
_Static_assert(offsetof(struct rec, keylen) == 64, "the key line");

struct slot {
    uint32_t tag;           /* the low 32 bits of the hash */
    uint32_t rec;           /* 0: empty */
};

struct table {
    struct slot *slots;     /* NULL: none */
    size_t mask;            /* slots - 1; a power of two minus one, < 2^32 */
};

struct rl_store {
    struct table cur;       /* where keys are added */
    struct table old;       /* being moved into cur while it doubles */
    size_t mig;             /* the next old slot to move */
    size_t mig_left;        /* old slots not yet visited */
    struct rec **seg;       /* record i is seg[i >> SEG_SHIFT][i % SEG_RECS] */
    uint32_t n_seg;
    uint32_t cap_seg;
    uint32_t seg_recs;      /* SEG_RECS, or max_keys + 1 when fewer */
    uint32_t n_recs;        /* records [1, n_recs) are held or free */
    uint32_t free_rec;      /* head of the free chain, 0: none */
    uint32_t hand;          /* the record the clock hand looks at next */
    uint32_t cursor;        /* the record the next sweep starts at */
    uint64_t *ref;          /* reference bits, bit i % 64 of ref[i / 64] */
    size_t count;
    size_t max_keys;
    uint64_t seed[N_SEED][2];
    uint64_t hash_mask;     /* all ones, except in tests that force
                               collisions */
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

/* Fills buf with secret random bytes (rl_private.h). */
bool
rl__random_bytes(void *buf, size_t len)
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

/* ---- records ---- */

static inline struct rec *
rec_at(const struct rl_store *s, uint32_t i)
{
    return &s->seg[i >> SEG_SHIFT][i & (SEG_RECS - 1)];
}

static inline const char *
rec_key(const struct rec *r)
{
    return r->keylen > KEY_INLINE ? r->key.ptr : r->key.bytes;
}

/* Adds a segment of records and their reference bits.  False when out of
   memory (the store is then unchanged, but for a larger bitmap). */
static bool
add_segment(struct rl_store *s)
{
    size_t had = ((size_t)s->n_seg * s->seg_recs + 63) / 64;
    size_t words = ((size_t)(s->n_seg + 1) * s->seg_recs + 63) / 64;
    struct rec **seg;
    uint64_t *ref;
    void *recs;

    if (s->n_seg == s->cap_seg) {
        seg = realloc(s->seg, 2 * (size_t)s->cap_seg * sizeof(*seg));
        if (seg == NULL)
            return false;
        s->seg = seg;
        s->cap_seg *= 2;
    }
    ref = realloc(s->ref, words * sizeof(*ref));
    if (ref == NULL)
        return false;
    s->ref = ref;
    memset(ref + had, 0, (words - had) * sizeof(*ref));
    if (posix_memalign(&recs, 64, s->seg_recs * sizeof(struct rec)) != 0)
        return false;
    s->seg[s->n_seg++] = recs;
    return true;
}

/* A record for a new key, the last freed first.  0: out of memory. */
static uint32_t
rec_new(struct rl_store *s)
{
    uint32_t i = s->free_rec;

    if (i != 0) {
        s->free_rec = (uint32_t)rec_at(s, i)->u.next_free;
        return i;
    }
    if (s->n_recs == (uint64_t)s->n_seg * s->seg_recs && !add_segment(s))
        return 0;
    return s->n_recs++;
}

/* Fills record r for a new key, fresh; copy is the key's malloc'd copy
   when it is longer than KEY_INLINE. */
static void
rec_init(struct rec *r, uint64_t hash, rl_algorithm alg, const char *key,
         size_t keylen, char *copy)
{
    r->u.hash = hash;
    r->expire_at = EXPIRE_NEVER;
    memset(&r->st, 0, sizeof(r->st));
    r->keylen = (uint32_t)keylen;
    r->alg = (uint8_t)alg;
    if (copy != NULL)
        r->key.ptr = copy;
    else if (keylen > 0)
        memcpy(r->key.bytes, key, keylen);
}

/* Releases what a held record owns: its state's log, its key's copy. */
static void
rec_clear(struct rec *r)
{
    rl__algo_state_clear(&r->st);
    if (r->keylen > KEY_INLINE)
        free(r->key.ptr);
    r->keylen = 0;
}

/* Forgets held record i (its slot already removed) and chains it free. */
static void
rec_free(struct rl_store *s, uint32_t i)
{
    struct rec *r = rec_at(s, i);

    rec_clear(r);
    r->alg = ALG_FREE;
    r->expire_at = EXPIRE_NEVER;
    r->u.next_free = s->free_rec;
    s->free_rec = i;
    s->ref[i / 64] &= ~(UINT64_C(1) << (i % 64));
    s->count--;
}

/*
 * The record the clock hand evicts: from the hand on, in index order and
 * around, the first whose reference bit is clear, clearing those it passes
 * that are set.  The hand then stands just after it.  Full store only (no
 * free records, at least one held).  64 records per step.
 */
static uint32_t
clock_victim(struct rl_store *s)
{
    uint32_t i = s->hand, v;
    uint64_t from, clear;

    for (;;) {
        if (i >= s->n_recs)
            i = 1;
        from = ~UINT64_C(0) << (i % 64);
        clear = ~s->ref[i / 64] & from;
        if (clear != 0) {
            v = (i & ~UINT32_C(63)) + (uint32_t)__builtin_ctzll(clear);
            if (v < s->n_recs) {
                s->ref[i / 64] &= ~(from & ~(~UINT64_C(0) << (v % 64)));
                s->hand = v + 1;
                return v;
            }
        }
        s->ref[i / 64] &= ~from;
        i = (i | 63) + 1;
    }
}

/* ---- the slot arrays ---- */

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
rec_is(const struct rec *r, uint64_t hash, rl_algorithm alg,
       const char *key, size_t keylen)
{
    return r->u.hash == hash && r->keylen == keylen &&
           r->alg == (uint8_t)alg && same_bytes(rec_key(r), key, keylen);
}

/* The slot of t holding (alg, key), or NOWHERE. */
static inline size_t
lookup(const struct rl_store *s, const struct table *t, uint64_t hash,
       rl_algorithm alg, const char *key, size_t keylen)
{
    uint32_t tag = (uint32_t)hash;
    size_t i = tag & t->mask;

    for (;;) {
        if (t->slots[i].rec == 0)
            return NOWHERE;
        if (t->slots[i].tag == tag &&
            rec_is(rec_at(s, t->slots[i].rec), hash, alg, key, keylen))
            return i;
        i = (i + 1) & t->mask;
    }
}

/* The slot holding (alg, key) in either array, NOWHERE when none; *t:
   that array. */
static inline size_t
find(struct rl_store *s, uint64_t hash, rl_algorithm alg, const char *key,
     size_t keylen, struct table **t)
{
    size_t at;

    *t = &s->cur;
    at = lookup(s, *t, hash, alg, key, keylen);
    if (at == NOWHERE && s->old.slots != NULL) {
        *t = &s->old;
        at = lookup(s, *t, hash, alg, key, keylen);
    }
    return at;
}

/* The slot of t referring to record idx of tag tag, or NOWHERE. */
static size_t
rec_slot(const struct table *t, uint32_t tag, uint32_t idx)
{
    size_t i = tag & t->mask;

    while (t->slots[i].rec != 0) {
        if (t->slots[i].rec == idx)
            return i;
        i = (i + 1) & t->mask;
    }
    return NOWHERE;
}

/* The first empty slot of the probe run from tag's home. */
static size_t
free_slot(const struct table *t, uint32_t tag)
{
    size_t i = tag & t->mask;

    while (t->slots[i].rec != 0)
        i = (i + 1) & t->mask;
    return i;
}

/*
 * Empties slot i and closes the gap: every later slot of the probe run
 * whose home is not between the gap and itself moves back into it.
 */
static void
slot_remove(struct table *t, size_t i)
{
    size_t j = i;
    size_t home;

    for (;;) {
        t->slots[i].rec = 0;
        do {
            j = (j + 1) & t->mask;
            if (t->slots[j].rec == 0)
                return;
            home = t->slots[j].tag & t->mask;
        } while (((j - home) & t->mask) < ((j - i) & t->mask));
        t->slots[i] = t->slots[j];
        i = j;
    }
}

/* Removes the slot of held record idx, from whichever array has it. */
static void
unlink_rec(struct rl_store *s, uint32_t idx)
{
    uint32_t tag = (uint32_t)rec_at(s, idx)->u.hash;
    size_t i = rec_slot(&s->cur, tag, idx);

    if (i != NOWHERE)
        slot_remove(&s->cur, i);
    else
        slot_remove(&s->old, rec_slot(&s->old, tag, idx));
}

/*
 * Moves at least `quota` slots of the old array, in order, into the new
 * one, then on to the end of the cluster it is in, and frees the old
 * array once every slot was visited.  The visits started just after an
 * empty slot and each call ends just after one, so the old array only
 * ever loses whole clusters: a probe there still finds what is left.
 */
static void
migrate(struct rl_store *s, size_t quota)
{
    struct slot *o = s->old.slots;
    size_t i = s->mig;
    bool in_cluster = false;

    while (s->mig_left > 0 && (quota > 0 || in_cluster)) {
        in_cluster = o[i].rec != 0;
        if (in_cluster) {
            s->cur.slots[free_slot(&s->cur, o[i].tag)] = o[i];
            o[i].rec = 0;
        }
        i = (i + 1) & s->old.mask;
        s->mig_left--;
        quota -= quota > 0;
    }
    s->mig = i;
    if (s->mig_left == 0) {
        free(o);
        s->old.slots = NULL;
        s->old.mask = 0;
    }
}

/* Starts doubling the slot array (finishing the last doubling first, if
   need be).  Returns false when out of memory or at 2^31 slots. */
static bool
grow(struct rl_store *s)
{
    size_t n = s->cur.mask + 1;
    struct slot *slots;
    size_t e = 0;

    if (s->old.slots != NULL)
        migrate(s, SIZE_MAX);
    if (n >= ((size_t)1 << 31))
        return false;
    slots = calloc(2 * n, sizeof(*slots));
    if (slots == NULL)
        return false;
    s->old = s->cur;
    s->cur.slots = slots;
    s->cur.mask = 2 * n - 1;
    while (s->old.slots[e].rec != 0)
        e++; /* there is an empty slot: the load is below 1 */
    s->mig = (e + 1) & s->old.mask;
    s->mig_left = n - 1;
    return true;
}

/* ---- keys ---- */

/* Makes room in a full store: drops the key the clock hand picks (counted
   as expired if it was, else as evicted); returns its record, for reuse. */
static uint32_t
evict(struct rl_store *s, int64_t now_ms)
{
    uint32_t v = clock_victim(s);
    struct rec *r = rec_at(s, v);

    if (r->expire_at <= now_ms)
        s->expired++;
    else
        s->evictions++;
    unlink_rec(s, v);
    rec_clear(r);
    return v;
}

/* A record for a key about to be added, making room if need be.  0: out
   of memory. */
static uint32_t
make_room(struct rl_store *s, int64_t now_ms)
{
    uint32_t i;

    if (s->count >= s->max_keys)
        return evict(s, now_ms);
    if (s->count + 1 > (s->cur.mask + 1) / 4 * 3 && !grow(s))
        return 0;
    i = rec_new(s);
    if (i != 0)
        s->count++;
    return i;
}

/* Adds a fresh (alg, key), its reference bit clear.  NULL when out of
   memory.  Kept out of line: the hit path stays small. */
static __attribute__((noinline)) rl_algo_state *
insert(struct rl_store *s, rl_algorithm alg, const char *key, size_t keylen,
       uint64_t hash, int64_t now_ms)
{
    char *copy = NULL;
    struct rec *r;
    uint32_t i;

    if (keylen > UINT32_MAX)
        return NULL;
    if (keylen > KEY_INLINE) {
        copy = malloc(keylen);
        if (copy == NULL)
            return NULL;
        memcpy(copy, key, keylen);
    }
    i = make_room(s, now_ms);
    if (i == 0) {
        free(copy);
        return NULL;
    }
    r = rec_at(s, i);
    rec_init(r, hash, alg, key, keylen, copy);
    s->cur.slots[free_slot(&s->cur, (uint32_t)hash)] =
        (struct slot){ .tag = (uint32_t)hash, .rec = i };
    return &r->st;
}

/* ---- the interface ---- */

struct rl_store *
rl__store_new(int64_t max_keys)
{
    struct rl_store *s;
    size_t keys;

    if (max_keys < 1)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->max_keys = (uint64_t)max_keys > MAX_KEYS_CAP ? MAX_KEYS_CAP
                                                     : (size_t)max_keys;
    keys = s->max_keys < PRESIZE_KEYS ? s->max_keys : PRESIZE_KEYS;
    s->cur.mask = MIN_SLOTS - 1;
    while ((s->cur.mask + 1) / 4 * 3 < keys)
        s->cur.mask = 2 * s->cur.mask + 1;
    s->cur.slots = calloc(s->cur.mask + 1, sizeof(*s->cur.slots));
    s->seg = malloc(sizeof(*s->seg));
    s->cap_seg = 1;
    s->seg_recs = s->max_keys < SEG_RECS ? (uint32_t)s->max_keys + 1
                                         : SEG_RECS;
    if (s->cur.slots == NULL || s->seg == NULL || !add_segment(s) ||
        !rl__random_bytes(s->seed, sizeof(s->seed)))
        goto out_free;
    rec_at(s, 0)->alg = ALG_FREE; /* record 0 means "none" */
    s->hash_mask = UINT64_MAX;
    s->n_recs = 1;
    s->hand = 1;
    s->cursor = 1;
    return s;

out_free:
    rl__store_free(s);
    return NULL;
}

void
rl__store_free(struct rl_store *s)
{
    uint32_t i;

    if (s == NULL)
        return;
    for (i = 1; i < s->n_recs; i++) {
        if (rec_at(s, i)->alg != ALG_FREE)
            rec_clear(rec_at(s, i));
    }
    for (i = 0; i < s->n_seg; i++)
        free(s->seg[i]);
    free(s->seg);
    free(s->ref);
    free(s->cur.slots);
    free(s->old.slots);
    free(s);
}

/*
 * Hashes (alg, key) and starts loading its home slot(s); returns the hash,
 * for rl__store_prefetch_record and rl__store_get_hashed.
 */
uint64_t
rl__store_prefetch(struct rl_store *s, rl_algorithm alg, const char *key,
                   size_t keylen)
{
    uint64_t hash = key_hash(s, alg, key, keylen);

    __builtin_prefetch(&s->cur.slots[(uint32_t)hash & s->cur.mask]);
    if (s->old.slots != NULL)
        __builtin_prefetch(&s->old.slots[(uint32_t)hash & s->old.mask]);
    return hash;
}

/* The record of the first slot of t's probe run from tag's home with that
   tag, 0 when none. */
static inline uint32_t
first_tagged(const struct table *t, uint32_t tag)
{
    size_t i = tag & t->mask;

    while (t->slots[i].rec != 0 && t->slots[i].tag != tag)
        i = (i + 1) & t->mask;
    return t->slots[i].rec;
}

/* Starts loading the record that the key of this hash most likely has
   (read its slot: best once rl__store_prefetch's load arrived). */
void
rl__store_prefetch_record(struct rl_store *s, uint64_t hash)
{
    uint32_t i = first_tagged(&s->cur, (uint32_t)hash);
    const struct rec *r;

    if (i == 0 && s->old.slots != NULL)
        i = first_tagged(&s->old, (uint32_t)hash);
    if (i == 0)
        return;
    r = rec_at(s, i);
    __builtin_prefetch(r, 1);
    __builtin_prefetch(&r->keylen);
}

rl_algo_state *
rl__store_get(struct rl_store *s, rl_algorithm alg, const char *key,
              size_t keylen, int64_t now_ms)
{
    return rl__store_get_hashed(s, alg, key, keylen,
                                key_hash(s, alg, key, keylen), now_ms);
}

/* rl__store_get, with the hash rl__store_prefetch gave for (alg, key). */
rl_algo_state *
rl__store_get_hashed(struct rl_store *s, rl_algorithm alg, const char *key,
                     size_t keylen, uint64_t hash, int64_t now_ms)
{
    struct table *t;
    size_t at;
    uint32_t i;
    struct rec *r;

    if (s->old.slots != NULL)
        migrate(s, MIGRATE_STEP);
    at = find(s, hash, alg, key, keylen, &t);
    if (at == NOWHERE)
        return insert(s, alg, key, keylen, hash, now_ms);
    i = t->slots[at].rec;
    r = rec_at(s, i);
    if (r->expire_at <= now_ms) {
        rl__algo_state_clear(&r->st);
        r->expire_at = EXPIRE_NEVER;
        s->expired++;
    }
    s->ref[i / 64] |= UINT64_C(1) << (i % 64);
    return &r->st;
}

/* st must be the pointer the last rl__store_get on s returned. */
void
rl__store_set_expiry(struct rl_store *s, rl_algo_state *st,
                     int64_t expire_at_ms)
{
    struct rec *r = (struct rec *)((char *)st - offsetof(struct rec, st));

    (void)s;
    r->expire_at = expire_at_ms;
}

bool
rl__store_del(struct rl_store *s, rl_algorithm alg, const char *key,
              size_t keylen)
{
    struct table *t;
    size_t at = find(s, key_hash(s, alg, key, keylen), alg, key, keylen, &t);
    uint32_t i;

    if (at == NOWHERE)
        return false;
    i = t->slots[at].rec;
    slot_remove(t, at);
    rec_free(s, i);
    return true;
}

/*
 * Drops up to `budget` keys expired at now_ms, looking at no more than
 * SWEEP_SCAN_PER_DROP * budget records (at most all of them), from where
 * the last call stopped.  Records do not move, so calls that each look at
 * k records visit every record once per n_recs / k calls.
 */
int64_t
rl__store_sweep(struct rl_store *s, int64_t now_ms, int64_t budget)
{
    uint32_t limit = s->n_recs - 1;
    uint32_t seen, i = s->cursor;
    int64_t dropped = 0;
    struct rec *r;

    if (budget < 1)
        return 0;
    if ((uint64_t)budget < limit / SWEEP_SCAN_PER_DROP)
        limit = (uint32_t)budget * SWEEP_SCAN_PER_DROP;
    for (seen = 0; seen < limit && dropped < budget; seen++) {
        if (i >= s->n_recs)
            i = 1;
        r = rec_at(s, i);
        if (r->expire_at <= now_ms && r->alg != ALG_FREE) {
            unlink_rec(s, i);
            rec_free(s, i);
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

/* The sizes of the slot arrays: the one keys go to, and the one being
   moved into it (0: none). */
int64_t
rl__store_test_slots(const struct rl_store *s, int64_t *old_slots)
{
    *old_slots = s->old.slots != NULL ? (int64_t)s->old.mask + 1 : 0;
    return (int64_t)s->cur.mask + 1;
}

/* Whether t has a slot for record idx in the probe run of its home, every
   slot from the home up to it full (bounded, unlike rec_slot). */
static bool
in_table(const struct table *t, uint32_t tag, uint32_t idx)
{
    size_t i = tag & t->mask;
    size_t k;

    for (k = 0; t->slots != NULL && k <= t->mask; k++) {
        if (t->slots[i].rec == 0)
            return false;
        if (t->slots[i].rec == idx)
            return t->slots[i].tag == tag;
        i = (i + 1) & t->mask;
    }
    return false;
}

static bool
ref_bit(const struct rl_store *s, uint32_t i)
{
    return (s->ref[i / 64] >> (i % 64)) & 1;
}

/* Counts the held records, each findable, and the free ones, each on the
   free chain with its reference bit clear.  False when one is neither. */
static bool
records_ok(const struct rl_store *s, size_t *held, size_t *freed)
{
    const struct rec *r;
    uint32_t i, tag;

    *held = *freed = 0;
    for (i = 1; i < s->n_recs; i++) {
        r = rec_at(s, i);
        tag = (uint32_t)r->u.hash;
        if (r->alg != ALG_FREE &&
            !in_table(&s->cur, tag, i) && !in_table(&s->old, tag, i))
            return false;
        *held += r->alg != ALG_FREE;
    }
    for (i = s->free_rec; i != 0 && *freed < s->n_recs;
         i = (uint32_t)rec_at(s, i)->u.next_free) {
        r = rec_at(s, i);
        if (i >= s->n_recs || r->alg != ALG_FREE || ref_bit(s, i) ||
            r->expire_at != EXPIRE_NEVER)
            return false;
        (*freed)++;
    }
    for (i = s->n_recs; i < (uint64_t)s->n_seg * s->seg_recs; i++) {
        if (ref_bit(s, i))
            return false;
    }
    return !ref_bit(s, 0) && s->hand >= 1 && s->hand <= s->n_recs;
}

/* The slots of t in use, each referring to a held record under its tag;
   *longest: the longest probe distance so far.  SIZE_MAX: a bad slot. */
static size_t
slots_held(const struct rl_store *s, const struct table *t, size_t *longest)
{
    size_t i, held = 0, dist;
    const struct rec *r;

    for (i = 0; t->slots != NULL && i <= t->mask; i++) {
        if (t->slots[i].rec == 0)
            continue;
        if (t->slots[i].rec >= s->n_recs)
            return SIZE_MAX;
        r = rec_at(s, t->slots[i].rec);
        if (r->alg == ALG_FREE || t->slots[i].tag != (uint32_t)r->u.hash)
            return SIZE_MAX;
        held++;
        dist = (i - t->slots[i].tag) & t->mask;
        if (dist > *longest)
            *longest = dist;
    }
    return held;
}

/* While the slot array doubles: the old slots visited are empty, and the
   new array has room for what is left to move. */
static bool
migration_ok(const struct rl_store *s)
{
    size_t visited, k;

    if (s->old.slots == NULL)
        return s->mig_left == 0;
    visited = s->old.mask - s->mig_left;
    for (k = 1; k <= visited + 1; k++) {
        if (s->old.slots[(s->mig - k) & s->old.mask].rec != 0)
            return false;
    }
    return s->old.mask + 1 == (s->cur.mask + 1) / 2;
}

/*
 * Checks the invariants: every held record findable from its home slot
 * under its tag in one of the slot arrays, one slot per key, free records
 * on the free chain, the reference bits, the doubling, the load and the
 * bound.  Returns the longest probe distance, or -1 when something does
 * not hold.
 */
int64_t
rl__store_verify(const struct rl_store *s)
{
    size_t held, freed, in_cur, in_old, longest = 0;

    if (!records_ok(s, &held, &freed) || !migration_ok(s))
        return -1;
    in_cur = slots_held(s, &s->cur, &longest);
    in_old = slots_held(s, &s->old, &longest);
    if (in_cur == SIZE_MAX || in_old == SIZE_MAX)
        return -1;
    if (held != s->count || in_cur + in_old != s->count ||
        held + freed + 1 != s->n_recs || s->count > s->max_keys ||
        s->count > (s->cur.mask + 1) / 4 * 3)
        return -1;
    return (int64_t)longest;
}
