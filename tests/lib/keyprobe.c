/* A probe of the kernel keyrings, built static so it runs in any container image.
 *
 *   keyprobe add NAME DATA FILE CMD...  join a fresh session keyring, add a "user" key NAME=DATA to it,
 *                                       write "SESSION KEY" (the two serials) to FILE, exec CMD
 *   keyprobe check NAME SESSION KEY     print what this process reaches of that session and key:
 *                                       "session: inherited|fresh|none", "search: found|denied",
 *                                       "read: <data>|denied"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#define KEY_SPEC_SESSION_KEYRING -3
#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_JOIN_SESSION_KEYRING 1
#define KEYCTL_SEARCH 10
#define KEYCTL_READ 11

static long keyctl(long op, long a, long b, long c, long d) { return syscall(SYS_keyctl, op, a, b, c, d); }

int main(int argc, char **argv) {
    if (argc >= 6 && strcmp(argv[1], "add") == 0) {
        long session = keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0);
        long key = syscall(SYS_add_key, "user", argv[2], argv[3], strlen(argv[3]), KEY_SPEC_SESSION_KEYRING);
        if (session < 0 || key < 0) { perror("keyprobe add"); return 125; }
        FILE *f = fopen(argv[4], "w");
        if (!f || fprintf(f, "%ld %ld\n", session, key) < 0 || fclose(f) != 0) { perror(argv[4]); return 125; }
        execvp(argv[5], argv + 5);
        perror(argv[5]);
        return 127;
    }
    if (argc == 5 && strcmp(argv[1], "check") == 0) {
        long session = keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0, 0, 0);
        printf("session: %s\n", session < 0 ? "none" : session == atol(argv[3]) ? "inherited" : "fresh");
        long found = keyctl(KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, (long)"user", (long)argv[2], 0);
        printf("search: %s\n", found < 0 ? "denied" : "found");
        char buf[256];
        long n = keyctl(KEYCTL_READ, atol(argv[4]), (long)buf, sizeof buf - 1, 0);
        if (n < 0) printf("read: denied\n");
        else { buf[n < (long)sizeof buf - 1 ? n : (long)sizeof buf - 1] = 0; printf("read: %s\n", buf); }
        return 0;
    }
    fprintf(stderr, "usage: keyprobe add NAME DATA FILE CMD... | keyprobe check NAME SESSION KEY\n");
    return 2;
}
