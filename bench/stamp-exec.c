/*
 * Minimal executor for the benchmark: reads its whole stdin (the invocation), notes the moment it
 * has it and the moment it exits (CLOCK_MONOTONIC, the clock Bun's process.hrtime.bigint() reads),
 * appends one line "<AGENT_SESSION_ID> <t_stdin_ns> <t_exit_ns> <bytes>" to $BENCH_STAMP_FILE and
 * exits 0. One small O_APPEND write per run: cheap, and atomic for lines this short.
 * `stamp-exec --clock` prints MONOTONIC, MONOTONIC_RAW and BOOTTIME, to check which clock Bun uses.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long ns(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--clock") == 0) {
    printf("%lld %lld %lld\n", ns(CLOCK_MONOTONIC), ns(CLOCK_MONOTONIC_RAW), ns(CLOCK_BOOTTIME));
    return 0;
  }
  static char buf[1 << 16];
  size_t total = 0;
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n > 0) total += (size_t)n;
    else if (n < 0 && errno == EINTR) continue;
    else break;
  }
  long long got = ns(CLOCK_MONOTONIC);
  const char *file = getenv("BENCH_STAMP_FILE");
  const char *session = getenv("AGENT_SESSION_ID");
  if (file) {
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT, 0644);
    char line[256];
    long long exiting = ns(CLOCK_MONOTONIC);
    int len = snprintf(line, sizeof line, "%s %lld %lld %zu\n", session ? session : "-", got, exiting, total);
    if (fd >= 0) {
      ssize_t ignored = write(fd, line, (size_t)len);
      (void)ignored;
      close(fd);
    }
  }
  return 0;
}
