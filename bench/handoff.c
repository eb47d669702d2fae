/* handoff: what one thread hand-off costs on this machine. Two threads of one process, pinned
 * by the caller (bench/run.sh: taskset -c 0), bounce 16 bytes over a UNIX socketpair with
 * blocking send/recv: each round trip is two hand-offs (a write that wakes a thread blocked in
 * recv). A btsock socket's echo crosses four of them on top of the controller's path
 * (application -> loop thread -> controller ... -> loop thread -> application, on each side),
 * because a connected socket is a real fd served by the adapter's loop thread: the raw echo
 * (bench/btvirt-raw.c) plus four of these is the floor of `btsock bench echo` here.
 * Build: cc -O2 -pthread -o handoff handoff.c   Usage: handoff [round trips] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

static int sv[2];
static long rounds = 20000;

static void *bounce(void *arg)
{
	(void)arg;
	char b[16];
	for (long i = 0; i < rounds; i++) {
		if (recv(sv[1], b, sizeof b, MSG_WAITALL) != (ssize_t)sizeof b ||
		    send(sv[1], b, sizeof b, 0) != (ssize_t)sizeof b)
			exit(1);
	}
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		rounds = atol(argv[1]);
	if (rounds < 1 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return perror("handoff"), 1;
	pthread_t t;
	double *v = malloc((size_t)rounds * sizeof *v);
	if (!v || pthread_create(&t, NULL, bounce, NULL) != 0)
		return perror("handoff"), 1;
	char b[16] = "0123456789abcdef";
	for (long i = 0; i < rounds; i++) {
		double t0 = now_us();
		if (send(sv[0], b, sizeof b, 0) != (ssize_t)sizeof b ||
		    recv(sv[0], b, sizeof b, MSG_WAITALL) != (ssize_t)sizeof b)
			return perror("handoff"), 1;
		v[i] = now_us() - t0;
	}
	pthread_join(t, NULL);
	qsort(v, (size_t)rounds, sizeof *v, cmp);
	printf("hand-off: %.1f us median (half of a %.1f us socketpair round trip between two threads, %ld round trips)\n",
	       v[rounds / 2] / 2, v[rounds / 2], rounds);
	free(v);
	return 0;
}
