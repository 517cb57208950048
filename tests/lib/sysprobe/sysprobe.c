/* sysprobe NAME...: make each named system call with harmless arguments and print "NAME: RESULT",
 * RESULT being "ok" or the errno's name (EPERM, ENOSYS, ...). Built static at test time
 * (tests/lib/sysprobe/__init__.py), so that it runs in any image, busybox included.
 * The arguments are chosen so that an allowed call fails on its own (EINVAL, EFAULT) or does
 * nothing lasting: a seccomp filter shows as EPERM (or the profile's errno) instead. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

static long call(const char *name) {
    if (!strcmp(name, "getpid")) return syscall(SYS_getpid);
    if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0);
    if (!strcmp(name, "add_key")) return syscall(SYS_add_key, "", "", NULL, 0, 0); /* empty type: EINVAL */
    if (!strcmp(name, "perf_event_open")) return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0); /* EFAULT */
    if (!strcmp(name, "userfaultfd")) return syscall(SYS_userfaultfd, 1 | 2); /* user-mode-only + bad bit */
    if (!strcmp(name, "io_uring_setup")) return syscall(SYS_io_uring_setup, 0, NULL); /* EINVAL/EFAULT */
    if (!strcmp(name, "clone3")) return syscall(SYS_clone3, NULL, 0); /* EINVAL */
    if (!strcmp(name, "fchmodat2")) return syscall(SYS_fchmodat2, -1, "", 0, ~0); /* newer than the profile */
    if (!strcmp(name, "socket_vsock")) { long fd = syscall(SYS_socket, 40 /* AF_VSOCK */, SOCK_STREAM, 0);
        if (fd >= 0) close(fd); return fd; }
    if (!strcmp(name, "personality_read_implies_exec")) { long r = syscall(SYS_personality, READ_IMPLIES_EXEC);
        if (r != -1) syscall(SYS_personality, 0); return r; }
    if (!strcmp(name, "personality_linux32")) { long r = syscall(SYS_personality, PER_LINUX32);
        if (r != -1) syscall(SYS_personality, 0); return r; }
    if (!strcmp(name, "unshare_user")) return syscall(SYS_unshare, CLONE_NEWUSER);
    if (!strcmp(name, "clone_newuser") || !strcmp(name, "clone_plain")) {
        long flags = SIGCHLD | (name[6] == 'n' ? CLONE_NEWUSER : 0);
        long pid = syscall(SYS_clone, flags, 0, 0, 0, 0);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid(pid, NULL, 0);
        return pid;
    }
    errno = 0;
    return -2;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long r = call(argv[i]);
        if (r == -2 && errno == 0) printf("%s: unknown probe\n", argv[i]);
        else if (r == -1) printf("%s: %s\n", argv[i], strerrorname_np(errno));
        else printf("%s: ok\n", argv[i]);
        fflush(stdout);
    }
    return 0;
}
