/*
 * pause: the process that holds a pod's namespaces open.
 *
 * It sleeps until SIGINT or SIGTERM arrives, and reaps any child that is
 * re-parented to it (it is PID 1 of the pod's PID namespace when that
 * namespace is shared). Built static so the image holds this file only.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
    (void)sig;
    _exit(0);
}

static void on_child(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    struct sigaction stop, child;

    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        printf("items-platform pause 3.10-local\n");
        return 0;
    }
    if (getpid() != 1) {
        fprintf(stderr, "pause: warning: not running as PID 1\n");
    }

    memset(&stop, 0, sizeof(stop));
    stop.sa_handler = on_stop;
    if (sigaction(SIGINT, &stop, NULL) < 0 || sigaction(SIGTERM, &stop, NULL) < 0) {
        perror("pause: sigaction");
        return 1;
    }
    memset(&child, 0, sizeof(child));
    child.sa_handler = on_child;
    child.sa_flags = SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &child, NULL) < 0) {
        perror("pause: sigaction");
        return 1;
    }

    for (;;) {
        pause();
    }
}
