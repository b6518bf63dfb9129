/*
 * reply.h: hiredis reply objects built in few allocations (reply.c).
 *
 * A reader with these functions returns plain redisReply trees, the same
 * types, fields and values hiredis's own functions make, so every reply
 * callback reads them as before.  Only the memory differs: an array, its
 * element vector and its scalar elements are one block.
 *
 * Ownership: the reader owns what it builds.  A reply is freed by the
 * reader's own fn->freeObject, which hiredis calls (after the reply
 * callback returns, when the reader fails half way through a reply, and
 * in redisReaderFree), never with freeReplyObject.  A callback that wants
 * a reply's contents longer than the call copies them (house rule 10).
 */
#ifndef RL_REPLY_H
#define RL_REPLY_H

#include <hiredis/hiredis.h>

/*
 * Makes reader build its replies with our functions.  Call it on a new
 * reader, before any byte is fed to it (a reply half built by other
 * functions would be freed by ours): for an async context, right after
 * redisAsyncConnect, as rl__reply_install(ac->c.reader).  The table is
 * static: it outlives every reader.  NULL is ignored.
 */
void rl__reply_install(redisReader *reader);

#endif /* RL_REPLY_H */
