/*
 * fuzz_replay - run a fuzz target over files without libFuzzer
 *
 * Usage: replay_<name> PATH... where each PATH is a file or a directory
 * of files (not recursive; names starting with '.' skipped). Every input
 * goes through LLVMFuzzerTestOneInput() once, in name order, so the
 * checked-in seeds and crash reproducers are regression tests under gcc
 * and -DSTORK_SANITIZE=ON. A crash or a failed property aborts; an
 * unreadable path or an empty directory fails the run.
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define REPLAY_MAX_INPUT (16 * 1024 * 1024)

/* replay_file - read one file and run it */
static int replay_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t *data;
    size_t got = 0;

    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size > REPLAY_MAX_INPUT) {
        fprintf(stderr, "%s: cannot read (or too large)\n", path);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    data = malloc((size_t)st.st_size + 1);
    if (data == NULL)
        abort();
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    /* A copy of exactly the file's size, so ASan sees reads past the end. */
    uint8_t *exact = malloc(got ? got : 1);
    if (exact == NULL)
        abort();
    memcpy(exact, data, got);
    free(data);
    LLVMFuzzerTestOneInput(exact, got);
    free(exact);
    return 0;
}

/* name_cmp - qsort by name */
static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* replay_dir - every regular file of a directory, in name order */
static int replay_dir(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (d == NULL) {
        fprintf(stderr, "%s: cannot open directory\n", dir);
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof(*names));
            if (names == NULL)
                abort();
        }
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        names[n] = malloc(len);
        if (names[n] == NULL)
            abort();
        snprintf(names[n], len, "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            if (replay_file(names[i]) < 0)
                rc = -1;
            else
                (*count)++;
        }
        free(names[i]);
    }
    free(names);
    if (n == 0) {
        fprintf(stderr, "%s: no inputs\n", dir);
        rc = -1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    int count = 0, rc = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i], &count) < 0)
                rc = -1;
        } else if (replay_file(argv[i]) < 0) {
            rc = -1;
        } else {
            count++;
        }
    }
    printf("%d passed, %d failed\n", count, rc < 0 ? 1 : 0);
    return rc < 0 ? 1 : 0;
}
