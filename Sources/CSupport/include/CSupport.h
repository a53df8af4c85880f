// Linux interfaces that Swift's Glibc module leaves out or imports badly
// (variadic prctl/ioctl, signalfd, environ). Thin inline wrappers only:
// policy lives in Swift.
#ifndef CSUPPORT_H
#define CSUPPORT_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dlfcn.h>

extern char **environ;

static inline char **cs_environ(void) { return environ; }
static inline void cs_set_environ(char **env) { environ = env; }

static inline int cs_set_child_subreaper(int on) {
    return prctl(PR_SET_CHILD_SUBREAPER, (unsigned long)on, 0UL, 0UL, 0UL);
}
static inline int cs_set_parent_death_signal(int sig) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0UL, 0UL, 0UL);
}
static inline int cs_set_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

static inline int cs_signalfd(int fd, const sigset_t *mask, int flags) {
    return signalfd(fd, mask, flags);
}
static inline int cs_sfd_cloexec(void) { return SFD_CLOEXEC; }
static inline int cs_sfd_nonblock(void) { return SFD_NONBLOCK; }

/* wait(2) status decoding: the macros are not importable. */
static inline int cs_wifexited(int s) { return WIFEXITED(s); }
static inline int cs_wexitstatus(int s) { return WEXITSTATUS(s); }
static inline int cs_wifsignaled(int s) { return WIFSIGNALED(s); }
static inline int cs_wtermsig(int s) { return WTERMSIG(s); }
static inline int cs_wifstopped(int s) { return WIFSTOPPED(s); }
static inline int cs_wcoredump(int s) { return WCOREDUMP(s); }

/* SIGRTMIN is a function-like macro in glibc (the C library reserves a few
 * real-time signals for itself). */
static inline int cs_sigrtmin(void) { return SIGRTMIN; }

/* GNU extensions, defined in shim.c where _GNU_SOURCE is set. */
int cs_pipe2(int fds[2], int flags);
int cs_posix_spawn_setsid_flag(void);
/* posix_spawn_file_actions_addchdir_np (glibc >= 2.29): the child's working directory. */
int cs_posix_spawn_addchdir(void *actions, const char *path);

/* Bytes waiting to be read in a pipe or socket (ioctl is variadic). */
static inline int cs_fionread(int fd, int *count) { return ioctl(fd, FIONREAD, count); }

static inline int cs_fcntl_int(int fd, int cmd, int arg) { return fcntl(fd, cmd, arg); }
static inline int cs_fcntl_lock(int fd, int cmd, struct flock *lk) { return fcntl(fd, cmd, lk); }

#endif
