/*
 * breaker_loop.h: the circuit breaker on the event loop (breaker_loop.c).
 */
#ifndef RL_BREAKER_LOOP_H
#define RL_BREAKER_LOOP_H

#include "breaker.h"
#include "rl_private.h"

/* Creates the breaker when circuit_breaker.enabled.  RL_OK or a code. */
int rl__brk_init(struct rl_limiter *rl);
void rl__brk_destroy(struct rl_limiter *rl);
/* Takes a ticket for req (req->ticket); false: refused (breaker open). */
bool rl__brk_admit(struct rl_req *req);
/* Records the outcome of req's ticket from its completion status. */
void rl__brk_record(struct rl_req *req, int status);
/* A connection to Redis is ready again: an open breaker goes half-open
   at once (its probes no longer wait out the recovery timeout). */
void rl__brk_server_back(struct rl_limiter *rl);
/* Tells the user's callback the changes since the last tick. */
void rl__brk_notify(struct rl_limiter *rl);

#endif /* RL_BREAKER_LOOP_H */
