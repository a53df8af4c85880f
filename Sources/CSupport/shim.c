// GNU extensions need _GNU_SOURCE before any system header, so they live here.
#define _GNU_SOURCE
#include <spawn.h>
#include <unistd.h>
#include "CSupport.h"

int cs_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int cs_posix_spawn_setsid_flag(void) { return POSIX_SPAWN_SETSID; }
int cs_posix_spawn_addchdir(void *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np((posix_spawn_file_actions_t *)actions, path);
}
