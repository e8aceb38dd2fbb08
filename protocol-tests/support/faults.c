/* Storage faults for tests, loaded into the broker with LD_PRELOAD: while the file
 * "$KLAMM_TEST_FAULTS/eio" exists, fsync and fdatasync fail with EIO (a disk that lost
 * writes); while "$KLAMM_TEST_FAULTS/enospc" exists, pwrite fails with ENOSPC (a full disk);
 * while "$KLAMM_TEST_FAULTS/slow-sync" exists, fdatasync takes 300 ms more and adds a byte to
 * "$KLAMM_TEST_FAULTS/syncs" (a slow disk, and a count of the syncs it saw).
 * Everything else goes to the C library. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static int armed(const char *name) {
    const char *dir = getenv("KLAMM_TEST_FAULTS");
    char path[PATH_MAX];
    if (dir == NULL || snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return 0;
    return access(path, F_OK) == 0;
}

int fsync(int fd) {
    static int (*real)(int);
    if (armed("eio")) {
        errno = EIO;
        return -1;
    }
    if (real == NULL)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

/* Adds one byte to $KLAMM_TEST_FAULTS/syncs. */
static void count_sync(void) {
    const char *dir = getenv("KLAMM_TEST_FAULTS");
    char path[PATH_MAX];
    if (dir == NULL || snprintf(path, sizeof path, "%s/syncs", dir) >= (int)sizeof path)
        return;
    int out = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (out >= 0) {
        (void)!write(out, "s", 1);
        close(out);
    }
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (armed("eio")) {
        errno = EIO;
        return -1;
    }
    if (armed("slow-sync")) {
        usleep(300000);
        count_sync();
    }
    if (real == NULL)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (armed("enospc")) {
        errno = ENOSPC;
        return -1;
    }
    if (real == NULL)
        real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    return real(fd, buf, count, offset);
}
