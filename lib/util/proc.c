/*
 * proc - facts about this process that are asked for on every message
 *
 * glibc no longer caches getpid(), and log lines, queue ids and Maildir
 * names each ask for it: a system call apiece, several per message. The
 * id is cached here; a child made by fork() forgets it through an atfork
 * hook, so a queue id never carries its parent's pid. (posix_spawn and
 * vfork children exec at once and never ask.)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "util/proc.h"

static atomic_int proc_cached_pid;
static pthread_once_t proc_hook_once = PTHREAD_ONCE_INIT;

static void proc_forget(void)
{
    atomic_store(&proc_cached_pid, 0);
}

static void proc_hook(void)
{
    (void)pthread_atfork(NULL, NULL, proc_forget);
}

/* proc_pid - getpid(), without a system call after the first */
pid_t proc_pid(void)
{
    pid_t pid = (pid_t)atomic_load(&proc_cached_pid);

    if (pid == 0) {
        pthread_once(&proc_hook_once, proc_hook);
        pid = getpid();
        atomic_store(&proc_cached_pid, (int)pid);
    }
    return pid;
}
