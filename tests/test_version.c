/*
 * test_version.c: the version is said in three places (configure.ac, the
 * RL_VERSION_* macros, rl_version()) and the codes in one list; they must
 * agree, and the layout promises of the public structs must hold.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include <ratelimit.h>

#include "check_main.h"

START_TEST(version_agrees)
{
    char buf[64];

    snprintf(buf, sizeof(buf), "%d.%d.%d", RL_VERSION_MAJOR,
             RL_VERSION_MINOR, RL_VERSION_PATCH);
    ck_assert_str_eq(buf, RL_VERSION_STRING);
    ck_assert_str_eq(rl_version(), RL_VERSION_STRING);
    ck_assert_str_eq(rl_version(), PACKAGE_VERSION_STR);
    ck_assert_int_eq(RL_VERSION_HEX, (RL_VERSION_MAJOR << 16) |
                                         (RL_VERSION_MINOR << 8) |
                                         RL_VERSION_PATCH);
}
END_TEST

START_TEST(codes_are_fixed)
{
    ck_assert_int_eq(RL_OK, 0);
    ck_assert_int_eq(RL_ERR_INVALID, -1);
    ck_assert_int_eq(RL_ERR_NOMEM, -2);
    ck_assert_int_eq(RL_ERR_REDIS, -3);
    ck_assert_int_eq(RL_ERR_TIMEOUT, -4);
    ck_assert_int_eq(RL_ERR_CIRCUIT_OPEN, -5);
    ck_assert_int_eq(RL_ERR_OVERLOAD, -6);
    ck_assert_int_eq(RL_ERR_SHUTDOWN, -7);
    ck_assert_int_eq(RL_ERR_PROTOCOL, -8);
}
END_TEST

START_TEST(every_code_has_its_own_text)
{
    int a, b;

    for (a = RL_ERR_LAST_ + 1; a <= 0; a++) {
        ck_assert_str_ne(rl_strerror(a), "unknown error");
        for (b = a + 1; b <= 0; b++)
            ck_assert_str_ne(rl_strerror(a), rl_strerror(b));
    }
    ck_assert_str_eq(rl_strerror(RL_ERR_LAST_), "unknown error");
    ck_assert_str_eq(rl_strerror(1), "unknown error");
    ck_assert_str_eq(rl_strerror(RL_ERR_OVERLOAD), "too many checks pending");
}
END_TEST

START_TEST(metric_names_are_unique)
{
    int a, b;

    for (a = 0; a < RL_METRIC_COUNT_; a++) {
        ck_assert_ptr_nonnull(rl_metric_name(a));
        for (b = a + 1; b < RL_METRIC_COUNT_; b++)
            ck_assert_str_ne(rl_metric_name(a), rl_metric_name(b));
    }
    ck_assert_ptr_null(rl_metric_name(-1));
    ck_assert_ptr_null(rl_metric_name(RL_METRIC_COUNT_));
    ck_assert_int_eq(rl_metric(NULL, RL_METRIC_ALLOWED), -1);
}
END_TEST

START_TEST(algorithm_names_round_trip)
{
    rl_algorithm alg;
    int i;

    for (i = 0; i < RL_ALGORITHM_COUNT; i++) {
        ck_assert_ptr_nonnull(rl_algorithm_name(i));
        ck_assert_int_eq(rl_algorithm_parse(rl_algorithm_name(i), &alg),
                         RL_OK);
        ck_assert_int_eq(alg, i);
    }
    ck_assert_str_eq(rl_algorithm_name(RL_GCRA), "gcra");
    ck_assert_ptr_null(rl_algorithm_name(RL_ALGORITHM_COUNT));
    ck_assert_ptr_null(rl_algorithm_name(-1));
    ck_assert_int_eq(rl_algorithm_parse("GCRA", &alg), RL_ERR_INVALID);
    ck_assert_int_eq(rl_algorithm_parse(NULL, &alg), RL_ERR_INVALID);
    ck_assert_int_eq(rl_algorithm_parse("gcra", NULL), RL_ERR_INVALID);
}
END_TEST

/* Fields come out of the reserved tail, so the size never changes. */
START_TEST(config_size_is_frozen)
{
#if defined(__x86_64__) || defined(__aarch64__)
    ck_assert_uint_eq(sizeof(rl_config), 608);
    ck_assert_uint_eq(sizeof(rl_result), 96);
#endif
}
END_TEST

static Suite *
version_suite(void)
{
    Suite *s = suite_create("version");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, version_agrees);
    tcase_add_test(tc, codes_are_fixed);
    tcase_add_test(tc, every_code_has_its_own_text);
    tcase_add_test(tc, metric_names_are_unique);
    tcase_add_test(tc, config_size_is_frozen);
    tcase_add_test(tc, algorithm_names_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return th_run_suite(version_suite(), CK_NORMAL);
}
