#ifndef STORK_UTIL_PROC_H
#define STORK_UTIL_PROC_H

#include <sys/types.h>

pid_t proc_pid(void);

#endif
