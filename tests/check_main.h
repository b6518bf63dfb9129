/*
 * check_main.h: the main() every Check suite shares, header-only so that
 * any test binary can use it without another source file.
 */
#ifndef RL_TEST_CHECK_MAIN_H
#define RL_TEST_CHECK_MAIN_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * Check's ck_assert_* record every passing check with the runner, which
 * costs microseconds: loops that check millions of times use these, which
 * call into Check only on failure.
 */
#define FAST_EQ(a, b)                                                      \
    do {                                                                   \
        int64_t fa_ = (int64_t)(a), fb_ = (int64_t)(b);                    \
        if (fa_ != fb_)                                                    \
            ck_assert_int_eq(fa_, fb_);                                    \
    } while (0)
#define FAST_TRUE(e)                                                       \
    do {                                                                   \
        if (!(e))                                                          \
            ck_abort_msg("false: %s", #e);                                 \
    } while (0)

/* Runs the suite; the exit status automake reads (0 pass, 1 fail). */
static inline int
th_run_suite(Suite *s, enum print_output mode)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, mode);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
