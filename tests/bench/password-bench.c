/* password-bench: the cost of one password check (scrypt through EVP_KDF) at given parameters, per sample.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mamori/parse-util.h"
#include "mamori/password-verifier.h"

static double now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Usage: password-bench LN SAMPLES — prints one line "us=N" per check of a verifier made at ln=LN
 * (r=8, p=1, the default's other parameters). */
int main(int argc, char **argv)
{
        struct password_params params = password_params_default;
        uint64_t ln, samples;
        char *verifier = NULL;
        int r;

        if (argc != 3 || parse_uint64(argv[1], 20, &ln) < 0 || parse_uint64(argv[2], 100000, &samples) < 0) {
                fprintf(stderr, "usage: password-bench LN SAMPLES\n");
                return 2;
        }
        params.ln = (unsigned)ln;
        r = password_verifier_make("correct horse battery staple", &params, &verifier);
        if (r < 0) {
                fprintf(stderr, "password-bench: cannot make a verifier: %s\n", strerror(-r));
                return 1;
        }
        printf("verifier=%s\n", verifier);
        for (uint64_t i = 0; i < samples; i++) {
                double t0 = now_us();
                r = password_verifier_check(verifier, strlen(verifier),
                                            i % 2 ? "correct horse battery staple"
                                                  : "wrong horse battery staple");
                double t1 = now_us();
                if (r != (i % 2 ? 0 : -EACCES)) {
                        fprintf(stderr, "password-bench: check %llu gave %d\n", (unsigned long long)i, r);
                        return 1;
                }
                printf("us=%.0f\n", t1 - t0);
        }
        free(verifier);
        return 0;
}
