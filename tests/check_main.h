/*
 * check_main.h: the main() every Check suite shares, header-only so that
 * any test binary can use it without another source file.
 */
#ifndef RL_TEST_CHECK_MAIN_H
#define RL_TEST_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

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
