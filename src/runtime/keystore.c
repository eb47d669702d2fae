/* keystore.c - link keys kept across runs in a text file; see keystore.h. */
#include "keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static int hex_byte(const char *s)
{
	int hi = bt_hex_digit(s[0]), lo = hi < 0 ? -1 : bt_hex_digit(s[1]);
	return lo < 0 ? -1 : hi << 4 | lo;
}

int ks_parse_line(const char *line, bt_addr *local, bt_addr *peer, uint8_t key[16], uint8_t *type)
{
	char a[18], b[18], t[3], k[33];
	int end = 0;
	if (sscanf(line, " %17s %17s %2s %32s %n", a, b, t, k, &end) != 4 || line[end] != '\0')
		return -EINVAL;
	if (bt_addr_parse(a, local) < 0 || bt_addr_parse(b, peer) < 0 || strlen(t) != 2 || strlen(k) != 32)
		return -EINVAL;
	int v = hex_byte(t);
	if (v < 0)
		return -EINVAL;
	*type = (uint8_t)v;
	for (int i = 0; i < 16; i++) {
		if ((v = hex_byte(k + 2 * i)) < 0)
			return -EINVAL;
		key[i] = (uint8_t)v;
	}
	return 0;
}

static int fail(char *err, size_t errlen, int e, const char *path, const char *what)
{
	snprintf(err, errlen, "keystore %s: %s: %s", path, what, strerror(e));
	return -e;
}

/* Reads the file's lines into lines[] (each malloc'd, newline stripped). 0 if it does not
 * exist. */
static int read_lines(const char *path, char ***out, size_t *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : fail(err, errlen, errno, path, "open");
	char **lines = calloc(KS_MAX_LINES, sizeof *lines);
	if (!lines) {
		fclose(f);
		return fail(err, errlen, ENOMEM, path, "read");
	}
	char buf[KS_LINE_MAX + 2];
	int rc = 0;
	while (fgets(buf, sizeof buf, f)) {
		size_t len = strlen(buf);
		bool whole = len && buf[len - 1] == '\n';
		if (!whole && !feof(f)) { /* longer than any bond: not ours, skip the rest of it */
			int c;
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			continue;
		}
		if (whole)
			buf[--len] = '\0';
		if (*n == KS_MAX_LINES) {
			snprintf(err, errlen, "keystore %s: more than %d lines", path, KS_MAX_LINES);
			rc = -EFBIG;
			break;
		}
		if (!(lines[*n] = strdup(buf))) {
			rc = fail(err, errlen, ENOMEM, path, "read");
			break;
		}
		(*n)++;
	}
	if (!rc && ferror(f))
		rc = fail(err, errlen, EIO, path, "read");
	fclose(f);
	*out = lines;
	return rc;
}

static void free_lines(char **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

int ks_load(const char *path, const bt_addr *local, ks_key_fn fn, void *ctx, char *err, size_t errlen)
{
	char **lines;
	size_t n;
	int rc = read_lines(path, &lines, &n, err, errlen);
	int found = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		bt_addr l, p;
		uint8_t key[16], type;
		if (ks_parse_line(lines[i], &l, &p, key, &type) == 0 && bt_addr_eq(&l, local)) {
			fn(ctx, &p, key, type);
			found++;
		}
	}
	free_lines(lines, n);
	return rc < 0 ? rc : found;
}

static void format_line(char *out, size_t cap, const bt_addr *local, const bt_addr *peer, const uint8_t key[16],
			uint8_t type)
{
	char a[BT_ADDR_STRLEN], b[BT_ADDR_STRLEN], k[33];
	for (int i = 0; i < 16; i++)
		snprintf(k + 2 * i, 3, "%02x", key[i]);
	snprintf(out, cap, "%s %s %02x %s", bt_addr_format(local, a), bt_addr_format(peer, b), type, k);
}

static int ks_rewrite(const char *path, const bt_addr *local, const bt_addr *peer, const uint8_t key[16],
		      uint8_t type, char *err, size_t errlen);
static int ks_locked(const char *path, const bt_addr *local, const bt_addr *peer, const uint8_t key[16],
		     uint8_t type, int lock_wait_ms, char *err, size_t errlen);

/* Several processes may share one file: the read-modify-write runs under an exclusive flock
 * of "PATH.lock" (the file itself is replaced by rename, so it cannot carry the lock). */
int ks_store(const char *path, const bt_addr *local, const bt_addr *peer, const uint8_t key[16], uint8_t type,
	     char *err, size_t errlen)
{
	return ks_store_timed(path, local, peer, key, type, KS_LOCK_WAIT_MS, err, errlen);
}

/* Takes the exclusive lock, waiting at most wait_ms for another holder to let go. */
static int lock_within(int fd, int wait_ms)
{
	for (int waited = 0;; waited += 20) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (waited >= wait_ms)
			return -ETIMEDOUT;
		const struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

int ks_store_timed(const char *path, const bt_addr *local, const bt_addr *peer, const uint8_t key[16],
		   uint8_t type, int lock_wait_ms, char *err, size_t errlen)
{
	int rc = ks_locked(path, local, peer, key, type, lock_wait_ms, err, errlen);
	return rc < 0 ? rc : 0;
}

int ks_delete(const char *path, const bt_addr *local, const bt_addr *peer, char *err, size_t errlen)
{
	return ks_locked(path, local, peer, NULL, 0, KS_LOCK_WAIT_MS, err, errlen);
}

/* The read-modify-write of the file under PATH.lock: key stores (replaces) the bond, NULL
 * deletes it. Returns how many lines of that bond were replaced or deleted, or -errno. */
static int ks_locked(const char *path, const bt_addr *local, const bt_addr *peer, const uint8_t key[16],
		     uint8_t type, int lock_wait_ms, char *err, size_t errlen)
{
	char lock[4096];
	if (snprintf(lock, sizeof lock, "%s.lock", path) >= (int)sizeof lock)
		return fail(err, errlen, ENAMETOOLONG, path, "lock");
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(err, errlen, errno, lock, "open");
	int lr = lock_within(fd, lock_wait_ms);
	if (lr < 0) {
		close(fd);
		if (lr == -ETIMEDOUT) {
			char a[BT_ADDR_STRLEN];
			snprintf(err, errlen, "%s: another process held the lock for %d ms: the key of %s was not %s",
				 lock, lock_wait_ms, bt_addr_format(peer, a), key ? "saved" : "deleted");
			return -ETIMEDOUT;
		}
		return fail(err, errlen, -lr, lock, "flock");
	}
	int rc = ks_rewrite(path, local, peer, key, type, err, errlen);
	close(fd); /* releases the lock */
	return rc;
}

static int ks_rewrite(const char *path, const bt_addr *local, const bt_addr *peer, const uint8_t key[16],
		      uint8_t type, char *err, size_t errlen)
{
	char **lines;
	size_t n;
	int rc = read_lines(path, &lines, &n, err, errlen);
	if (rc < 0) {
		free_lines(lines, n);
		return rc;
	}
	int found = 0;
	for (size_t i = 0; i < n; i++) {
		bt_addr l, p;
		uint8_t k[16], t;
		if (ks_parse_line(lines[i], &l, &p, k, &t) == 0 && bt_addr_eq(&l, local) && bt_addr_eq(&p, peer))
			found++;
	}
	if (!key && !found) { /* nothing to delete: the file stays as it is */
		free_lines(lines, n);
		return 0;
	}
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof tmp) {
		free_lines(lines, n);
		return fail(err, errlen, ENAMETOOLONG, path, "write");
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
	if (!f) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		free_lines(lines, n);
		return fail(err, errlen, e, tmp, "create");
	}
	char mine[KS_LINE_MAX] = "";
	if (key)
		format_line(mine, sizeof mine, local, peer, key, type);
	bool written = !key; /* deleting: no line of this bond is written */
	for (size_t i = 0; i < n; i++) {
		bt_addr l, p;
		uint8_t k[16], t;
		if (ks_parse_line(lines[i], &l, &p, k, &t) == 0 && bt_addr_eq(&l, local) && bt_addr_eq(&p, peer)) {
			if (!written)
				fprintf(f, "%s\n", mine); /* the new key in the old one's place */
			written = true;
			continue;
		}
		fprintf(f, "%s\n", lines[i]);
	}
	if (!written)
		fprintf(f, "%s\n", mine);
	free_lines(lines, n);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		int e = errno;
		fclose(f);
		unlink(tmp);
		return fail(err, errlen, e, tmp, "write");
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return fail(err, errlen, e, path, "rename");
	}
	return found;
}

/* ------------------------------------------------------------------ the writer thread */

typedef struct ks_job {
	bt_addr peer;
	uint8_t key[16];
	uint8_t type;
	struct ks_job *next;
} ks_job;

struct ks_writer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	ks_job *head, **tail;
	bool stop, started, busy;
	pthread_t thread;
	bt_addr local;
	int lock_wait_ms;
	char path[]; /* fixed when the adapter opened */
};

ks_writer *ks_writer_new(const char *path, const bt_addr *local, int lock_wait_ms)
{
	size_t n = strlen(path) + 1;
	ks_writer *w = calloc(1, sizeof *w + n);
	if (!w)
		return NULL;
	memcpy(w->path, path, n);
	w->local = *local;
	w->lock_wait_ms = lock_wait_ms;
	w->tail = &w->head;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	return w;
}

/* Writes the queued keys one by one, without w->mu while it writes; ends on stop once the
 * queue is empty. */
static void *ks_writer_main(void *arg)
{
	ks_writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->head && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		ks_job *j = w->head;
		if (!j)
			break;
		w->head = j->next;
		if (!w->head)
			w->tail = &w->head;
		w->busy = true;
		pthread_mutex_unlock(&w->mu);
		char err[512];
		if (ks_store_timed(w->path, &w->local, &j->peer, j->key, j->type, w->lock_wait_ms, err, sizeof err) < 0)
			fprintf(stderr, "btsock: %s\n", err);
		free(j);
		pthread_mutex_lock(&w->mu);
		w->busy = false;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

void ks_writer_post(ks_writer *w, const bt_addr *peer, const uint8_t key[16], uint8_t type)
{
	ks_job *j = calloc(1, sizeof *j);
	if (!j) {
		fprintf(stderr, "btsock: %s: out of memory: a link key was not saved\n", w->path);
		return;
	}
	j->peer = *peer;
	memcpy(j->key, key, 16);
	j->type = type;
	pthread_mutex_lock(&w->mu);
	*w->tail = j;
	w->tail = &j->next;
	if (!w->started && pthread_create(&w->thread, NULL, ks_writer_main, w) == 0)
		w->started = true;
	if (!w->started) { /* no thread: the key stays queued for ks_writer_free */
		pthread_mutex_unlock(&w->mu);
		return;
	}
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

bool ks_writer_idle(ks_writer *w)
{
	pthread_mutex_lock(&w->mu);
	bool idle = !w->head && !w->busy;
	pthread_mutex_unlock(&w->mu);
	return idle;
}

bool ks_writer_sync(ks_writer *w, int timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->mu);
	while ((w->head || w->busy) && w->started)
		if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0)
			break;
	bool idle = !w->head && !w->busy;
	pthread_mutex_unlock(&w->mu);
	return idle;
}

const char *ks_writer_path(const ks_writer *w)
{
	return w->path;
}

void ks_writer_free(ks_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->cv);
	bool started = w->started;
	pthread_mutex_unlock(&w->mu);
	if (started)
		pthread_join(w->thread, NULL);
	else
		ks_writer_main(w); /* the thread never started: write what is queued here */
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
}
