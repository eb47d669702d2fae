/* keystore.c - link keys kept across runs in a text file; see keystore.h. */
#include "keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

/* Several processes may share one file: the read-modify-write runs under an exclusive flock
 * of "PATH.lock" (the file itself is replaced by rename, so it cannot carry the lock). */
int ks_store(const char *path, const bt_addr *local, const bt_addr *peer, const uint8_t key[16], uint8_t type,
	     char *err, size_t errlen)
{
	char lock[4096];
	if (snprintf(lock, sizeof lock, "%s.lock", path) >= (int)sizeof lock)
		return fail(err, errlen, ENAMETOOLONG, path, "lock");
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(err, errlen, errno, lock, "open");
	if (flock(fd, LOCK_EX) < 0) {
		int e = errno;
		close(fd);
		return fail(err, errlen, e, lock, "flock");
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
	char mine[KS_LINE_MAX];
	format_line(mine, sizeof mine, local, peer, key, type);
	bool written = false;
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
	return 0;
}
