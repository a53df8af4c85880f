// GNU extensions need _GNU_SOURCE before any system header, so they live here.
#define _GNU_SOURCE
#include <spawn.h>
#include <sys/auxv.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <stddef.h>
#include <limits.h>
#include <malloc.h>
#include "CSupport.h"

int cs_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int cs_posix_spawn_setsid_flag(void) { return POSIX_SPAWN_SETSID; }
void cs_malloc_keep_heap(void) { mallopt(M_TRIM_THRESHOLD, INT_MAX); }

int cs_spawn_add_chdir(void *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np((posix_spawn_file_actions_t *)actions, path);
}

static socklen_t unix_address(struct sockaddr_un *sun, const char *name) {
    size_t n = strlen(name);
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (n == 0 || n >= sizeof sun->sun_path) return 0;
    memcpy(sun->sun_path, name, n);
    if (name[0] == '@') sun->sun_path[0] = 0; /* abstract namespace */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

int cs_abstract_dgram_socket(const char *name) {
    struct sockaddr_un sun;
    socklen_t len = unix_address(&sun, name);
    if (len == 0) { errno = ENAMETOOLONG; return -1; }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0 ||
        bind(fd, (struct sockaddr *)&sun, len) < 0) {
        int e = errno; close(fd); errno = e; return -1;
    }
    return fd;
}

long cs_recv_with_pid(int fd, void *buf, unsigned long len, int *pid) {
    struct iovec iov = { buf, len };
    union { struct cmsghdr align; char space[CMSG_SPACE(sizeof(struct ucred))]; } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.space;
    msg.msg_controllen = sizeof control.space;
    *pid = 0;
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof cred);
            *pid = cred.pid;
        }
    }
    return (long)n;
}

long cs_send_unix_datagram(const char *path, const void *buf, unsigned long len) {
    struct sockaddr_un sun;
    socklen_t alen = unix_address(&sun, path);
    if (alen == 0) { errno = ENAMETOOLONG; return -1; }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ssize_t n = sendto(fd, buf, len, MSG_NOSIGNAL, (struct sockaddr *)&sun, alen);
    int e = errno;
    close(fd);
    errno = e;
    return (long)n;
}

int cs_accept4(int fd, void *addr, unsigned int *len, int flags) {
    return accept4(fd, (struct sockaddr *)addr, (socklen_t *)len, flags);
}

unsigned long cs_interpreter_base(void) {
    return getauxval(AT_BASE);
}

int cs_peer_credentials(int fd, unsigned int *uid, int *pid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -1;
    *uid = cred.uid;
    *pid = cred.pid;
    return 0;
}
