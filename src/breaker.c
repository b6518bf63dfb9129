/*
 * breaker.c: the circuit breaker that stops sending checks to a Redis that
 * keeps failing, so that they are answered at once by the fallback
 * (RL_ERR_CIRCUIT_OPEN) instead of each waiting for its own timeout, and
 * that lets a few calls through now and then to find out when Redis is
 * back.  It is a pure state machine: time is passed in, and the caller
 * arms its one timer from rl__breaker_next_deadline().
 *
 *            failures (see below)              recovery timeout
 *   CLOSED --------------------------> OPEN --------------------> HALF-OPEN
 *     ^                                 ^                             |
 *     |                                 +-- a probe failed, wait x2 --+
 *     +----- half_open_probes probes succeeded, wait back to base ----+
 *
 * CLOSED lets every call through and judges each outcome.  It opens when
 * failure_threshold calls in a row failed, or, once the window (a ring of
 * the window_size most recent outcomes, two bitsets with running counts)
 * holds at least minimum_calls outcomes, when the share of failed calls
 * reaches failure_rate_pct, or the share of calls slower than
 * slow_call_ms reaches slow_call_rate_pct (either rate 0: not judged).
 * A slow call counts as slow whether it failed or not.
 *
 * OPEN refuses every call for the current wait: recovery_timeout_ms after
 * an opening from CLOSED, doubled (up to max_recovery_timeout_ms) after
 * each failed probe round, back to recovery_timeout_ms once closed.  When
 * the wait is over (rl__breaker_tick, or the first rl__breaker_allow at or
 * after the deadline) it goes HALF-OPEN.
 *
 * HALF-OPEN lets the first half_open_probes calls through, as probes, and
 * refuses the rest.  The verdict comes with the outcomes: the first probe
 * that fails (or, with the slow-call rate on, is slow) opens it again at
 * once; when half_open_probes probes have succeeded it closes.
 *
 * Outcomes.  Each allowed call carries a ticket: the number of the period
 * (epoch) that let it through, bumped on every change of state or mode.
 * An outcome is judged only if its ticket is of the present period and the
 * mode is automatic; others are stale (the reply of a call sent before the
 * breaker opened, a timeout of a call from the previous closed period) and
 * are only counted as ignored.  So an outcome recorded while OPEN is
 * always ignored, and while HALF-OPEN only the probes' outcomes count.
 *
 * The operator can force the breaker open or closed, where it stays, and
 * release it to automatic, which starts a fresh CLOSED period.  Every
 * change of state is counted per target state and reported through the
 * callback with a reason; openings caused by failures are also counted as
 * trips.  rl__breaker_allow and rl__breaker_record are O(1): no loop over
 * the window, no allocation.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "breaker.h"

/* ---- parameters ---- */

void
rl__breaker_params_init(struct rl_breaker_params *p)
{
    p->failure_threshold = RL_BRK_DEF_THRESHOLD;
    p->recovery_timeout_ms = RL_BRK_DEF_RECOVERY_MS;
    p->max_recovery_timeout_ms = 0;
    p->half_open_probes = RL_BRK_DEF_PROBES;
    p->window_size = RL_BRK_DEF_WINDOW;
    p->minimum_calls = RL_BRK_DEF_MIN_CALLS;
    p->failure_rate_pct = 0;
    p->slow_call_rate_pct = 0;
    p->slow_call_ms = RL_BRK_DEF_SLOW_MS;
}

static bool
in_range(int64_t v, int64_t lo, int64_t hi)
{
    return v >= lo && v <= hi;
}

int
rl__breaker_params_validate(const struct rl_breaker_params *p)
{
    bool ok = true;

    ok = ok && in_range(p->failure_threshold, 1, RL_BRK_THRESHOLD_MAX);
    ok = ok && in_range(p->recovery_timeout_ms, 1, RL_BRK_TIMEOUT_MAX);
    ok = ok && (p->max_recovery_timeout_ms == 0 ||
                in_range(p->max_recovery_timeout_ms, p->recovery_timeout_ms,
                         RL_BRK_TIMEOUT_MAX));
    ok = ok && in_range(p->half_open_probes, 1, RL_BRK_PROBES_MAX);
    ok = ok && in_range(p->window_size, 1, RL_BRK_WINDOW_MAX);
    ok = ok && in_range(p->minimum_calls, 1, p->window_size);
    ok = ok && in_range(p->failure_rate_pct, 0, 100);
    ok = ok && in_range(p->slow_call_rate_pct, 0, 100);
    ok = ok && in_range(p->slow_call_ms, 1, RL_BRK_SLOW_MS_MAX);
    return ok ? RL_OK : RL_ERR_INVALID;
}

/* The cap of the doubled wait: the given one, or 8 x the first wait. */
static int64_t
resolve_max_wait(const struct rl_breaker_params *p)
{
    if (p->max_recovery_timeout_ms != 0)
        return p->max_recovery_timeout_ms;
    if (p->recovery_timeout_ms > RL_BRK_TIMEOUT_MAX / RL_BRK_MAX_WAIT_FACTOR)
        return RL_BRK_TIMEOUT_MAX;
    return p->recovery_timeout_ms * RL_BRK_MAX_WAIT_FACTOR;
}

/* ---- the window ---- */

static void
window_clear(struct rl_breaker *b)
{
    memset(b->fail_bits, 0, sizeof(b->fail_bits));
    memset(b->slow_bits, 0, sizeof(b->slow_bits));
    b->win_next = 0;
    b->win_len = 0;
    b->win_fail = 0;
    b->win_slow = 0;
}

/* Sets or clears the bit of slot i in a bitset; returns its old value. */
static bool
bit_swap(uint64_t *bits, int64_t i, bool v)
{
    uint64_t mask = UINT64_C(1) << (i & 63);
    uint64_t *w = &bits[i >> 6];
    bool old = (*w & mask) != 0;

    if (v)
        *w |= mask;
    else
        *w &= ~mask;
    return old;
}

/* Adds one outcome, pushing out the oldest when the window is full. */
static void
window_push(struct rl_breaker *b, bool failed, bool slow)
{
    int64_t i = b->win_next;
    bool old_failed = bit_swap(b->fail_bits, i, failed);
    bool old_slow = bit_swap(b->slow_bits, i, slow);

    if (b->win_len == b->p.window_size) {
        b->win_fail -= old_failed;
        b->win_slow -= old_slow;
    } else {
        b->win_len++;
    }
    b->win_fail += failed;
    b->win_slow += slow;
    b->win_next = i + 1 == b->p.window_size ? 0 : i + 1;
}

/* ---- transitions ---- */

/* Starts a new period in the present state: older tickets turn stale. */
static void
new_period(struct rl_breaker *b)
{
    b->epoch++;
    b->consecutive = 0;
    b->probes_out = 0;
    b->probes_ok = 0;
    window_clear(b);
}

static void
transition(struct rl_breaker *b, enum rl_brk_state to, const char *reason)
{
    enum rl_brk_state from = b->state;

    b->state = to;
    new_period(b);
    b->st.transitions[to]++;
    if (b->cb != NULL)
        b->cb(from, to, reason, b->cb_arg);
}

/* Opens because of failures, for wait ms from now. */
static void
trip(struct rl_breaker *b, int64_t now, int64_t wait)
{
    b->wait_ms = wait;
    b->open_until = now > INT64_MAX - wait ? INT64_MAX : now + wait;
    b->st.trips++;
    transition(b, RL_BRK_OPEN, b->reason);
}

/* The wait is over: half-open, if the opening is automatic and due. */
static void
maybe_half_open(struct rl_breaker *b, int64_t now)
{
    if (b->state == RL_BRK_OPEN && b->mode == RL_BRK_AUTO &&
        now >= b->open_until)
        transition(b, RL_BRK_HALF_OPEN, "recovery timeout");
}

/* ---- outcomes ---- */

/* Judges one outcome in CLOSED: the consecutive count, then the rates. */
static void
closed_record(struct rl_breaker *b, bool failed, bool slow, int64_t now)
{
    const struct rl_breaker_params *p = &b->p;

    window_push(b, failed, slow);
    b->consecutive = failed ? b->consecutive + 1 : 0;
    if (b->consecutive >= p->failure_threshold) {
        snprintf(b->reason, sizeof(b->reason),
                 "%" PRId64 " consecutive failures", b->consecutive);
    } else if (b->win_len < p->minimum_calls) {
        return;
    } else if (p->failure_rate_pct > 0 &&
               b->win_fail * 100 >= p->failure_rate_pct * b->win_len) {
        snprintf(b->reason, sizeof(b->reason),
                 "failure rate %" PRId64 "%% over %" PRId64 " calls",
                 b->win_fail * 100 / b->win_len, b->win_len);
    } else if (p->slow_call_rate_pct > 0 &&
               b->win_slow * 100 >= p->slow_call_rate_pct * b->win_len) {
        snprintf(b->reason, sizeof(b->reason),
                 "slow-call rate %" PRId64 "%% over %" PRId64 " calls",
                 b->win_slow * 100 / b->win_len, b->win_len);
    } else {
        return;
    }
    trip(b, now, b->wait_ms);
}

/* Judges one probe's outcome in HALF-OPEN. */
static void
half_open_record(struct rl_breaker *b, bool failed, bool slow,
                 int64_t latency_ms, int64_t now)
{
    int64_t wait;

    if (b->probes_ok >= b->probes_out) {
        b->st.ignored++; /* more outcomes than probes: recorded twice */
        return;
    }
    if (failed || (slow && b->p.slow_call_rate_pct > 0)) {
        wait = b->wait_ms > b->p.max_recovery_timeout_ms / 2
                   ? b->p.max_recovery_timeout_ms
                   : b->wait_ms * 2;
        if (failed)
            snprintf(b->reason, sizeof(b->reason),
                     "probe failed, waiting %" PRId64 " ms", wait);
        else
            snprintf(b->reason, sizeof(b->reason),
                     "probe slow (%" PRId64 " ms), waiting %" PRId64 " ms",
                     latency_ms, wait);
        trip(b, now, wait);
        return;
    }
    b->probes_ok++;
    if (b->probes_ok < b->p.half_open_probes)
        return;
    b->wait_ms = b->p.recovery_timeout_ms;
    snprintf(b->reason, sizeof(b->reason), "probes succeeded (%" PRId64 ")",
             b->probes_ok);
    transition(b, RL_BRK_CLOSED, b->reason);
}

void
rl__breaker_record(struct rl_breaker *b, uint64_t ticket, bool ok,
                   int64_t latency_ms, int64_t now)
{
    bool slow = latency_ms > b->p.slow_call_ms;

    if (ticket != b->epoch || b->mode != RL_BRK_AUTO) {
        b->st.ignored++;
        return;
    }
    if (b->state == RL_BRK_CLOSED)
        closed_record(b, !ok, slow, now);
    else if (b->state == RL_BRK_HALF_OPEN)
        half_open_record(b, !ok, slow, latency_ms, now);
    else
        b->st.ignored++; /* not reached: OPEN hands out no ticket */
}

/* ---- the caller's questions ---- */

int
rl__breaker_init(struct rl_breaker *b, const struct rl_breaker_params *p,
                 rl__breaker_cb cb, void *cb_arg)
{
    if (rl__breaker_params_validate(p) != RL_OK)
        return RL_ERR_INVALID;
    memset(b, 0, sizeof(*b));
    b->p = *p;
    b->p.max_recovery_timeout_ms = resolve_max_wait(p);
    b->cb = cb;
    b->cb_arg = cb_arg;
    b->state = RL_BRK_CLOSED;
    b->mode = RL_BRK_AUTO;
    b->epoch = 1;
    b->wait_ms = p->recovery_timeout_ms;
    return RL_OK;
}

uint64_t
rl__breaker_allow(struct rl_breaker *b, int64_t now)
{
    if (b->state == RL_BRK_CLOSED)
        return b->epoch;
    maybe_half_open(b, now);
    if (b->state == RL_BRK_HALF_OPEN &&
        b->probes_out < b->p.half_open_probes) {
        b->probes_out++;
        return b->epoch;
    }
    b->st.refused++;
    return RL_BRK_REFUSED;
}

void
rl__breaker_cancel(struct rl_breaker *b, uint64_t ticket)
{
    if (ticket == b->epoch && b->state == RL_BRK_HALF_OPEN &&
        b->probes_out > b->probes_ok)
        b->probes_out--;
}

void
rl__breaker_tick(struct rl_breaker *b, int64_t now)
{
    maybe_half_open(b, now);
}

void
rl__breaker_server_back(struct rl_breaker *b)
{
    if (b->state == RL_BRK_OPEN && b->mode == RL_BRK_AUTO)
        transition(b, RL_BRK_HALF_OPEN, "Redis answers again");
}

int64_t
rl__breaker_next_deadline(const struct rl_breaker *b)
{
    if (b->state == RL_BRK_OPEN && b->mode == RL_BRK_AUTO)
        return b->open_until;
    return -1;
}

/* ---- operator override ---- */

/* Puts the breaker in `state` for a new mode, with or without a change. */
static void
enter_mode(struct rl_breaker *b, enum rl_brk_state state, const char *why)
{
    if (b->state != state)
        transition(b, state, why);
    else
        new_period(b);
}

int
rl__breaker_force(struct rl_breaker *b, int mode, int64_t now)
{
    (void)now; /* forced states have no deadline; kept for symmetry */
    if (mode != RL_BRK_AUTO && mode != RL_BRK_FORCE_OPEN &&
        mode != RL_BRK_FORCE_CLOSED)
        return RL_ERR_INVALID;
    if ((int)b->mode == mode)
        return RL_OK;
    b->mode = (enum rl_brk_mode)mode;
    b->wait_ms = b->p.recovery_timeout_ms;
    if (mode == RL_BRK_FORCE_OPEN)
        enter_mode(b, RL_BRK_OPEN, "forced open");
    else if (mode == RL_BRK_FORCE_CLOSED)
        enter_mode(b, RL_BRK_CLOSED, "forced closed");
    else
        enter_mode(b, RL_BRK_CLOSED, "released");
    return RL_OK;
}

/* ---- reading ---- */

enum rl_brk_state
rl__breaker_state(const struct rl_breaker *b)
{
    return b->state;
}

enum rl_brk_mode
rl__breaker_mode(const struct rl_breaker *b)
{
    return b->mode;
}

const char *
rl__breaker_state_name(int state)
{
    switch (state) {
    case RL_BRK_CLOSED:
        return "closed";
    case RL_BRK_OPEN:
        return "open";
    case RL_BRK_HALF_OPEN:
        return "half-open";
    default:
        return "unknown";
    }
}

void
rl__breaker_stats(const struct rl_breaker *b, struct rl_breaker_stats *out)
{
    *out = b->st;
}

/* ---- test hook ---- */

static int64_t
popcount_bits(const uint64_t *bits)
{
    int64_t n = 0;
    int i;

    for (i = 0; i < RL_BRK_WORDS; i++)
        n += __builtin_popcountll(bits[i]);
    return n;
}

/* Whether every slot outside the window's filled part is clear. */
static bool
unused_slots_clear(const struct rl_breaker *b)
{
    int64_t i = b->win_len;
    uint64_t used;
    int w;

    for (w = 0; w < RL_BRK_WORDS; w++, i -= 64) {
        used = i >= 64 ? ~UINT64_C(0)
               : i <= 0 ? 0 : (UINT64_C(1) << i) - 1;
        if ((b->fail_bits[w] | b->slow_bits[w]) & ~used)
            return false;
    }
    return true;
}

int
rl__breaker_verify(const struct rl_breaker *b)
{
    const struct rl_breaker_params *p = &b->p;

    if (b->epoch < 1 || (unsigned)b->state >= RL_BRK_N_STATES)
        return 1;
    if (b->win_len < 0 || b->win_len > p->window_size)
        return 2;
    if (b->win_next < 0 || b->win_next >= p->window_size ||
        (b->win_len < p->window_size && b->win_next != b->win_len))
        return 3;
    if (popcount_bits(b->fail_bits) != b->win_fail ||
        popcount_bits(b->slow_bits) != b->win_slow)
        return 4;
    if (!unused_slots_clear(b))
        return 5;
    if (b->state == RL_BRK_CLOSED && b->mode == RL_BRK_AUTO &&
        b->consecutive >= p->failure_threshold)
        return 6;
    if (b->probes_ok < 0 || b->probes_ok > b->probes_out ||
        b->probes_out > p->half_open_probes)
        return 7;
    if ((b->mode == RL_BRK_FORCE_OPEN && b->state != RL_BRK_OPEN) ||
        (b->mode == RL_BRK_FORCE_CLOSED && b->state != RL_BRK_CLOSED))
        return 8;
    if (b->wait_ms < p->recovery_timeout_ms ||
        b->wait_ms > p->max_recovery_timeout_ms)
        return 9;
    return 0;
}
