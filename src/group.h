/*
 * group.h: checks answered with one callback (group.c): batches,
 * multi-limit checks and the cache warm-up's reads.
 */
#ifndef RL_GROUP_H
#define RL_GROUP_H

#include "rl_private.h"

enum rl_grp_kind {
    RL_GRP_BATCH = 0,  /* rl_batch_async: independent items, in chunks */
    RL_GRP_ALL = 1,    /* rl_check_all_async: one all-or-nothing unit */
    RL_GRP_WARM = 2    /* rl_cache_warm_async: peeks that fill the cache */
};

struct rl_item {
    const char *key;   /* into the group's arena, NUL-terminated */
    size_t len;
    int64_t max;
    int64_t window;
    int64_t cost;
    bool invalid;      /* out of bounds: answered RL_ERR_INVALID */
};

struct rl_group {
    TAILQ_ENTRY(rl_group) link; /* rl->groups, then rl->groups_done */
    struct rl_limiter *rl;
    uint8_t kind;               /* enum rl_grp_kind */
    bool timed_out;             /* the batch's timeout passed */
    size_t n;                   /* items */
    size_t next;                /* items given a request so far */
    size_t left;                /* slots not yet filled */
    size_t live;                /* requests not yet delivered */
    size_t cached;              /* warm-up: entries its peeks stored in
                                   the cache (rl__cache_learn) */
    struct rl_item *items;
    rl_result *res;
    struct rl_req **reqs;       /* item's request while it lives */
    rl_batch_cb cb;             /* batch, multi-limit */
    rl_warm_cb wcb;             /* warm-up */
    void *arg;
    struct event *timer;        /* the batch's timeout, or NULL */
};

/*
 * A group of n items copied from reqs (keys included).  A batch marks an
 * item out of bounds to answer it RL_ERR_INVALID alone; the other kinds
 * refuse the call then.  RL_OK, or, the first that applies:
 * RL_ERR_INVALID, RL_ERR_SHUTDOWN (rl_free was called), RL_ERR_OVERLOAD
 * (the requests it keeps pending at once would pass max_pending),
 * RL_ERR_NOMEM.  The caller sets cb or wcb and arg, then calls
 * rl__group_start.
 */
int rl__group_new(struct rl_limiter *rl, enum rl_grp_kind kind,
                  const rl_request *reqs, size_t n, struct rl_group **out);
/* Submits the group's first requests (RL_OK), or frees the group and
   returns RL_ERR_NOMEM (nothing submitted, no callback). */
int rl__group_start(struct rl_group *g);
/* Frees a group that never started, or one left at rl_free. */
void rl__group_discard(struct rl_group *g);

/* req (of a group) was delivered: its result fills its slot. */
void rl__group_item_done(struct rl_req *req);
/* Runs the callbacks of the groups whose slots are all filled. */
void rl__group_deliver(struct rl_limiter *rl);
/* An all-or-nothing group failed with why: all its requests complete
   through the fallback with one verdict. */
void rl__group_fallback(struct rl_group *g, int why);

#endif /* RL_GROUP_H */
