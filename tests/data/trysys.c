/* Tries system calls a container's seccomp filter and capabilities decide
 * on, and prints one line each: "NAME ok" or "NAME ERRNO-NAME". Built
 * statically by the tests (cc -static) and put into a test image.
 *   trysys add_key keyctl unshare mount mkdir ptrace:PID personality */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case ESRCH: return "ESRCH";
    case EEXIST: return "EEXIST";
    case EDQUOT: return "EDQUOT";
    default: return strerror(e);
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *what = argv[i];
        long r;
        errno = 0;
        if (!strcmp(what, "add_key")) {
            r = syscall(SYS_add_key, "user", "minipod-test", "x", 1, -3 /* KEY_SPEC_SESSION_KEYRING */);
        } else if (!strcmp(what, "keyctl")) {
            r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 1);
        } else if (!strcmp(what, "unshare")) {
            r = unshare(CLONE_NEWNS);
        } else if (!strcmp(what, "mount")) {
            r = mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
        } else if (!strcmp(what, "mkdir")) {
            r = mkdir("/tmp/trysys-dir", 0755);
        } else if (!strncmp(what, "ptrace:", 7)) {
            r = ptrace(PTRACE_ATTACH, atoi(what + 7), NULL, NULL);
        } else if (!strcmp(what, "personality")) {
            r = personality(0x0040000 /* ADDR_NO_RANDOMIZE */);
        } else {
            printf("%s unknown\n", what);
            continue;
        }
        if (r < 0)
            printf("%s %s\n", what, errname(errno));
        else
            printf("%s ok\n", what);
    }
    return 0;
}
