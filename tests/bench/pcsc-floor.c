/* Baseline for the removal benchmark: a bare SCardGetStatusChange loop printing each card event. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <PCSC/winscard.h>

static uint64_t now_mono_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int main(int argc, char **argv)
{
        SCARDCONTEXT ctx;
        SCARD_READERSTATE st = {0};

        if (argc != 2) {
                fprintf(stderr, "usage: pcsc-floor READER\n");
                return 2;
        }
        if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx) != SCARD_S_SUCCESS) {
                fprintf(stderr, "pcsc-floor: no pcscd\n");
                return 1;
        }
        st.szReader = argv[1];
        st.dwCurrentState = SCARD_STATE_UNAWARE;
        setvbuf(stdout, NULL, _IOLBF, 0);
        printf("ready\n");
        for (;;) {
                LONG rv = SCardGetStatusChange(ctx, INFINITE, &st, 1);
                if (rv == SCARD_E_TIMEOUT)
                        continue;
                if (rv != SCARD_S_SUCCESS) {
                        fprintf(stderr, "pcsc-floor: %s\n", pcsc_stringify_error(rv));
                        break;
                }
                uint64_t t = now_mono_usec();
                bool was = st.dwCurrentState & SCARD_STATE_PRESENT;
                bool is = st.dwEventState & SCARD_STATE_PRESENT;
                if (was && !is)
                        printf("removed mono_us=%" PRIu64 "\n", t);
                else if (!was && is)
                        printf("inserted mono_us=%" PRIu64 "\n", t);
                st.dwCurrentState = st.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
        }
        SCardReleaseContext(ctx);
        return 1;
}
