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
#include <sys/syscall.h>
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
/* Never give heap memory back (mallopt M_TRIM_THRESHOLD): for short-lived forked children. */
void cs_malloc_keep_heap(void);
/* accept4(2) with flags (a GNU extension). */
int cs_accept4(int fd, void *addr, unsigned int *len, int flags);
/* posix_spawn_file_actions_addchdir_np: the child's working directory. */
int cs_spawn_add_chdir(void *actions, const char *path);
/* A datagram socket bound to an abstract AF_UNIX name (no file, so no permission
   problem when the service drops privileges), with SO_PASSCRED on. */
int cs_abstract_dgram_socket(const char *name);
/* recv one datagram; *pid gets the sender's pid from SCM_CREDENTIALS (0 if absent). */
long cs_recv_with_pid(int fd, void *buf, unsigned long len, int *pid);
/* Send one datagram to an AF_UNIX path, or an abstract name when path starts with '@'. */
long cs_send_unix_datagram(const char *path, const void *buf, unsigned long len);

/* Bytes waiting to be read in a pipe or socket (ioctl is variadic). */
static inline int cs_fionread(int fd, int *count) { return ioctl(fd, FIONREAD, count); }

static inline int cs_fcntl_int(int fd, int cmd, int arg) { return fcntl(fd, cmd, arg); }
static inline int cs_fcntl_lock(int fd, int cmd, struct flock *lk) { return fcntl(fd, cmd, lk); }

/* Resource limits by plain int: glibc's enum-typed prototypes and the macros that alias
 * them (RLIMIT_MSGQUEUE, RLIM_INFINITY) do not import cleanly. */
static const int cs_RLIMIT_AS = RLIMIT_AS;
static const int cs_RLIMIT_CORE = RLIMIT_CORE;
static const int cs_RLIMIT_CPU = RLIMIT_CPU;
static const int cs_RLIMIT_DATA = RLIMIT_DATA;
static const int cs_RLIMIT_FSIZE = RLIMIT_FSIZE;
static const int cs_RLIMIT_MEMLOCK = RLIMIT_MEMLOCK;
static const int cs_RLIMIT_MSGQUEUE = RLIMIT_MSGQUEUE;
static const int cs_RLIMIT_NOFILE = RLIMIT_NOFILE;
static const int cs_RLIMIT_NPROC = RLIMIT_NPROC;
static const int cs_RLIMIT_RSS = RLIMIT_RSS;
static const int cs_RLIMIT_STACK = RLIMIT_STACK;
static inline rlim_t cs_rlim_infinity(void) { return RLIM_INFINITY; }
static inline int cs_getrlimit(int resource, struct rlimit *r) { return getrlimit(resource, r); }
static inline int cs_setrlimit(int resource, const struct rlimit *r) { return setrlimit(resource, r); }

/* pidfd_open(2): no glibc wrapper before 2.36, and syscall(2) is variadic. */
static inline int cs_pidfd_open(pid_t pid, unsigned int flags) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, flags);
#else
    return (int)syscall(434, pid, flags);
#endif
}

/* SO_PEERCRED of a connected AF_UNIX socket (struct ucred needs _GNU_SOURCE). */
int cs_peer_credentials(int fd, unsigned int *uid, int *pid);

/* The dynamic loader's base address: 0 in a fully static executable. */
unsigned long cs_interpreter_base(void);

#endif
