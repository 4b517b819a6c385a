/*
 * Helpers for tests that start real servers: spawn a program with its
 * stdout on a pipe, read a line with a timeout, stop it, find a free
 * loopback port, wait until a URL answers. Header-only; static functions.
 */
#ifndef SONDE_TEST_PROC_H
#define SONDE_TEST_PROC_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static __attribute__((unused)) double proc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static __attribute__((unused)) void proc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Start argv with stdout on a pipe (*out_fd, -1 if not wanted) and stderr
 * to stderr_path (NULL: inherited). Returns the pid or -1. */
static __attribute__((unused)) pid_t proc_spawn(char *const argv[], int *out_fd,
                                                const char *stderr_path)
{
    int p[2] = {-1, -1};
    if (out_fd && pipe(p) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out_fd) {
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        posix_spawn_file_actions_addclose(&fa, p[0]);
        posix_spawn_file_actions_addclose(&fa, p[1]);
    }
    if (stderr_path)
        posix_spawn_file_actions_addopen(&fa, 2, stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (out_fd) {
        close(p[1]);
        if (rc != 0) {
            close(p[0]);
            return -1;
        }
        *out_fd = p[0];
    }
    return rc == 0 ? pid : -1;
}

/* Read one line (without the newline) within timeout_ms. Returns its
 * length or -1. */
static __attribute__((unused)) int proc_read_line(int fd, char *buf, size_t n, int timeout_ms)
{
    size_t len = 0;
    double end = proc_now() + timeout_ms / 1000.0;
    while (len + 1 < n) {
        int left = (int)((end - proc_now()) * 1000);
        if (left <= 0)
            return -1;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, left) <= 0)
            continue;
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r <= 0)
            return -1;
        if (c == '\n')
            break;
        buf[len++] = c;
    }
    buf[len] = '\0';
    return (int)len;
}

/* SIGTERM, then SIGKILL after a second; reaps the child. */
static __attribute__((unused)) void proc_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        proc_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* A loopback TCP port that was free a moment ago. */
static __attribute__((unused)) int proc_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

#endif
