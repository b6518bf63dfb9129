/*
 * cache.h: the decision cache, as a pure module.
 *
 * When Redis denies a key, the library remembers "blocked until T" for that
 * key and limit; checks of that key before T are answered here, denied,
 * without a Redis command, so that a hot abuser costs Redis nothing until
 * its block ends.  This is the map behind it: at most max_size entries,
 * least recently used evicted first, each entry dropped at its own expiry.
 *
 * No libevent, no clock, no Redis: time comes in as int64 ms (the caller's
 * clock, the same for every call), and the caller arms its one sweep timer
 * from rl__cache_next_expiry.  One cache is used from one thread.
 *
 * Keys are binary (NUL bytes allowed), 1..1024 bytes (the caller validated
 * them; a key is never NULL); the cache copies them, so the caller's buffer
 * need only live during the call.  An entry is per key, whatever its
 * limit: it holds the limit (max, window) and the cost of the check that
 * was denied, and answers only checks of that limit at least that heavy.
 */
#ifndef RL_CACHE_H
#define RL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rl_cache;

/* What a hit answers, both in ms from now_ms. */
struct rl_cache_entry_info {
    int64_t retry_after_ms;   /* blocked_until - now, > 0 */
    int64_t reset_ms;         /* max(reset_at - now, retry_after_ms) */
};

/* The counts since rl__cache_new (rl__cache_clear keeps them). */
struct rl_cache_tally {
    int64_t hits;             /* lookups answered */
    int64_t misses;           /* lookups not answered */
    int64_t size;             /* entries held now */
    int64_t evictions;        /* least recently used, dropped for room */
    int64_t expired;          /* dropped at their expiry (lookup, sweep) */
};

/*
 * A cache of at most max_size entries (>= 1; at most 2^31, whatever
 * max_size says), keyed with a secret hash key drawn from the system.
 * Memory grows with the entries held, not with max_size.  NULL when
 * max_size < 1, when out of memory, or when no random bytes are to be had
 * for the hash key.  Free with rl__cache_free.
 */
struct rl_cache *rl__cache_new(int64_t max_size);

/* Frees the cache and its entries.  NULL is allowed. */
void rl__cache_free(struct rl_cache *c);

/*
 * Whether a check (key, max, window, cost) at now_ms is known blocked: an
 * entry for key exists, now_ms < its blocked_until, its max and window
 * equal the check's, and the check's cost >= the entry's cost (a heavier
 * check is blocked at least as long; a lighter one may pass, so it goes to
 * Redis).  Then returns true with *out: retry_after_ms = blocked_until -
 * now (> 0), reset_ms = max(reset_at - now, retry_after_ms); the entry
 * becomes the most recently used; counts a hit.  Else returns false (*out
 * untouched) and counts a miss: an entry found expired (now_ms >=
 * blocked_until, whatever its limit) is dropped and counted expired; an
 * entry of another limit, or of a heavier cost, is left alone (the check
 * bypasses it, and it is not made more recent).  No allocation; O(1),
 * but for dropping an expired entry (O(log n) in the expiry heap); an
 * empty cache answers without hashing the key (so does rl__cache_del).
 */
bool rl__cache_lookup(struct rl_cache *c, const void *key, size_t keylen,
                      int64_t max, int64_t window, int64_t cost,
                      int64_t now_ms, struct rl_cache_entry_info *out);

/*
 * Records a denial: key blocked until blocked_until_ms (absolute, later
 * than now) for (max, window, cost); reset_at_ms absolute (>=
 * blocked_until_ms).  Replaces the entry of the same key, whatever its
 * limit (not counted), and makes it the most recently used.  A new key in
 * a full cache first evicts the least recently used entry (counted as an
 * eviction, even if it had expired: put knows no time).  Returns RL_OK, or
 * RL_ERR_NOMEM (the cache is then left as it was).  O(1), but for the
 * expiry heap: O(log n), and usually O(1) for a new entry.
 */
int rl__cache_put(struct rl_cache *c, const void *key, size_t keylen,
                  int64_t max, int64_t window, int64_t cost,
                  int64_t blocked_until_ms, int64_t reset_at_ms);

/* Drops the key's entry if any (a reset, or Redis admitted the key);
   returns whether one was there.  Not counted as expired or evicted. */
bool rl__cache_del(struct rl_cache *c, const void *key, size_t keylen);

/* Drops every entry; the counts are kept (size drops to 0).  O(n). */
void rl__cache_clear(struct rl_cache *c);

/*
 * Drops up to budget entries expired at now_ms (blocked_until <= now_ms),
 * the earliest first, counting them expired; returns how many.  Touches
 * no unexpired entry: O(dropped x log n).
 */
int64_t rl__cache_sweep(struct rl_cache *c, int64_t now_ms, int64_t budget);

/*
 * The earliest blocked_until of the entries held (exact, never later), or
 * INT64_MAX when empty: arm the sweep timer for then, and only with work.
 * O(1).
 */
int64_t rl__cache_next_expiry(const struct rl_cache *c);

/* Entries held now. */
int64_t rl__cache_size(const struct rl_cache *c);
/* The counts into *out. */
void rl__cache_stats(const struct rl_cache *c, struct rl_cache_tally *out);

/*
 * Test hooks (tests/test_cache.c), not for use by the library.
 * rl__cache_hash: the hash the cache gives key.
 * rl__cache_test_hash: hash with the secret (k0, k1) and keep only the
 * bits of mask of each hash (forced collisions); empty cache only.
 * rl__cache_peek: the entry of key, if any, into *until, *reset_at, *max,
 * *window, *cost (each may be NULL), changing nothing, counting nothing.
 * rl__cache_verify: 0 when every invariant holds (table, list, heap,
 * counts), else a non-zero code naming the broken one.
 */
uint64_t rl__cache_hash(const struct rl_cache *c, const void *key,
                        size_t keylen);
void rl__cache_test_hash(struct rl_cache *c, uint64_t k0, uint64_t k1,
                         uint64_t mask);
bool rl__cache_peek(const struct rl_cache *c, const void *key,
                    size_t keylen, int64_t *until, int64_t *reset_at,
                    int64_t *max, int64_t *window, int64_t *cost);
int rl__cache_verify(const struct rl_cache *c);

#endif /* RL_CACHE_H */
