/* spawn: the timer of scripts/bench-start.sh (the Python driver calls it).
 *
 *   spawn [-p] one|seq|par N ARGV...
 *
 * Starts ARGV (stdin, stdout and stderr on /dev/null) and waits for it:
 *   one   once (N is ignored),
 *   seq   N times, one after the other,
 *   par   N at once, then waits for all of them,
 *   run   once with stdio inherited, no timing; exits with the child's status
 *         (the listing runs that check each runtime did its work).
 * Every "@I@" inside an argument is replaced by the run's index (0..N-1), so
 * each container gets its own ID or profile.
 *
 * Prints one line: "WALL_NS MAXRSS_KIB FAILED CPU_US", where WALL_NS is the
 * time from the first spawn to the last reap (CLOCK_MONOTONIC), MAXRSS_KIB the
 * largest ru_maxrss that wait4() reported (the peak RSS of the largest process
 * in each started tree: the child and every descendant it reaped), FAILED how
 * many exited non-zero or were killed, CPU_US the user plus system CPU time of
 * the same trees, summed (what the kernel does for them in its own threads,
 * such as freeing a network namespace later, is not in it).
 *
 * Why not Python: a child forked or vforked from Python inherits Python's RSS
 * high-water mark (~14 MiB) in ru_maxrss; this launcher is small (built
 * static when possible), and posix_spawn() uses CLONE_VM|CLONE_VFORK, so the
 * floor it adds is its own few hundred KiB.
 *
 * -p: before the clock starts, move this launcher into a private mount
 * namespace and detach /sys/fs/cgroup/unified there (used for crun 1.8, which
 * refuses the hybrid v1 + cgroup2 layout). The host's mounts are untouched
 * and the namespace goes away with the launcher. Costs nothing per start.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long cpu_of(const struct rusage *ru) {
    return (long long)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000LL +
           ru->ru_utime.tv_usec + ru->ru_stime.tv_usec;
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A copy of argv with "@I@" replaced by index i. */
static char **expand(char **argv, int argc, int i) {
    char **out = calloc((size_t)argc + 1, sizeof(char *));
    char num[16];
    snprintf(num, sizeof num, "%d", i);
    for (int k = 0; k < argc; k++) {
        const char *a = argv[k];
        size_t n = strlen(a), m = strlen(num);
        char *buf = malloc(n * (m + 1) + 1), *w = buf;
        for (size_t j = 0; j < n;) {
            if (strncmp(a + j, "@I@", 3) == 0) {
                memcpy(w, num, m);
                w += m;
                j += 3;
            } else {
                *w++ = a[j++];
            }
        }
        *w = 0;
        out[k] = buf;
    }
    return out;
}

int main(int argc, char **argv) {
    int private_unified = 0, a = 1;
    if (a < argc && strcmp(argv[a], "-p") == 0) {
        private_unified = 1;
        a++;
    }
    if (argc - a < 3) {
        fprintf(stderr, "usage: spawn [-p] one|seq|par N ARGV...\n");
        return 2;
    }
    const char *mode = argv[a];
    int n = atoi(argv[a + 1]);
    char **cmd = argv + a + 2;
    int cmdc = argc - a - 2;
    if (strcmp(mode, "one") == 0 || strcmp(mode, "run") == 0) n = 1;
    if (n < 1 || (strcmp(mode, "one") && strcmp(mode, "seq") && strcmp(mode, "par") &&
                  strcmp(mode, "run"))) {
        fprintf(stderr, "spawn: bad mode or count\n");
        return 2;
    }

    if (private_unified) {
        if (unshare(CLONE_NEWNS) != 0 ||
            mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
            perror("spawn: private mount namespace");
            return 2;
        }
        if (umount2("/sys/fs/cgroup/unified", MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
            perror("spawn: umount /sys/fs/cgroup/unified");
            return 2;
        }
    }

    if (strcmp(mode, "run") == 0) {
        pid_t pid;
        int st, err = posix_spawn(&pid, cmd[0], NULL, NULL, cmd, environ);
        if (err != 0) {
            fprintf(stderr, "spawn: %s: %s\n", cmd[0], strerror(err));
            return 127;
        }
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);

    char ***cmds = calloc((size_t)n, sizeof(char **));
    for (int i = 0; i < n; i++) cmds[i] = expand(cmd, cmdc, i);
    pid_t *pids = calloc((size_t)n, sizeof(pid_t));

    long maxrss = 0;
    long long cpu_us = 0;
    int failed = 0;
    long long t0 = now_ns();
    if (strcmp(mode, "par") == 0) {
        for (int i = 0; i < n; i++)
            if (posix_spawn(&pids[i], cmds[i][0], &fa, NULL, cmds[i], environ) != 0) {
                pids[i] = 0;
                failed++;
            }
        for (int i = 0; i < n; i++) {
            if (!pids[i]) continue;
            int st;
            struct rusage ru;
            while (wait4(pids[i], &st, 0, &ru) < 0 && errno == EINTR) {}
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
            if (ru.ru_maxrss > maxrss) maxrss = ru.ru_maxrss;
            cpu_us += cpu_of(&ru);
        }
    } else {
        for (int i = 0; i < n; i++) {
            pid_t pid;
            if (posix_spawn(&pid, cmds[i][0], &fa, NULL, cmds[i], environ) != 0) {
                failed++;
                continue;
            }
            int st;
            struct rusage ru;
            while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR) {}
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
            if (ru.ru_maxrss > maxrss) maxrss = ru.ru_maxrss;
            cpu_us += cpu_of(&ru);
        }
    }
    long long t1 = now_ns();
    printf("%lld %ld %d %lld\n", t1 - t0, maxrss, failed, cpu_us);
    return 0;
}
