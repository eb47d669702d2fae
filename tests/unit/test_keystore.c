/* test_keystore.c - the link key file (src/runtime/keystore.c): one bond per line, keys as
 * Link_Key_Notification gives them (Core spec Vol 4 Part E 7.7.24), written with mode 0600. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../common/lock_holder.h"

#include "runtime/keystore.h"

typedef struct {
	int n;
	bt_addr peer[8];
	uint8_t key[8][16];
	uint8_t type[8];
} seen;

static void on_key(void *ctx, const bt_addr *peer, const uint8_t key[16], uint8_t type)
{
	seen *s = ctx;
	if (s->n < 8) {
		s->peer[s->n] = *peer;
		memcpy(s->key[s->n], key, 16);
		s->type[s->n] = type;
	}
	s->n++;
}

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/btsock-ks-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/keys", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char lock[160];
	snprintf(lock, sizeof lock, "%s.lock", path);
	unlink(path);
	unlink(lock);
	assert_int_equal(rmdir(dir), 0); /* no temporary file left behind */
	return 0;
}

static void write_file(const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_file(void)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static bt_addr addr(const char *s)
{
	bt_addr a;
	assert_int_equal(bt_addr_parse(s, &a), 0);
	return a;
}

static void test_parse_line(void **state)
{
	(void)state;
	bt_addr l, p;
	uint8_t k[16], t;
	assert_int_equal(ks_parse_line("00:AA:01:01:00:42 00:aa:01:00:00:00 04 000102030405060708090a0b0c0d0eFF",
				       &l, &p, k, &t),
			 0);
	assert_int_equal(t, 4);
	assert_int_equal(k[0], 0x00);
	assert_int_equal(k[10], 0x0a);
	assert_int_equal(k[15], 0xff);
	bt_addr want = addr("00:AA:01:00:00:00");
	assert_true(bt_addr_eq(&p, &want));
	static const char *bad[] = {
		"",
		"# a comment",
		"00:AA:01:01:00:42 00:AA:01:00:00:00 04",                                      /* no key */
		"00:AA:01:01:00:42 00:AA:01:00:00:00 04 000102030405060708090a0b0c0d0e",       /* 15 bytes */
		"00:AA:01:01:00:42 00:AA:01:00:00:00 04 000102030405060708090a0b0c0d0e0f00",   /* 17 */
		"00:AA:01:01:00:42 00:AA:01:00:00:00 4 000102030405060708090a0b0c0d0e0f",      /* type 1 digit */
		"00:AA:01:01:00:42 00:AA:01:00:00:00 0g 000102030405060708090a0b0c0d0e0f",     /* not hex */
		"00:AA:01:01:00:42 00:AA:01:00:00:00 04 0001020304050607080x0a0b0c0d0e0f",
		"00:AA:01:01:00 00:AA:01:00:00:00 04 000102030405060708090a0b0c0d0e0f",        /* short addr */
		"00:AA:01:01:00:42 00:AA:01:00:00:00 04 000102030405060708090a0b0c0d0e0f x",   /* trailing */
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(ks_parse_line(bad[i], &l, &p, k, &t), -EINVAL);
}

/* No file: no keys, no error. A stored bond comes back for its local address only. */
static void test_store_and_load(void **state)
{
	(void)state;
	char err[256] = "";
	seen s = { 0 };
	bt_addr me = addr("00:AA:01:01:00:42"), other_me = addr("00:AA:01:01:00:43");
	bt_addr peer = addr("00:AA:01:00:00:00");
	assert_int_equal(ks_load(path, &me, on_key, &s, err, sizeof err), 0);
	uint8_t key[16];
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)(0xf0 + i);
	assert_int_equal(ks_store(path, &me, &peer, key, 0x04, err, sizeof err), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600); /* link keys are secrets */
	assert_string_equal(read_file(), "00:AA:01:01:00:42 00:AA:01:00:00:00 04 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\n");
	assert_int_equal(ks_load(path, &me, on_key, &s, err, sizeof err), 1);
	assert_int_equal(s.n, 1);
	assert_true(bt_addr_eq(&s.peer[0], &peer));
	assert_memory_equal(s.key[0], key, 16);
	assert_int_equal(s.type[0], 0x04);
	s.n = 0;
	assert_int_equal(ks_load(path, &other_me, on_key, &s, err, sizeof err), 0);
	assert_int_equal(s.n, 0);
}

/* A new key for a known bond replaces the old line in place; other lines, bonds or not, stay. */
static void test_replace_keeps_other_lines(void **state)
{
	(void)state;
	write_file("# btsock keys\n"
		   "00:AA:01:01:00:42 00:AA:01:00:00:00 04 00000000000000000000000000000000\n"
		   "00:AA:01:01:00:43 00:AA:01:00:00:00 05 11111111111111111111111111111111\n"
		   "not a bond\n");
	char err[256] = "";
	bt_addr me = addr("00:AA:01:01:00:42"), peer = addr("00:AA:01:00:00:00"), peer2 = addr("00:AA:01:00:00:07");
	uint8_t key[16];
	memset(key, 0x22, 16);
	assert_int_equal(ks_store(path, &me, &peer, key, 0x07, err, sizeof err), 0);
	assert_int_equal(ks_store(path, &me, &peer2, key, 0x04, err, sizeof err), 0);
	assert_string_equal(read_file(), "# btsock keys\n"
					  "00:AA:01:01:00:42 00:AA:01:00:00:00 07 22222222222222222222222222222222\n"
					  "00:AA:01:01:00:43 00:AA:01:00:00:00 05 11111111111111111111111111111111\n"
					  "not a bond\n"
					  "00:AA:01:01:00:42 00:AA:01:00:00:07 04 22222222222222222222222222222222\n");
	seen s = { 0 };
	assert_int_equal(ks_load(path, &me, on_key, &s, err, sizeof err), 2);
}

/* Deleting a bond removes its lines only (every line of it, other adapters' bonds, comments and
 * foreign lines stay); deleting one that is not there is 0 and leaves the file untouched; no
 * file at all is 0 too. */
static void test_delete(void **state)
{
	(void)state;
	char err[256] = "";
	bt_addr me = addr("00:AA:01:01:00:42"), peer = addr("00:AA:01:00:00:00"), peer2 = addr("00:AA:01:00:00:07");
	assert_int_equal(ks_delete(path, &me, &peer, err, sizeof err), 0);
	assert_int_equal(access(path, F_OK), -1); /* not created by a delete */
	write_file("# btsock keys\n"
		   "00:AA:01:01:00:42 00:AA:01:00:00:00 04 00000000000000000000000000000000\n"
		   "00:AA:01:01:00:43 00:AA:01:00:00:00 05 11111111111111111111111111111111\n"
		   "not a bond\n"
		   "00:aa:01:01:00:42 00:aa:01:00:00:00 05 33333333333333333333333333333333\n");
	assert_int_equal(ks_delete(path, &me, &peer, err, sizeof err), 2);
	const char *left = "# btsock keys\n"
			   "00:AA:01:01:00:43 00:AA:01:00:00:00 05 11111111111111111111111111111111\n"
			   "not a bond\n";
	assert_string_equal(read_file(), left);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ks_delete(path, &me, &peer2, err, sizeof err), 0);
	assert_string_equal(read_file(), left);
	seen s = { 0 };
	assert_int_equal(ks_load(path, &me, on_key, &s, err, sizeof err), 0);
}

/* Bounded: an over-long line is skipped (no bond is that long), a file of more than
 * KS_MAX_LINES lines is refused, a path that cannot be written says why. */
static void test_bounds_and_errors(void **state)
{
	(void)state;
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 1000; i++)
		fputc('x', f);
	fputs("\n00:AA:01:01:00:42 00:AA:01:00:00:00 04 000102030405060708090a0b0c0d0e0f\n", f);
	fclose(f);
	char err[256] = "";
	seen s = { 0 };
	bt_addr me = addr("00:AA:01:01:00:42");
	assert_int_equal(ks_load(path, &me, on_key, &s, err, sizeof err), 1);
	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < KS_MAX_LINES + 1; i++)
		fputs("#\n", f);
	fclose(f);
	assert_int_equal(ks_load(path, &me, on_key, &s, err, sizeof err), -EFBIG);
	assert_non_null(strstr(err, "lines"));
	uint8_t key[16] = { 0 };
	assert_int_equal(ks_store(path, &me, &me, key, 4, err, sizeof err), -EFBIG);
	assert_int_equal(ks_store("/nonexistent-dir/keys", &me, &me, key, 4, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent-dir/keys"));
}

/* Processes sharing one file do not lose each other's keys (flock of PATH.lock). */
static void test_concurrent_writers(void **state)
{
	(void)state;
	enum { WRITERS = 8, EACH = 10 };
	bt_addr me = addr("00:AA:01:01:00:42");
	for (int w = 0; w < WRITERS; w++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			char err[256];
			for (int i = 0; i < EACH; i++) {
				bt_addr peer = { { (uint8_t)i, (uint8_t)w, 0, 0, 0xbb, 0 } };
				uint8_t key[16];
				memset(key, w * EACH + i, 16);
				if (ks_store(path, &me, &peer, key, 4, err, sizeof err) < 0)
					_exit(1);
			}
			_exit(0);
		}
	}
	for (int w = 0; w < WRITERS; w++) {
		int st;
		assert_true(wait(&st) > 0);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	char err[256];
	seen s = { 0 };
	assert_int_equal(ks_load(path, &me, on_key, &s, err, sizeof err), WRITERS * EACH);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Another process holds the lock: a store gives up after its bound with a sentence, and the
 * key writer never makes its poster wait; it writes the key once the lock is free. */
static void test_locked_file(void **state)
{
	(void)state;
	bt_addr me = addr("00:AA:01:01:00:42"), peer = addr("00:AA:01:00:00:07");
	uint8_t key[16];
	memset(key, 0x5a, sizeof key);
	int release;
	pid_t holder = lock_holder(path, &release);
	char err[256];
	uint64_t t0 = mono_ms();
	assert_int_equal(ks_store_timed(path, &me, &peer, key, 4, 300, err, sizeof err), -ETIMEDOUT);
	assert_true(mono_ms() - t0 >= 300 && mono_ms() - t0 < 3000);
	assert_non_null(strstr(err, "lock"));
	assert_non_null(strstr(err, "00:AA:01:00:00:07"));

	ks_writer *w = ks_writer_new(path, &me, 10000);
	assert_non_null(w);
	t0 = mono_ms();
	ks_writer_post(w, &peer, key, 4);
	assert_true(mono_ms() - t0 < 500); /* returns at once, the lock notwithstanding */
	assert_false(ks_writer_idle(w));
	seen s = { 0 };
	assert_int_equal(ks_load(path, &me, on_key, &s, err, sizeof err), 0);
	char b = 1;
	assert_int_equal(write(release, &b, 1), 1); /* the holder lets go */
	close(release);
	int st;
	assert_int_equal(waitpid(holder, &st, 0), holder);
	uint64_t end = mono_ms() + 10000;
	while (!ks_writer_idle(w) && mono_ms() < end) {
		const struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	assert_true(ks_writer_idle(w));
	ks_writer_free(w);
	assert_int_equal(ks_load(path, &me, on_key, &s, err, sizeof err), 1);
	assert_memory_equal(s.key[0], key, 16);
	assert_true(bt_addr_eq(&s.peer[0], &peer));
}

/* Freeing a writer writes what is still queued. */
static void test_writer_free_writes_queue(void **state)
{
	(void)state;
	bt_addr me = addr("00:AA:01:01:00:42");
	ks_writer *w = ks_writer_new(path, &me, 1000);
	assert_non_null(w);
	for (int i = 0; i < 5; i++) {
		bt_addr peer = { { (uint8_t)i, 1, 0, 0, 0xaa, 0 } };
		uint8_t key[16];
		memset(key, i, sizeof key);
		ks_writer_post(w, &peer, key, 4);
	}
	ks_writer_free(w);
	char err[256];
	seen s = { 0 };
	assert_int_equal(ks_load(path, &me, on_key, &s, err, sizeof err), 5);
	ks_writer_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_line),
		cmocka_unit_test_setup_teardown(test_store_and_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_keeps_other_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locked_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_free_writes_queue, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
