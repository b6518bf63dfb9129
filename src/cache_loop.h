/*
 * cache_loop.h: the decision cache on the event loop (cache_loop.c): the
 * pure map of cache.c given a clock, a sweep timer, the check path's
 * lookups and what Redis's answers teach it.
 */
#ifndef RL_CACHE_LOOP_H
#define RL_CACHE_LOOP_H

#include "rl_private.h"

/* Creates the cache when cache.enabled (Redis backend): RL_OK or NOMEM. */
int rl__cache_init(struct rl_limiter *rl);
void rl__cache_destroy(struct rl_limiter *rl);

/* A check the cache knows is blocked is completed (source cache, denied)
   and true returned; else false (the backend decides it). */
bool rl__cache_answer(struct rl_limiter *rl, struct rl_req *req);
/* The backend decided req (status RL_OK): a denial is remembered until
   the check could pass, an admission forgets the key.  A warm-up's peek
   counts in its group's `cached` only when an entry was stored: not for
   an admission, a denial by another limit of a multi-limit check, an
   answer that came after the moment it could pass, or no memory. */
void rl__cache_learn(struct rl_req *req);
/* Forgets key (a reset). */
void rl__cache_forget(struct rl_limiter *rl, const char *key, size_t keylen);

/* A cache counter (RL_METRIC_CACHE_*) for rl_metric; 0 with no cache. */
int64_t rl__cache_metric(const struct rl_limiter *rl, int id);

#endif /* RL_CACHE_LOOP_H */
