/*
 * durable_commit - the disk's durable small-file commit rate.
 *
 * SUMMARY
 *	durable_commit DIR THREADS SECONDS [MAXFILES]
 *
 * DESCRIPTION
 *	Each of THREADS threads repeatedly commits a small file the way a
 *	mail queue does before it answers 250: create a temporary file, write
 *	1 KiB, fsync it, rename it to its final name, fsync the directory.
 *	It stops after SECONDS or MAXFILES files in all (default 1,000,000),
 *	whichever comes first, removes what it made, and prints one line:
 *
 *		threads=N files=F seconds=S rate=R
 *
 *	where R is committed files per second. Each thread uses its own
 *	subdirectory of DIR, as a queue's hashed subdirectories spread the
 *	work, so the number is the disk's and the filesystem's, not one
 *	directory lock's.
 *
 * ERRORS
 *	Any failed system call ends the program with a message and exit 1.
 *
 * LIMITS
 *	THREADS 1..256, SECONDS 1..600.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD 1024

static const char *base_dir;
static double deadline;
static long max_files;
static atomic_long committed;
static double stop_at[256];

/* now - monotonic seconds */
static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* die - report a failed system call and exit */
static void die(const char *what, const char *path)
{
    fprintf(stderr, "durable_commit: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

/* commit_one - tmp file, write, fsync, rename, fsync dir (names
 * relative to the directory's descriptor) */
static void commit_one(const char *dir, int dfd, long seq, const char *payload)
{
    char tmp[32], fin[32];

    snprintf(tmp, sizeof(tmp), "t%ld", seq);
    snprintf(fin, sizeof(fin), "f%ld", seq);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        die("open", dir);
    if (write(fd, payload, PAYLOAD) != PAYLOAD)
        die("write", dir);
    if (fsync(fd) < 0)
        die("fsync", dir);
    if (close(fd) < 0)
        die("close", dir);
    if (renameat(dfd, tmp, dfd, fin) < 0)
        die("rename", dir);
    if (fsync(dfd) < 0)
        die("fsync", dir);
}

/* worker - commit files until the deadline or the global cap */
static void *worker(void *arg)
{
    long id = (long)arg;
    char dir[4200], payload[PAYLOAD];
    long seq = 0;

    memset(payload, 'x', sizeof(payload));
    snprintf(dir, sizeof(dir), "%s/w%ld", base_dir, id);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        die("mkdir", dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0)
        die("open", dir);
    while (now() < deadline) {
        if (atomic_fetch_add(&committed, 1) >= max_files) {
            atomic_fetch_sub(&committed, 1);
            break;
        }
        commit_one(dir, dfd, seq++, payload);
    }
    stop_at[id] = now();
    /* Clean up: the files are not part of the measurement. */
    for (long i = 0; i < seq; i++) {
        char fin[32];
        snprintf(fin, sizeof(fin), "f%ld", i);
        unlinkat(dfd, fin, 0);
    }
    close(dfd);
    rmdir(dir);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: durable_commit DIR THREADS SECONDS [MAXFILES]\n");
        return 2;
    }
    base_dir = argv[1];
    long threads = strtol(argv[2], NULL, 10);
    long seconds = strtol(argv[3], NULL, 10);
    max_files = argc > 4 ? strtol(argv[4], NULL, 10) : 1000000;
    if (threads < 1 || threads > 256 || seconds < 1 || seconds > 600 || max_files < 1) {
        fprintf(stderr, "durable_commit: THREADS 1..256, SECONDS 1..600, MAXFILES >= 1\n");
        return 2;
    }
    pthread_t tids[256];
    double start = now();
    deadline = start + seconds;
    for (long i = 0; i < threads; i++)
        if (pthread_create(&tids[i], NULL, worker, (void *)i) != 0)
            die("pthread_create", "");
    double end = start;
    for (long i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        if (stop_at[i] > end)
            end = stop_at[i];
    }
    /* end is when the last thread stopped committing, before clean-up. */
    long n = atomic_load(&committed);
    printf("threads=%ld files=%ld seconds=%.3f rate=%.1f\n", threads, n, end - start,
           n / (end - start));
    return 0;
}
