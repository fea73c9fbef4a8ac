/*
 * envc syscall-filter probe: a small static program that makes the calls the
 * syscall filter is about and prints one `name=result` line for each, where
 * result is `ok`, an errno name (`ENOSYS`, `EACCES`, ...), or `killed by
 * signal N` for a call made in a child the filter killed.
 *
 * Build: cc -static -O2 -Wall -Wextra -o syscalls syscalls.c
 *
 * Every call is harmless without a filter too: arguments the kernel refuses
 * (bad flags, a null path, an absent module), and a tmpfs of its own for
 * umount2.
 *
 *   syscalls checks     the default list (64-bit, i386 via `int 0x80`, x32),
 *                       forced and plain umount2, mknodat in a child, and the
 *                       Seccomp and NoNewPrivs lines of /proc/1/status
 *                       and, if /sbin/syscalls-suid (a setuid-root copy)
 *                       exists, its effective uid run by uid 1000
 *   syscalls minimal    writes `alive=yes`, then calls getppid (what an
 *                       allow-list test leaves out) and `after=yes`
 *   syscalls euid       prints `setuid_euid=N`, its effective uid
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define X32_BIT 0x40000000L

/* i386 numbers (arch/x86/entry/syscalls/syscall_32.tbl). */
#define I386_GETPID 20
#define I386_UMOUNT2 52
#define I386_KEXEC_LOAD 283
#define I386_MKNODAT 297
#define I386_INIT_MODULE 128
#define I386_DELETE_MODULE 129
#define I386_OPEN_BY_HANDLE_AT 342
#define I386_FINIT_MODULE 350

static const char *err_name(int e)
{
	switch (e) {
	case 0: return "ok";
	case ENOSYS: return "ENOSYS";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case EINVAL: return "EINVAL";
	case EFAULT: return "EFAULT";
	case EBADF: return "EBADF";
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	default: return "other";
	}
}

static void show(const char *name, long ret)
{
	printf("%s=%s\n", name, err_name(ret < 0 ? errno : 0));
	fflush(stdout);
}

/* A raw i386 system call from 64-bit code: the kernel runs it with the
 * i386 ABI (and seccomp sees AUDIT_ARCH_I386). Pointer arguments must be
 * below 4 GiB, so the calls here pass only numbers and null pointers. */
static long int80(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c)
			 : "memory");
	return ret;
}

static void show_i386(const char *name, long ret)
{
	printf("i386_%s=%s\n", name, ret < 0 && ret > -4096 ? err_name((int)-ret) : "ok");
	fflush(stdout);
}

static void status_lines(void)
{
	FILE *f = fopen("/proc/1/status", "r");
	char line[256];
	if (!f) {
		printf("status=unreadable\n");
		return;
	}
	while (fgets(line, sizeof line, f)) {
		unsigned v;
		if (sscanf(line, "Seccomp: %u", &v) == 1)
			printf("seccomp=%u\n", v);
		else if (sscanf(line, "NoNewPrivs: %u", &v) == 1)
			printf("no_new_privs=%u\n", v);
	}
	fclose(f);
}

/* mknodat of a fifo in a child: a filter that kills shows as a signal. */
static void mknodat_in_child(void)
{
	pid_t pid;
	int st;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		long r = syscall(SYS_mknodat, AT_FDCWD, "/tmp/envc-fifo", S_IFIFO | 0600, 0);
		show("mknodat", r);
		if (r == 0)
			unlink("/tmp/envc-fifo");
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0) {
		printf("mknodat=fork failed\n");
		return;
	}
	if (WIFSIGNALED(st))
		printf("mknodat=killed by signal %d\n", WTERMSIG(st));
	/* the same through the i386 ABI */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		show_i386("mknodat", int80(I386_MKNODAT, -100, 0, S_IFIFO | 0600));
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0) {
		printf("i386_mknodat=fork failed\n");
		return;
	}
	if (WIFSIGNALED(st))
		printf("i386_mknodat=killed by signal %d\n", WTERMSIG(st));
}

/* A setuid-root program run by uid 1000: euid 0 unless no_new_privs
 * (which a filter loaded without it must not have set) stops it. */
static void setuid_check(void)
{
	pid_t pid;
	int st;
	if (access("/sbin/syscalls-suid", X_OK) != 0)
		return;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (setgid(1000) != 0 || setuid(1000) != 0) {
			printf("setuid_euid=cannot drop to 1000\n");
			_exit(1);
		}
		execl("/sbin/syscalls-suid", "syscalls-suid", "euid", (char *)NULL);
		printf("setuid_euid=exec failed\n");
		_exit(1);
	}
	if (pid > 0)
		waitpid(pid, &st, 0);
}

static int checks(void)
{
	status_lines();
	/* LXD's default list; every call invalid (flags, fds, names) so that
	 * without a filter the kernel refuses it without doing anything. */
	show("kexec_load", syscall(SYS_kexec_load, 0L, 0L, NULL, 0xdead0000UL));
	show("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
	show("init_module", syscall(SYS_init_module, NULL, 0UL, ""));
	show("finit_module", syscall(SYS_finit_module, -1, "", 0));
	show("delete_module", syscall(SYS_delete_module, "envc-no-such-module", O_NONBLOCK));

	mkdir("/tmp/envc-umount", 0700);
	if (mount("none", "/tmp/envc-umount", "tmpfs", 0, "size=4k") < 0)
		printf("mount=%s\n", err_name(errno));
	show("umount2_force", syscall(SYS_umount2, "/tmp/envc-umount", MNT_FORCE));
	show("umount2", syscall(SYS_umount2, "/tmp/envc-umount", 0));
	rmdir("/tmp/envc-umount");

	show_i386("getpid", int80(I386_GETPID, 0, 0, 0));
	show_i386("kexec_load", int80(I386_KEXEC_LOAD, 0, 0, 0xdead0000L));
	show_i386("open_by_handle_at", int80(I386_OPEN_BY_HANDLE_AT, -1, 0, 0));
	show_i386("init_module", int80(I386_INIT_MODULE, 0, 0, 0));
	show_i386("finit_module", int80(I386_FINIT_MODULE, -1, 0, 0));
	show_i386("delete_module", int80(I386_DELETE_MODULE, 0, O_NONBLOCK, 0));
	/* a null path: without a filter EFAULT, with it EACCES */
	show_i386("umount2_force", int80(I386_UMOUNT2, 0, MNT_FORCE, 0));

	/* x32: this kernel may not run x32 at all (ENOSYS); the filter
	 * refuses a forced umount before that (EACCES). */
	show("x32_umount2_force", syscall(X32_BIT | SYS_umount2, NULL, MNT_FORCE));
	show("getpid", syscall(SYS_getpid));

	mknodat_in_child();
	setuid_check();
	printf("done=yes\n");
	return 0;
}

static int minimal(void)
{
	static const char alive[] = "alive=yes\n", after[] = "after=yes\n";
	syscall(SYS_write, 1, alive, sizeof alive - 1);
	syscall(SYS_getppid);
	syscall(SYS_write, 1, after, sizeof after - 1);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "minimal") == 0)
		return minimal();
	if (argc > 1 && strcmp(argv[1], "euid") == 0) {
		printf("setuid_euid=%d\n", (int)geteuid());
		return 0;
	}
	return checks();
}
