/*
 * scripts.c: the Lua scripts the library runs in Redis.
 *
 * The scripts are the files of lua/, embedded at build time into
 * scripts_lua.c by build-aux/lua2c.sh.  Their SHA-1 is computed here with
 * OpenSSL, once per process, so that checks are sent with EVALSHA only and
 * the script text crosses the network once per connection (SCRIPT LOAD).
 * User data travels only in KEYS and ARGV, never in the script text.
 */
#include <openssl/sha.h>
#include <pthread.h>

#include "redis.h"

extern const char rl__lua_fixed_window[], rl__lua_sliding_window[],
    rl__lua_token_bucket[], rl__lua_sliding_log[], rl__lua_gcra[];
extern const size_t rl__lua_fixed_window_len, rl__lua_sliding_window_len,
    rl__lua_token_bucket_len, rl__lua_sliding_log_len, rl__lua_gcra_len;

static struct rl_script scripts[] = {
    [RL_SLIDING_WINDOW] = {"sliding_window", rl__lua_sliding_window, 0, ""},
    [RL_TOKEN_BUCKET] = {"token_bucket", rl__lua_token_bucket, 0, ""},
    [RL_FIXED_WINDOW] = {"fixed_window", rl__lua_fixed_window, 0, ""},
    [RL_SLIDING_LOG] = {"sliding_log", rl__lua_sliding_log, 0, ""},
    [RL_GCRA] = {"gcra", rl__lua_gcra, 0, ""},
};

static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void
hash_script(struct rl_script *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA_DIGEST_LENGTH];
    int i;

    s->len = len;
    SHA1((const unsigned char *)s->text, len, md);
    for (i = 0; i < SHA_DIGEST_LENGTH; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 15];
    }
    s->sha[40] = '\0';
}

static void
scripts_hash_all(void)
{
    hash_script(&scripts[RL_SLIDING_WINDOW], rl__lua_sliding_window_len);
    hash_script(&scripts[RL_TOKEN_BUCKET], rl__lua_token_bucket_len);
    hash_script(&scripts[RL_FIXED_WINDOW], rl__lua_fixed_window_len);
    hash_script(&scripts[RL_SLIDING_LOG], rl__lua_sliding_log_len);
    hash_script(&scripts[RL_GCRA], rl__lua_gcra_len);
}

void
rl__scripts_init(void)
{
    pthread_once(&scripts_once, scripts_hash_all);
}

const struct rl_script *
rl__script_for(rl_algorithm alg)
{
    return &scripts[alg];
}
