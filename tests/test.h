/*
 * A small test runner: TEST(name) defines a case, registered at load time;
 * main() (from TEST_MAIN) runs every case, or those named on the command
 * line, and prints one line per case. Assertions print both operands and
 * abort the current case. CTest supplies the per-executable timeout.
 */
#ifndef SONDE_TEST_H
#define SONDE_TEST_H

#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);
struct test_case {
    const char *name;
    test_fn fn;
};

#define TEST_MAX_CASES 512
extern struct test_case test_cases[TEST_MAX_CASES];
extern int test_case_count;
extern jmp_buf test_jmp;
extern int test_failed;

#define TEST(name)                                                                                 \
    static void name(void);                                                                        \
    __attribute__((constructor)) static void register_##name(void)                                 \
    {                                                                                              \
        if (test_case_count < TEST_MAX_CASES)                                                      \
            test_cases[test_case_count++] = (struct test_case){#name, name};                       \
    }                                                                                              \
    static void name(void)

#define TEST_FAIL_AT(...)                                                                          \
    do {                                                                                           \
        fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);                                     \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        test_failed = 1;                                                                           \
        longjmp(test_jmp, 1);                                                                      \
    } while (0)

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            TEST_FAIL_AT("assertion failed: %s", #cond);                                           \
    } while (0)

#define ASSERT_INT_OP(a, op, b)                                                                    \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (!(a_ op b_))                                                                           \
            TEST_FAIL_AT("%s %s %s: %lld vs %lld", #a, #op, #b, a_, b_);                           \
    } while (0)
#define ASSERT_EQ(a, b) ASSERT_INT_OP(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT_OP(a, !=, b)
#define ASSERT_GT(a, b) ASSERT_INT_OP(a, >, b)
#define ASSERT_GE(a, b) ASSERT_INT_OP(a, >=, b)
#define ASSERT_LT(a, b) ASSERT_INT_OP(a, <, b)
#define ASSERT_LE(a, b) ASSERT_INT_OP(a, <=, b)

#define ASSERT_U64_EQ(a, b)                                                                        \
    do {                                                                                           \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                           \
        if (a_ != b_)                                                                              \
            TEST_FAIL_AT("%s == %s: %" PRIu64 " vs %" PRIu64, #a, #b, a_, b_);                     \
    } while (0)

#define ASSERT_DBL_EQ(a, b)                                                                        \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        if (!(a_ == b_ || (isnan(a_) && isnan(b_))))                                               \
            TEST_FAIL_AT("%s == %s: %.17g vs %.17g", #a, #b, a_, b_);                              \
    } while (0)

#define ASSERT_DBL_NEAR(a, b, tol)                                                                 \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);                             \
        if (!(fabs(a_ - b_) <= t_))                                                                \
            TEST_FAIL_AT("%s ~= %s (tol %g): %.17g vs %.17g", #a, #b, t_, a_, b_);                 \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            TEST_FAIL_AT("%s == %s:\n    \"%s\"\n vs \"%s\"", #a, #b, a_ ? a_ : "(null)",          \
                         b_ ? b_ : "(null)");                                                      \
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            TEST_FAIL_AT("%s does not contain \"%s\":\n%s", #hay, n_, h_ ? h_ : "(null)");         \
    } while (0)

#define ASSERT_NOT_CONTAINS(hay, needle)                                                           \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (h_ && strstr(h_, n_))                                                                  \
            TEST_FAIL_AT("%s contains \"%s\":\n%s", #hay, n_, h_);                                 \
    } while (0)

#define ASSERT_OK(expr)                                                                            \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0)                                                                              \
            TEST_FAIL_AT("%s returned %d (%s)", #expr, rc_, sonde_err_name(rc_));                  \
    } while (0)

/* Define the runner in exactly one translation unit per test executable. */
#define TEST_MAIN()                                                                                \
    struct test_case test_cases[TEST_MAX_CASES];                                                   \
    int test_case_count;                                                                           \
    jmp_buf test_jmp;                                                                              \
    int test_failed;                                                                               \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        volatile int failures = 0, ran = 0;                                                        \
        setvbuf(stdout, NULL, _IONBF, 0);                                                          \
        for (volatile int i = 0; i < test_case_count; i++) {                                       \
            if (argc > 1) {                                                                        \
                int want = 0;                                                                      \
                for (int a = 1; a < argc; a++)                                                     \
                    if (strcmp(argv[a], test_cases[i].name) == 0)                                  \
                        want = 1;                                                                  \
                if (!want)                                                                         \
                    continue;                                                                      \
            }                                                                                      \
            test_failed = 0;                                                                       \
            ran++;                                                                                 \
            if (setjmp(test_jmp) == 0)                                                             \
                test_cases[i].fn();                                                                \
            printf("%s %s\n", test_failed ? "FAIL" : "ok  ", test_cases[i].name);                  \
            failures += test_failed;                                                               \
        }                                                                                          \
        if (ran == 0) {                                                                            \
            printf("no test ran\n");                                                               \
            return 1;                                                                              \
        }                                                                                          \
        printf("%d/%d passed\n", ran - failures, ran);                                             \
        return failures ? 1 : 0;                                                                   \
    }

#endif
