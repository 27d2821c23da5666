/* kafkalike chaos: a broker's wall clock, stepped at run time (the clock-jump fault).
 *
 * LD_PRELOAD this library into a process and its CLOCK_REALTIME reads (clock_gettime with
 * CLOCK_REALTIME / CLOCK_REALTIME_COARSE, gettimeofday, time) return the real time plus an
 * offset in seconds read from the file named by $KAFKALIKE_CLOCK_OFFSET_FILE (a decimal
 * number such as "+600" or "-90.5"; missing or unreadable: 0), re-read at most every 100 ms.
 * CLOCK_MONOTONIC and every sleep are untouched, as an NTP step leaves them.
 *
 * Why not Debian's libfaketime 0.9.10: with FAKETIME_DONT_FAKE_MONOTONIC=1 (needed, or every
 * trio deadline jumps with the clock) it makes Python's time.sleep() fail with EINVAL
 * (clock_nanosleep on CLOCK_MONOTONIC), and kazoo's reconnect loop calls time.sleep().
 *
 * Built by kafkalike.chaos.local.build_clock_library (gcc -shared -fPIC ... -ldl).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static _Atomic long long offset_ns;
static _Atomic long long next_read_ns;

static int call_real(clockid_t clk, struct timespec *ts) {
    if (real_clock_gettime == NULL)
        real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return real_clock_gettime(clk, ts);
}

static long long current_offset_ns(void) {
    struct timespec m;
    if (call_real(CLOCK_MONOTONIC, &m) != 0)
        return offset_ns;
    long long now = (long long)m.tv_sec * 1000000000LL + m.tv_nsec;
    if (now >= next_read_ns) {
        next_read_ns = now + 100000000LL;
        const char *path = getenv("KAFKALIKE_CLOCK_OFFSET_FILE");
        double seconds = 0.0;
        FILE *f = path ? fopen(path, "r") : NULL;
        if (f != NULL) {
            if (fscanf(f, "%lf", &seconds) != 1)
                seconds = 0.0;
            fclose(f);
        }
        offset_ns = (long long)(seconds * 1e9);
    }
    return offset_ns;
}

static void shift(struct timespec *ts) {
    long long t = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + current_offset_ns();
    ts->tv_sec = (time_t)(t / 1000000000LL);
    ts->tv_nsec = (long)(t % 1000000000LL);
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000L;
        ts->tv_sec -= 1;
    }
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
    int rc = call_real(clk, ts);
    if (rc == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE))
        shift(ts);
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    (void)tz;
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (time_t)-1;
    if (out != NULL)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
