/*
 * breaker.h: the circuit breaker in front of Redis, as a pure module.
 *
 * No libevent, no clock, no allocation: time comes in as int64 ms (the
 * caller's monotonic clock), and the breaker tells its caller when it
 * wants to be ticked (rl__breaker_next_deadline).  The whole state lives
 * in struct rl_breaker, which the caller embeds; its fields are private
 * to breaker.c and read through the functions below.  One breaker is used
 * from one thread.  See breaker.c for the state machine.
 *
 * Protocol of the caller, once per check:
 *
 *   t = rl__breaker_allow(b, now);
 *   if (t == RL_BRK_REFUSED)
 *       answer through the fallback with RL_ERR_CIRCUIT_OPEN;
 *   else
 *       send it, then exactly once rl__breaker_record(b, t, ok, ms, now)
 *       when its outcome is known (or rl__breaker_cancel(b, t) when it
 *       was never sent to Redis after all).
 *
 * ok is false for a Redis error reply, a timeout, a disconnect or a reply
 * of the wrong shape; a denial by the limit is a success.  The ticket ties
 * an outcome to the period that let the call through, so an outcome from
 * an earlier period (a reply arriving after the breaker opened) is
 * ignored rather than counted against the present one.
 */
#ifndef RL_BREAKER_H
#define RL_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "ratelimit.h"

/* The same values, in the same order, as the public breaker states. */
enum rl_brk_state {
    RL_BRK_CLOSED = 0,    /* calls pass, outcomes are judged */
    RL_BRK_OPEN = 1,      /* calls are refused */
    RL_BRK_HALF_OPEN = 2  /* half_open_probes calls pass, as probes */
};

#define RL_BRK_N_STATES 3

/* Operator override (rl__breaker_force). */
enum rl_brk_mode {
    RL_BRK_AUTO = 0,        /* the state machine decides */
    RL_BRK_FORCE_OPEN = 1,  /* refuse every call until released */
    RL_BRK_FORCE_CLOSED = 2 /* let every call through until released */
};

/* Bounds checked by rl__breaker_params_validate. */
#define RL_BRK_THRESHOLD_MAX 1000000         /* failure_threshold */
#define RL_BRK_TIMEOUT_MAX 100000000000LL    /* recovery timeouts, ms */
#define RL_BRK_PROBES_MAX 1000               /* half_open_probes */
#define RL_BRK_WINDOW_MAX 1024               /* window_size */
#define RL_BRK_SLOW_MS_MAX 100000000000LL    /* slow_call_ms */

/* Defaults of rl__breaker_params_init. */
#define RL_BRK_DEF_THRESHOLD 5
#define RL_BRK_DEF_RECOVERY_MS 30000
#define RL_BRK_DEF_PROBES 1
#define RL_BRK_DEF_WINDOW 100
#define RL_BRK_DEF_MIN_CALLS 20
#define RL_BRK_DEF_SLOW_MS 100
/* max_recovery_timeout_ms == 0 means this many recovery timeouts. */
#define RL_BRK_MAX_WAIT_FACTOR 8

/* A ticket: non-zero lets one call through, to be handed back. */
#define RL_BRK_REFUSED UINT64_C(0)

struct rl_breaker_params {
    int64_t failure_threshold;       /* 1..10^6 consecutive failures open
                                        it; 5 */
    int64_t recovery_timeout_ms;     /* 1..RL_BRK_TIMEOUT_MAX: first wait in
                                        open before half-open; 30000 */
    int64_t max_recovery_timeout_ms; /* cap of the doubled wait: 0 (8 x
                                        recovery_timeout_ms, at most
                                        RL_BRK_TIMEOUT_MAX), or
                                        recovery_timeout_ms..
                                        RL_BRK_TIMEOUT_MAX; 0 */
    int64_t half_open_probes;        /* 1..RL_BRK_PROBES_MAX calls let
                                        through in half-open; 1 */
    int64_t window_size;             /* 1..RL_BRK_WINDOW_MAX most recent
                                        calls judged for the rates; 100 */
    int64_t minimum_calls;           /* 1..window_size calls in the window
                                        before a rate is judged; 20 */
    int64_t failure_rate_pct;        /* 0 (off) or 1..100: open when at
                                        least this share failed; 0 */
    int64_t slow_call_rate_pct;      /* 0 (off) or 1..100: open when at
                                        least this share was slow; 0 */
    int64_t slow_call_ms;            /* 1..RL_BRK_SLOW_MS_MAX: a call
                                        slower than this is slow; 100 */
};

struct rl_breaker_stats {
    int64_t transitions[RL_BRK_N_STATES]; /* transitions into each state,
                                             indexed by enum rl_brk_state */
    int64_t trips;     /* openings by failures (closed or half-open ->
                          open); forced openings are not trips */
    int64_t ignored;   /* outcomes recorded but not judged: stale
                          tickets, forced modes */
    int64_t refused;   /* calls refused by rl__breaker_allow */
};

/*
 * Called on every change of state, after the change (reading the breaker
 * from it sees the new state).  reason is a short English phrase such as
 * "5 consecutive failures", static or in the breaker, valid only during
 * the call.  It runs from inside allow, record, tick and force, so it must
 * not call the breaker's mutating functions, and whatever user code it
 * leads to should be deferred to the loop.
 */
typedef void (*rl__breaker_cb)(enum rl_brk_state from, enum rl_brk_state to,
                               const char *reason, void *arg);

#define RL_BRK_WORDS (RL_BRK_WINDOW_MAX / 64)

/* Private to breaker.c; embedded by the caller. */
struct rl_breaker {
    struct rl_breaker_params p;  /* validated; max_recovery resolved */
    rl__breaker_cb cb;
    void *cb_arg;
    enum rl_brk_state state;
    enum rl_brk_mode mode;
    uint64_t epoch;          /* the ticket of this period; >= 1 */
    int64_t open_until;      /* open, automatic: half-open from then */
    int64_t wait_ms;         /* the wait of the last (or next) opening */
    int64_t consecutive;     /* closed: failures in a row */
    int64_t probes_out;      /* half-open: probes let through */
    int64_t probes_ok;       /* half-open: probes that succeeded */
    uint64_t fail_bits[RL_BRK_WORDS]; /* the window: a ring of bits */
    uint64_t slow_bits[RL_BRK_WORDS];
    int64_t win_next;        /* the slot of the next call */
    int64_t win_len;         /* calls in the window, <= window_size */
    int64_t win_fail;        /* of them failed */
    int64_t win_slow;        /* of them slow */
    struct rl_breaker_stats st;
    char reason[96];
};

/* Fills every default (documented on each field). */
void rl__breaker_params_init(struct rl_breaker_params *p);

/* RL_OK, or RL_ERR_INVALID when a field is out of its bounds. */
int rl__breaker_params_validate(const struct rl_breaker_params *p);

/*
 * Makes b a closed, automatic breaker with the parameters p (copied) and
 * the transition callback cb (NULL: none) with its arg.  Returns RL_OK,
 * or RL_ERR_INVALID when p is invalid (b is then left untouched).
 */
int rl__breaker_init(struct rl_breaker *b,
                     const struct rl_breaker_params *p, rl__breaker_cb cb,
                     void *cb_arg);

/*
 * Asks whether one call may go to Redis at now.  Returns a ticket to hand
 * back with its outcome, or RL_BRK_REFUSED: then the caller answers with
 * RL_ERR_CIRCUIT_OPEN without touching Redis.  Closed: every call passes.
 * Open: none passes, except that once now reaches the deadline of an
 * automatic opening the breaker goes half-open here (as rl__breaker_tick
 * would).  Half-open: the first half_open_probes calls pass, as probes,
 * the others are refused.  O(1).
 */
uint64_t rl__breaker_allow(struct rl_breaker *b, int64_t now);

/*
 * The outcome of a call let through with `ticket`: ok (success, denials
 * included) or failed, and its latency in ms.  Judged only when the
 * ticket is of the present period (closed, or half-open) and the mode is
 * automatic; otherwise ignored (counted in stats.ignored).  A ticket must
 * be recorded or cancelled exactly once.  O(1).
 */
void rl__breaker_record(struct rl_breaker *b, uint64_t ticket, bool ok,
                        int64_t latency_ms, int64_t now);

/*
 * Gives back a ticket whose call never reached Redis (the caller answered
 * it some other way), so that a half-open probe slot is not lost.  Does
 * nothing for RL_BRK_REFUSED, stale tickets and closed tickets.
 */
void rl__breaker_cancel(struct rl_breaker *b, uint64_t ticket);

/*
 * Applies the passage of time: an automatic opening whose deadline is
 * reached at now goes half-open.  Call it when the deadline given by
 * rl__breaker_next_deadline comes; calling it at other times is harmless.
 */
void rl__breaker_tick(struct rl_breaker *b, int64_t now);

/*
 * The server is known to answer again (a connection was made and its
 * handshake answered): an automatic opening goes half-open now rather
 * than at its deadline, so probes find out at once whether Redis decides
 * again.  Does nothing in other states or when forced.
 */
void rl__breaker_server_back(struct rl_breaker *b);

/*
 * The absolute time (ms, the caller's clock) at which rl__breaker_tick has
 * something to do, or -1 when it has nothing (not open, or forced).  It
 * changes only when the state or mode changes, i.e. in the callback or
 * after a call to record, tick or force.
 */
int64_t rl__breaker_next_deadline(const struct rl_breaker *b);

/*
 * Operator override.  RL_BRK_FORCE_OPEN: open and refuse every call until
 * released, without a recovery deadline.  RL_BRK_FORCE_CLOSED: closed and
 * let every call through until released, judging nothing.  RL_BRK_AUTO:
 * back to the state machine, from a fresh closed state (counts cleared,
 * wait back to recovery_timeout_ms); nothing when already automatic.
 * Every change of mode starts a new period (older tickets turn stale).
 * Returns RL_OK, or RL_ERR_INVALID for an unknown mode (nothing changed).
 */
int rl__breaker_force(struct rl_breaker *b, int mode, int64_t now);

enum rl_brk_state rl__breaker_state(const struct rl_breaker *b);
enum rl_brk_mode rl__breaker_mode(const struct rl_breaker *b);
/* "closed", "open", "half-open" (static); "unknown" for other values. */
const char *rl__breaker_state_name(int state);
void rl__breaker_stats(const struct rl_breaker *b,
                       struct rl_breaker_stats *out);

/*
 * Test hook: recounts the window from its bits and checks the invariants;
 * returns 0 when consistent, or a non-zero code naming the broken one.
 */
int rl__breaker_verify(const struct rl_breaker *b);

#endif /* RL_BREAKER_H */
