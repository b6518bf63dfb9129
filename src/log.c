/*
 * log.c: the library's log lines.  They go to the configured callback, or,
 * when there is none, to stderr at warning level and above.  Callers never
 * pass a password or a whole user key (see rl__key_hint in request.c).
 */
#include <stdio.h>

#include "rl_private.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
rl__logv_cfg(rl_log_cb cb, void *arg, rl_log_level min, rl_log_level level,
             const char *fmt, va_list ap)
{
    char buf[512];

    if (level < min || level >= RL_LOG_NONE)
        return;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    if (cb) {
        cb(level, buf, arg);
        return;
    }
    fprintf(stderr, "libratelimit: %s: %s\n", level_names[level], buf);
}

void
rl__log_cfg(rl_log_cb cb, void *arg, rl_log_level min, rl_log_level level,
            const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rl__logv_cfg(cb, arg, min, level, fmt, ap);
    va_end(ap);
}

void
rl__log(const struct rl_limiter *rl, rl_log_level level, const char *fmt,
        ...)
{
    va_list ap;

    va_start(ap, fmt);
    rl__logv_cfg(rl->cfg.log_cb, rl->cfg.log_arg, rl->cfg.log_level, level,
                 fmt, ap);
    va_end(ap);
}

/*
 * As rl__log, at most one line a second per limiter: for failures that
 * repeat with every batch (error replies), so that an outage cannot flood
 * the log.  The next line that passes says how many were left out.
 */
void
rl__log_limited(struct rl_limiter *rl, rl_log_level level, const char *fmt,
                ...)
{
    int64_t now = rl__mono_ns() / 1000000;
    char buf[400];
    va_list ap;

    if (now < rl->log_gate_ms) {
        rl->log_suppressed++;
        return;
    }
    rl->log_gate_ms = now + 1000;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (rl->log_suppressed > 0)
        rl__log(rl, level, "%s (and %lld more like it)", buf,
                (long long)rl->log_suppressed);
    else
        rl__log(rl, level, "%s", buf);
    rl->log_suppressed = 0;
}
