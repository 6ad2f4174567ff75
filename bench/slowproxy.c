/*
 * slowproxy: a loopback TCP proxy that delays every byte by a fixed time in
 * each direction, to play a slow holder in the tail-latency bench of issue
 * #8 item 4.  It passes TLS through untouched (it never looks at the bytes),
 * and it keeps the pipelining of the connection: a chunk read at time t is
 * written at t + delay whatever is still queued before it, so several
 * requests in flight on one connection are each delayed once, not queued
 * behind each other's delays.
 *
 * Usage: slowproxy -l LISTEN-PORT -t TARGET-PORT -d DELAY-MS
 * Both ends are 127.0.0.1.  It prints "ready PORT" on stdout once
 * listening (-l 0 picks a free port) and runs until killed.
 *
 * The delay can change while connections stay up: SIGUSR1 sets it to 0,
 * SIGUSR2 back to DELAY-MS.  A change applies to bytes read from then on
 * (bytes already queued keep their time), so the order of the stream is
 * kept.  tests/integration/test-quorum-select.sh uses this to take the
 * delay away from a holder without cutting its TLS connection.
 * A bench and test tool, not part of keymesh.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 16384

typedef struct chunk {
	struct chunk *next;
	struct timespec due;
	size_t len;
	unsigned char data[CHUNK];
} chunk;

/* One direction of one connection: a reader queues, a writer sends. */
typedef struct {
	int from, to;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	chunk *head, *tail;
	int eof;
} pipe_dir;

static long delay_ns;
/* SIGUSR1 clears it, SIGUSR2 sets it: whether delay_ns applies */
static volatile sig_atomic_t delay_on = 1;
static int target_port;

static void
on_signal(int sig)
{
	delay_on = sig == SIGUSR2;
}


/* A whole number from the command line, or a one-line error and exit 2. */
static long
bench_arg(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
		fprintf(stderr, "invalid number '%s' (use %ld..%ld)\n", s, min,
		    max);
		exit(2);
	}
	return v;
}

static void
ts_add(struct timespec *t, long ns)
{
	t->tv_nsec += ns % 1000000000L;
	t->tv_sec += ns / 1000000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_nsec -= 1000000000L;
		t->tv_sec++;
	}
}

static void *
reader_main(void *arg)
{
	pipe_dir *p = arg;

	for (;;) {
		chunk *c = malloc(sizeof(*c));
		ssize_t n;

		if (c == NULL) {
			break;
		}
		n = read(p->from, c->data, sizeof(c->data));
		if (n <= 0) {
			free(c);
			break;
		}
		c->len = (size_t)n;
		c->next = NULL;
		clock_gettime(CLOCK_MONOTONIC, &c->due);
		ts_add(&c->due, delay_on ? delay_ns : 0);
		pthread_mutex_lock(&p->mu);
		if (p->tail != NULL) {
			p->tail->next = c;
		} else {
			p->head = c;
		}
		p->tail = c;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	pthread_mutex_lock(&p->mu);
	p->eof = 1;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void *
writer_main(void *arg)
{
	pipe_dir *p = arg;

	for (;;) {
		chunk *c;
		size_t off = 0;

		pthread_mutex_lock(&p->mu);
		while (p->head == NULL && !p->eof) {
			pthread_cond_wait(&p->cv, &p->mu);
		}
		c = p->head;
		if (c != NULL) {
			p->head = c->next;
			if (p->head == NULL) {
				p->tail = NULL;
			}
		}
		pthread_mutex_unlock(&p->mu);
		if (c == NULL) {
			break;
		}
		while (clock_nanosleep(
		           CLOCK_MONOTONIC, TIMER_ABSTIME, &c->due, NULL)
		    == EINTR) {
		}
		while (off < c->len) {
			ssize_t n = write(p->to, c->data + off, c->len - off);

			if (n <= 0) {
				free(c);
				goto done;
			}
			off += (size_t)n;
		}
		free(c);
	}
done:
	/* Half-close so the other side sees the end, as a real link would. */
	shutdown(p->to, SHUT_WR);
	return NULL;
}

static void *
conn_main(void *arg)
{
	int cfd = (int)(intptr_t)arg, sfd, one = 1;
	struct sockaddr_in a;
	pipe_dir up, down;
	pthread_t th[4];
	int i;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)target_port);
	if ((sfd = socket(AF_INET, SOCK_STREAM, 0)) < 0
	    || connect(sfd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(cfd);
		if (sfd >= 0) {
			close(sfd);
		}
		return NULL;
	}
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&up, 0, sizeof(up));
	memset(&down, 0, sizeof(down));
	up.from = cfd;
	up.to = sfd;
	down.from = sfd;
	down.to = cfd;
	pthread_mutex_init(&up.mu, NULL);
	pthread_cond_init(&up.cv, NULL);
	pthread_mutex_init(&down.mu, NULL);
	pthread_cond_init(&down.cv, NULL);
	pthread_create(&th[0], NULL, reader_main, &up);
	pthread_create(&th[1], NULL, writer_main, &up);
	pthread_create(&th[2], NULL, reader_main, &down);
	pthread_create(&th[3], NULL, writer_main, &down);
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
	}
	close(cfd);
	close(sfd);
	pthread_mutex_destroy(&up.mu);
	pthread_cond_destroy(&up.cv);
	pthread_mutex_destroy(&down.mu);
	pthread_cond_destroy(&down.cv);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int c, lfd, listen_port = -1, one = 1;
	double delay_ms = -1;
	struct sigaction sa;

	while ((c = getopt(argc, argv, "l:t:d:")) != -1) {
		switch (c) {
		case 'l':
			listen_port = (int)bench_arg(optarg, 0, 65535); /* 0: any */
			break;
		case 't':
			target_port = (int)bench_arg(optarg, 1, 65535);
			break;
		case 'd':
			delay_ms = atof(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (listen_port < 0 || listen_port > 65535 || target_port <= 0
	    || target_port > 65535 || delay_ms < 0) {
		goto usage;
	}
	delay_ns = (long)(delay_ms * 1e6);
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)listen_port);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0
	    || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))
	        != 0
	    || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0
	    || listen(lfd, 64) != 0
	    || getsockname(lfd, (struct sockaddr *)&a, &al) != 0) {
		perror("slowproxy: listen");
		return 1;
	}
	printf("ready %u\n", (unsigned)ntohs(a.sin_port));
	fflush(stdout);
	for (;;) {
		pthread_t th;
		int cfd = accept(lfd, NULL, NULL);

		if (cfd < 0) {
			if (errno == EINTR) {
				continue;
			}
			perror("slowproxy: accept");
			return 1;
		}
		if (pthread_create(&th, NULL, conn_main, (void *)(intptr_t)cfd)
		    != 0) {
			close(cfd);
			continue;
		}
		pthread_detach(th);
	}
usage:
	fprintf(stderr,
	    "usage: slowproxy -l LISTEN-PORT -t TARGET-PORT "
	    "-d DELAY-MS\n"
	    "  (SIGUSR1: delay 0, SIGUSR2: DELAY-MS again)\n");
	return 2;
}
