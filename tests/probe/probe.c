/*
 * envc test probe: a tiny static program used as a container's PID 1.
 *
 * Build: cc -static -O2 -Wall -Wextra -o probe probe.c
 *
 * It looks at its own environment first thing (before anything else could run)
 * and prints ONE JSON object to stdout (the container's console), framed by
 * marker lines so a test can pull it out of console output that also holds
 * other text:
 *
 *     ENVC-PROBE-BEGIN
 *     { ... }
 *     ENVC-PROBE-END
 *
 * It never writes to any file except stdout. Write-access probes only open()
 * a file O_WRONLY (no O_CREAT/O_TRUNC) and close it again at once.
 *
 * After printing:
 *   (no args)            exit with $PROBE_EXIT (default 0)
 *   --exit N             exit with N
 *   --sleep              pause() forever (so a test can inspect a running
 *                        container). With $PROBE_CATCH_SIGNALS="2,30,37" those
 *                        signals are blocked from the start (they show in
 *                        SigBlk, like systemd blocks SIGRTMIN+3) and awaited
 *                        with a signalfd; on one, the probe prints
 *                        "ENVC-PROBE-SIGNAL <n> <sender pid>" and exits with
 *                        $PROBE_EXIT (default 0).
 *   --reboot MODE        MODE = restart | poweroff | halt: call reboot(2), which
 *                        in a child PID namespace just kills PID 1 (SIGHUP for
 *                        restart, SIGINT otherwise). Refused (exit 125) unless
 *                        this process is PID 1 of a PID namespace that is NOT
 *                        the initial one, so it can never reboot the host.
 *
 *   --hunt SECONDS       a hostile guest, for `envc exec` tests: for SECONDS,
 *                        over and over, tries every other process's
 *                        /proc/PID/exe (readlink, open for reading, open for
 *                        writing: never written) and lists its fds above 2.
 *                        Prints "exe PID LINK" for each exe it could read that
 *                        is not the container's busybox or probe, "WRITABLE PID"
 *                        for an exe it could open for writing, "fd PID N LINK"
 *                        for each fd above 2 of a process other than PID 1,
 *                        and "hunt-done scans=N seen=M" (M: exes it could read).
 *
 * Strings that are not valid UTF-8 get each bad byte written as \u00XX.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------------ output */

static char *out;
static size_t out_len, out_cap;

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, s, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return; /* no console: nothing else we may write to */
        }
        s += r;
        n -= (size_t)r;
    }
}

static void die_oom(void)
{
    static const char m[] = "\nENVC-PROBE-ERROR out of memory\n";
    write_all(1, m, sizeof m - 1);
    _exit(125);
}

static void put_mem(const char *s, size_t n)
{
    if (out_len + n + 1 > out_cap) {
        size_t cap = out_cap ? out_cap : 65536;
        while (out_len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(out, cap);
        if (!p)
            die_oom();
        out = p;
        out_cap = cap;
    }
    memcpy(out + out_len, s, n);
    out_len += n;
    out[out_len] = 0;
}

static void put(const char *s) { put_mem(s, strlen(s)); }

static void putf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void putf(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = (int)sizeof buf - 1;
    put_mem(buf, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned int cp;
    size_t len;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static void put_jstr_n(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    put("\"");
    while (i < n) {
        unsigned char c = p[i];
        if (c == '"') {
            put("\\\"");
        } else if (c == '\\') {
            put("\\\\");
        } else if (c == '\n') {
            put("\\n");
        } else if (c == '\r') {
            put("\\r");
        } else if (c == '\t') {
            put("\\t");
        } else if (c < 0x20 || c == 0x7F) {
            putf("\\u%04x", c);
        } else if (c < 0x80) {
            put_mem(s + i, 1);
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l) {
                put_mem(s + i, l);
                i += l;
                continue;
            }
            putf("\\u%04x", c);
        }
        i++;
    }
    put("\"");
}

static void put_jstr(const char *s)
{
    if (s)
        put_jstr_n(s, strlen(s));
    else
        put("null");
}

/* Minimal JSON writer: a stack of "first element" flags for comma placement. */
static int first[64];
static int depth;

static void sep(void)
{
    if (!first[depth])
        put(",");
    first[depth] = 0;
}
static void open_(const char *c)
{
    put(c);
    if (depth < 63)
        depth++;
    first[depth] = 1;
}
static void close_(const char *c)
{
    if (depth > 0)
        depth--;
    put(c);
}
static void obj_begin(void) { open_("{"); }
static void obj_end(void) { close_("}"); }
static void arr_begin(void) { open_("["); }
static void arr_end(void) { close_("]"); }
static void item(void) { sep(); }
static void key(const char *k)
{
    sep();
    if (depth == 1)
        put("\n"); /* one top-level key per line: readable console logs */
    put_jstr(k);
    put(":");
}
static void kv_str(const char *k, const char *v) { key(k); put_jstr(v); }
static void kv_int(const char *k, long long v) { key(k); putf("%lld", v); }
static void kv_bool(const char *k, int v) { key(k); put(v ? "true" : "false"); }
static void kv_null(const char *k) { key(k); put("null"); }

/* Problems reading things are collected and reported in "errors". */
static char errors[64][320];
static int nerrors;

static void note_error(const char *what, int err)
{
    if (nerrors < 64)
        snprintf(errors[nerrors++], sizeof errors[0], "%s: %s", what, strerror(err));
}

/* ------------------------------------------------------------------ helpers */

static char *slurp(const char *path, size_t *lenp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return NULL;
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        die_oom();
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            char *p = realloc(buf, cap);
            if (!p)
                die_oom();
            buf = p;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            close(fd);
            errno = e;
            return NULL;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    *lenp = len;
    return buf;
}

/* "key": [ lines of the file ] or null (and an error) */
static void kv_file_lines(const char *k, const char *path)
{
    size_t len;
    char *buf = slurp(path, &len);
    if (!buf) {
        note_error(path, errno);
        kv_null(k);
        return;
    }
    key(k);
    arr_begin();
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n') {
            item();
            put_jstr_n(buf + start, i - start);
            start = i + 1;
        }
    }
    if (start < len) {
        item();
        put_jstr_n(buf + start, len - start);
    }
    arr_end();
    free(buf);
}

static const char *type_name(mode_t m)
{
    if (S_ISCHR(m))
        return "char";
    if (S_ISBLK(m))
        return "block";
    if (S_ISDIR(m))
        return "dir";
    if (S_ISLNK(m))
        return "symlink";
    if (S_ISREG(m))
        return "file";
    if (S_ISSOCK(m))
        return "socket";
    if (S_ISFIFO(m))
        return "fifo";
    return "unknown";
}

static int not_dots(const struct dirent *e)
{
    return strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
}

/* ------------------------------------------------------------------ probes */

struct fdent {
    int fd;
    int ok;   /* target valid */
    int err;  /* errno of readlink if !ok */
    char target[PATH_MAX];
};
static struct fdent fds[512];
static int nfds;
static int fds_source_proc; /* 1: from /proc/self/fd, 0: fcntl() scan fallback */

static int cmp_fd(const void *a, const void *b)
{
    return ((const struct fdent *)a)->fd - ((const struct fdent *)b)->fd;
}

/* Runs first of all, before this program opens anything itself. */
static void collect_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int self = dirfd(d);
        struct dirent *e;
        fds_source_proc = 1;
        while ((e = readdir(d)) != NULL && nfds < (int)(sizeof fds / sizeof fds[0])) {
            if (e->d_name[0] == '.')
                continue;
            int fd = atoi(e->d_name);
            if (fd == self)
                continue;
            struct fdent *f = &fds[nfds++];
            f->fd = fd;
            ssize_t n = readlinkat(self, e->d_name, f->target, sizeof f->target - 1);
            if (n >= 0) {
                f->target[n] = 0;
                f->ok = 1;
            } else {
                f->err = errno;
            }
        }
        closedir(d);
    } else {
        note_error("/proc/self/fd (fell back to fcntl scan of fds 0..4095)", errno);
        for (int fd = 0; fd < 4096 && nfds < (int)(sizeof fds / sizeof fds[0]); fd++) {
            if (fcntl(fd, F_GETFD) != -1) {
                fds[nfds].fd = fd;
                fds[nfds].err = ENOENT;
                nfds++;
            }
        }
    }
    qsort(fds, (size_t)nfds, sizeof fds[0], cmp_fd);
}

static void emit_fds(void)
{
    key("fds_source");
    put_jstr(fds_source_proc ? "proc" : "fcntl");
    key("fds");
    arr_begin();
    for (int i = 0; i < nfds; i++) {
        item();
        obj_begin();
        kv_int("fd", fds[i].fd);
        kv_str("target", fds[i].ok ? fds[i].target : NULL);
        obj_end();
    }
    arr_end();
}

static void emit_stdio(void)
{
    key("stdio");
    arr_begin();
    for (int fd = 0; fd <= 2; fd++) {
        struct stat st;
        char name[PATH_MAX];
        item();
        obj_begin();
        kv_int("fd", fd);
        if (fstat(fd, &st) != 0) {
            kv_bool("open", 0);
            obj_end();
            continue;
        }
        kv_bool("open", 1);
        kv_str("type", type_name(st.st_mode));
        if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
            kv_int("major", major(st.st_rdev));
            kv_int("minor", minor(st.st_rdev));
        }
        int tty = isatty(fd);
        kv_bool("isatty", tty);
        if (tty && ttyname_r(fd, name, sizeof name) == 0)
            kv_str("ttyname", name);
        else
            kv_null("ttyname");
        obj_end();
    }
    arr_end();
}

/* status: every "Key:\tvalue" line of /proc/self/status; caps: the five sets. */
static void emit_status(void)
{
    static const char *capkeys[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
    size_t len;
    char *buf = slurp("/proc/self/status", &len);
    if (!buf) {
        note_error("/proc/self/status", errno);
        kv_null("status");
        kv_null("caps");
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        key(pass == 0 ? "status" : "caps");
        obj_begin();
        char *line = buf;
        while (line && *line) {
            char *nl = strchr(line, '\n');
            size_t ll = nl ? (size_t)(nl - line) : strlen(line);
            char *colon = memchr(line, ':', ll);
            if (colon) {
                char k[64];
                size_t kl = (size_t)(colon - line);
                if (kl >= sizeof k)
                    kl = sizeof k - 1;
                memcpy(k, line, kl);
                k[kl] = 0;
                const char *v = colon + 1;
                while (v < line + ll && (*v == ' ' || *v == '\t'))
                    v++;
                int want = pass == 0;
                for (size_t c = 0; !want && c < sizeof capkeys / sizeof capkeys[0]; c++)
                    want = strcmp(k, capkeys[c]) == 0;
                if (want) {
                    key(k);
                    put_jstr_n(v, (size_t)(line + ll - v));
                }
            }
            line = nl ? nl + 1 : NULL;
        }
        obj_end();
    }
    free(buf);
}

/* Controlling terminal and foreground process group from /proc/self/stat. */
static void emit_ctty(void)
{
    size_t len;
    char *buf = slurp("/proc/self/stat", &len);
    char *rp = buf ? strrchr(buf, ')') : NULL;
    char state;
    int ppid, pgrp, session, tty_nr, tpgid;
    if (!buf || !rp ||
        sscanf(rp + 1, " %c %d %d %d %d %d", &state, &ppid, &pgrp, &session, &tty_nr,
               &tpgid) != 6) {
        if (!buf)
            note_error("/proc/self/stat", errno);
        free(buf);
        kv_null("ctty");
        return;
    }
    key("ctty");
    obj_begin();
    kv_int("tty_nr", tty_nr);
    kv_int("major", ((unsigned)tty_nr >> 8) & 0xfff);
    kv_int("minor", ((unsigned)tty_nr & 0xff) | (((unsigned)tty_nr >> 12) & 0xfff00));
    kv_int("tpgid", tpgid);
    obj_end();
    free(buf);
}

static void emit_ns(void)
{
    static const char *names[] = {"cgroup", "ipc", "mnt", "net", "pid",
                                  "pid_for_children", "time", "user", "uts"};
    key("ns");
    obj_begin();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[64], target[128];
        snprintf(path, sizeof path, "/proc/self/ns/%s", names[i]);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n >= 0) {
            target[n] = 0;
            kv_str(names[i], target);
        } else {
            kv_null(names[i]);
        }
    }
    obj_end();
}

static void kv_dir_names(const char *k, const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, not_dots, alphasort);
    if (n < 0) {
        note_error(dir, errno);
        kv_null(k);
        return;
    }
    key(k);
    arr_begin();
    for (int i = 0; i < n; i++) {
        item();
        put_jstr(names[i]->d_name);
        free(names[i]);
    }
    free(names);
    arr_end();
}

static void dev_entry(const char *path, int level)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        note_error(path, errno);
        return;
    }
    item();
    obj_begin();
    kv_str("path", path);
    kv_str("type", type_name(st.st_mode));
    key("mode");
    putf("\"%04o\"", (unsigned)(st.st_mode & 07777));
    kv_int("uid", st.st_uid);
    kv_int("gid", st.st_gid);
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        kv_int("major", major(st.st_rdev));
        kv_int("minor", minor(st.st_rdev));
    }
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n >= 0) {
            target[n] = 0;
            kv_str("target", target);
        } else {
            kv_null("target");
        }
    }
    obj_end();
    if (S_ISDIR(st.st_mode) && level < 12) {
        struct dirent **names;
        int n = scandir(path, &names, not_dots, alphasort);
        if (n < 0) {
            note_error(path, errno);
            return;
        }
        for (int i = 0; i < n; i++) {
            char child[PATH_MAX];
            if ((size_t)snprintf(child, sizeof child, "%s/%s", path, names[i]->d_name) <
                sizeof child)
                dev_entry(child, level + 1);
            free(names[i]);
        }
        free(names);
    }
}

/* is_file: try open(O_WRONLY) (never writes); always: statvfs() ST_RDONLY. */
static void write_probe(const char *path, int is_file)
{
    struct statvfs sv;
    key(path);
    obj_begin();
    if (is_file) {
        int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        int e = errno;
        if (fd >= 0) {
            close(fd);
            kv_bool("open_wronly", 1);
            kv_null("errno");
        } else {
            kv_bool("open_wronly", 0);
            kv_int("errno", e);
            kv_str("error", strerror(e));
        }
    } else {
        kv_null("open_wronly");
        kv_null("errno");
    }
    if (statvfs(path, &sv) == 0) {
        kv_bool("statvfs_rdonly", (sv.f_flag & ST_RDONLY) != 0);
    } else {
        int e = errno;
        kv_null("statvfs_rdonly");
        kv_int("statvfs_errno", e);
    }
    obj_end();
}

/* ------------------------------------------------------------------ main */

static int parse_signals(const char *s, sigset_t *set)
{
    int n = 0;
    sigemptyset(set);
    while (s && *s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s)
            break;
        if (v > 0 && v < 65 && v != SIGKILL && v != SIGSTOP && sigaddset(set, (int)v) == 0)
            n++;
        s = *end ? end + 1 : end;
    }
    return n;
}

/* PID 1 of a non-initial PID namespace? (initial one: inode 0xEFFFFFFC) */
static int in_child_pidns_as_init(void)
{
    struct stat st;
    if (getpid() != 1)
        return 0;
    if (stat("/proc/self/ns/pid", &st) != 0)
        return 0;
    return st.st_ino != 0xEFFFFFFCu;
}

/* `probe --get PATH [UID]`: one GET of the guest API at /dev/lxd/sock (as
 * UID, when given); prints the whole response and exits 0, or 1 if it
 * could not connect. */
static int devlxd_get(const char *path, const char *as)
{
    if (as) {
        uid_t id = (uid_t)atoi(as);
        if (setgroups(0, NULL) < 0 || setresgid(id, id, id) < 0 || setresuid(id, id, id) < 0) {
            printf("setresuid: %s\n", strerror(errno));
            return 1;
        }
    }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, "/dev/lxd/sock");
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        printf("connect: %s\n", strerror(errno));
        return 1;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: lxd\r\nConnection: close\r\n\r\n", path);
    if (write(s, req, (size_t)n) != n)
        return 1;
    char buf[4096];
    ssize_t r;
    while ((r = read(s, buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)r, stdout);
    printf("\n");
    return 0;
}

static int hunt(int seconds)
{
    time_t end = time(NULL) + seconds;
    pid_t self = getpid();
    long scans = 0, seen = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        if (!d)
            return 1;
        struct dirent *e;
        while ((e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == self)
                continue;
            char p[64], l[PATH_MAX];
            snprintf(p, sizeof p, "/proc/%d/exe", pid);
            ssize_t n = readlink(p, l, sizeof l - 1);
            if (n > 0) {
                l[n] = 0;
                seen++;
                if (strcmp(l, "/bin/busybox") != 0 && strcmp(l, "/sbin/probe") != 0)
                    printf("exe %d %s\n", pid, l);
            }
            int fd = open(p, O_WRONLY | O_CLOEXEC);
            if (fd >= 0) {
                printf("WRITABLE %d\n", pid);
                close(fd);
            }
            if (pid == 1)
                continue;
            snprintf(p, sizeof p, "/proc/%d/fd", pid);
            DIR *fds = opendir(p);
            if (!fds)
                continue;
            struct dirent *f;
            while ((f = readdir(fds))) {
                int n2 = atoi(f->d_name);
                if (n2 <= 2)
                    continue;
                char fp[96];
                snprintf(fp, sizeof fp, "/proc/%d/fd/%d", pid, n2);
                ssize_t k = readlink(fp, l, sizeof l - 1);
                l[k > 0 ? k : 0] = 0;
                printf("fd %d %d %s\n", pid, n2, l);
            }
            closedir(fds);
        }
        closedir(d);
        scans++;
    }
    printf("hunt-done scans=%ld seen=%ld\n", scans, seen);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--hunt") == 0)
        return hunt(atoi(argv[2]));
    if (argc > 2 && strcmp(argv[1], "--get") == 0)
        return devlxd_get(argv[2], argc > 3 ? argv[3] : NULL);
    collect_fds(); /* first: before this program opens anything */

    const char *mode = argc > 1 ? argv[1] : "";
    int sleep_mode = strcmp(mode, "--sleep") == 0;
    sigset_t catch_set;
    int ncatch = 0;
    if (sleep_mode) {
        ncatch = parse_signals(getenv("PROBE_CATCH_SIGNALS"), &catch_set);
        if (ncatch)
            sigprocmask(SIG_BLOCK, &catch_set, NULL);
    }

    obj_begin();
    kv_int("probe_version", 1);
    key("argv");
    arr_begin();
    for (int i = 0; i < argc; i++) {
        item();
        put_jstr(argv[i]);
    }
    arr_end();
    kv_int("pid", getpid());
    kv_int("ppid", getppid());
    kv_int("uid", getuid());
    kv_int("euid", geteuid());
    kv_int("gid", getgid());
    kv_int("egid", getegid());
    kv_int("sid", getsid(0));
    kv_int("pgid", getpgrp());
    {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd))
            kv_str("cwd", cwd);
        else {
            note_error("getcwd", errno);
            kv_null("cwd");
        }
    }
    {
        char host[256];
        if (gethostname(host, sizeof host) == 0) {
            host[sizeof host - 1] = 0;
            kv_str("hostname", host);
        } else {
            note_error("gethostname", errno);
            kv_null("hostname");
        }
    }
    {
        mode_t m = umask(022);
        umask(m);
        key("umask");
        putf("\"%04o\"", (unsigned)m);
    }
    key("env");
    arr_begin();
    for (char **e = environ; e && *e; e++) {
        item();
        put_jstr(*e);
    }
    arr_end();
    emit_fds();
    emit_stdio();
    emit_ctty();
    emit_status();
    emit_ns();
    kv_file_lines("mountinfo", "/proc/self/mountinfo");
    kv_file_lines("cgroup", "/proc/self/cgroup");
    kv_dir_names("net_links", "/sys/class/net");
    key("dev");
    arr_begin();
    dev_entry("/dev", 0);
    arr_end();
    key("write_probes");
    obj_begin();
    write_probe("/proc/sysrq-trigger", 1);
    write_probe("/proc/sys/kernel/hostname", 1);
    write_probe("/proc/sys/net/ipv4/ip_forward", 1);
    write_probe("/", 0);
    write_probe("/dev", 0);
    write_probe("/proc", 0);
    write_probe("/proc/sys", 0);
    write_probe("/proc/sys/net", 0);
    write_probe("/sys", 0);
    write_probe("/sys/devices/virtual/net", 0);
    write_probe("/sys/fs/cgroup", 0);
    obj_end();
    key("errors");
    arr_begin();
    for (int i = 0; i < nerrors; i++) {
        item();
        put_jstr(errors[i]);
    }
    arr_end();
    put("\n");
    obj_end();

    write_all(1, "\nENVC-PROBE-BEGIN\n", 18);
    write_all(1, out, out_len);
    write_all(1, "\nENVC-PROBE-END\n", 16);

    const char *pe = getenv("PROBE_EXIT");
    int status = pe ? atoi(pe) : 0;

    if (strcmp(mode, "--exit") == 0)
        return argc > 2 ? atoi(argv[2]) : 0;

    if (strcmp(mode, "--reboot") == 0) {
        const char *how = argc > 2 ? argv[2] : "";
        int cmd = strcmp(how, "restart") == 0    ? RB_AUTOBOOT
                  : strcmp(how, "poweroff") == 0 ? RB_POWER_OFF
                  : strcmp(how, "halt") == 0     ? RB_HALT_SYSTEM
                                                 : 0;
        if (!cmd || !in_child_pidns_as_init()) {
            static const char m[] = "ENVC-PROBE-REFUSED-REBOOT\n";
            write_all(1, m, sizeof m - 1);
            return 125;
        }
        reboot(cmd); /* in a child PID namespace: the kernel kills us */
        {
            char m[96];
            int n = snprintf(m, sizeof m, "ENVC-PROBE-REBOOT-FAILED %d\n", errno);
            write_all(1, m, (size_t)n);
        }
        return 125;
    }

    if (sleep_mode) {
        /* A signalfd, as systemd waits: the signals stay blocked (SigBlk
         * shows them) while the probe waits for one. sigwaitinfo() would
         * unblock them for the wait. */
        int sfd = ncatch ? signalfd(-1, &catch_set, SFD_CLOEXEC) : -1;
        while (sfd >= 0) {
            struct signalfd_siginfo si;
            ssize_t r = read(sfd, &si, sizeof si);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            if (r != (ssize_t)sizeof si)
                continue;
            char m[96];
            int n = snprintf(m, sizeof m, "\nENVC-PROBE-SIGNAL %d %d\n", (int)si.ssi_signo,
                             (int)si.ssi_pid);
            write_all(1, m, (size_t)n);
            return status;
        }
        for (;;)
            pause();
    }

    return status;
}
