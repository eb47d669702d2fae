/* test_btsnoop.c - btsnoop capture files (src/transport/btsnoop.h): version 1, datalink 1002
 * (H4), big-endian records with direction and command/event flags and microsecond timestamps
 * since year 0. The bytes are checked directly, then (when installed) BlueZ's btmon must
 * decode the file cleanly. Packets: HCI_Reset (Core spec Vol 4 Part E 7.3.2), its Command
 * Complete (7.7.14), an ACL packet (5.4.2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/bytes.h"
#include "transport/btsnoop.h"

#define EPOCH_DELTA_US 0x00dcddb30f2f8000ULL

static const uint8_t hci_reset[] = { 0x01, 0x03, 0x0c, 0x00 };
static const uint8_t reset_complete[] = { 0x04, 0x0e, 0x04, 0x01, 0x03, 0x0c, 0x00 };
/* Handle 0x001, first automatically-flushable fragment; L2CAP basic header (len 1, CID 0x40). */
static const uint8_t acl[] = { 0x02, 0x01, 0x20, 0x05, 0x00, 0x01, 0x00, 0x40, 0x00, 0xaa };

static uint64_t snoop_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL + EPOCH_DELTA_US;
}

static char *temp_path(const char *name)
{
	static char dir[64];
	static char path[128];
	snprintf(dir, sizeof dir, "/tmp/btsock-snoop-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return path;
}

static void remove_temp(const char *path)
{
	unlink(path);
	char dir[128];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	*slash = '\0';
	rmdir(dir);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	uint8_t *buf = malloc(1u << 22);
	assert_non_null(buf);
	*len = fread(buf, 1, 1u << 22, f);
	fclose(f);
	return buf;
}

static char *write_known_capture(uint64_t *t0, uint64_t *t1)
{
	char *path = temp_path("known.btsnoop");
	char err[256];
	bt_snoop *s = bt_snoop_open(path, err, sizeof err);
	assert_non_null(s);
	*t0 = snoop_now();
	bt_snoop_write(s, hci_reset, sizeof hci_reset, false);
	bt_snoop_write(s, reset_complete, sizeof reset_complete, true);
	bt_snoop_write(s, acl, sizeof acl, false);
	*t1 = snoop_now();
	bt_snoop_close(s);
	return path;
}

/* Checks one record at *off; returns its timestamp. */
static uint64_t check_record(const uint8_t *f, size_t flen, size_t *off, const uint8_t *pkt, size_t len,
			     uint32_t flags)
{
	assert_true(*off + 24 + len <= flen);
	const uint8_t *r = f + *off;
	assert_int_equal(get_be32(r), len);      /* original length */
	assert_int_equal(get_be32(r + 4), len);  /* included length */
	assert_int_equal(get_be32(r + 8), flags);
	assert_int_equal(get_be32(r + 12), 0);   /* cumulative drops */
	assert_memory_equal(r + 24, pkt, len);
	*off += 24 + len;
	return (uint64_t)get_be32(r + 16) << 32 | get_be32(r + 20);
}

/* btsnoop format: header "btsnoop\0", version 1, datalink 1002; records with flags bit 0 =
 * received, bit 1 = command/event; H4 indicator included (datalink 1002). */
static void test_snoop_known_bytes(void **state)
{
	uint64_t t0, t1;
	char *path = write_known_capture(&t0, &t1);
	size_t len;
	uint8_t *f = slurp(path, &len);
	static const uint8_t hdr[16] = { 'b', 't', 's', 'n', 'o', 'o', 'p', 0, 0, 0, 0, 1, 0, 0, 0x03, 0xea };
	assert_int_equal(len, 16 + 3 * 24 + sizeof hci_reset + sizeof reset_complete + sizeof acl);
	assert_memory_equal(f, hdr, sizeof hdr);
	size_t off = 16;
	uint64_t ts[3];
	ts[0] = check_record(f, len, &off, hci_reset, sizeof hci_reset, 0x02);            /* sent command */
	ts[1] = check_record(f, len, &off, reset_complete, sizeof reset_complete, 0x03);  /* received event */
	ts[2] = check_record(f, len, &off, acl, sizeof acl, 0x00);                        /* sent data */
	for (int i = 0; i < 3; i++) {
		assert_true(ts[i] >= t0 && ts[i] <= t1);
		if (i)
			assert_true(ts[i] >= ts[i - 1]);
	}
	free(f);
	remove_temp(path);
}

static bool have_btmon(void)
{
	const char *path = getenv("PATH");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path ? path : "/usr/bin:/bin");
	for (char *save = NULL, *d = strtok_r(dir, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char p[4200];
		snprintf(p, sizeof p, "%s/btmon", d);
		if (access(p, X_OK) == 0)
			return true;
	}
	return false;
}

/* Runs btmon on path and returns its output (malloc'd). */
static char *btmon_read(const char *path)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "btmon -T -P -C 200 -c never -r '%s' 2>&1", path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap + 1);
	assert_non_null(out);
	size_t n;
	while ((n = fread(out + len, 1, cap - len, p)) > 0 && len + n < cap)
		len += n;
	out[len] = '\0';
	assert_int_equal(pclose(p), 0);
	return out;
}

static bool has_error_marker(const char *out)
{
	static const char *markers[] = { "invalid", "Invalid", "malformed", "Malformed", "too short",
					 "Unsupported", "unknown", "Unknown" };
	for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++)
		if (strstr(out, markers[i]))
			return true;
	return false;
}

/* btsnoop datalink 1002 as BlueZ reads it: btmon decodes the three packets with the right
 * directions and a wall-clock date, and finds nothing malformed. A deliberately short
 * Command Complete proves the error check can fire. */
static void test_snoop_btmon_decodes(void **state)
{
	if (!have_btmon()) {
		print_message("btmon not found (package bluez): skipping the decode check\n");
		skip();
	}
	uint64_t t0, t1;
	char *path = write_known_capture(&t0, &t1);
	char *out = btmon_read(path);
	if (!strstr(out, "Reset") || has_error_marker(out))
		print_error("btmon output:\n%s\n", out);
	assert_non_null(strstr(out, "< HCI Command: Reset (0x03|0x0003) plen 0"));
	assert_non_null(strstr(out, "> HCI Event: Command Complete (0x0e) plen 4"));
	assert_non_null(strstr(out, "< ACL Data TX: Handle 1"));
	assert_false(has_error_marker(out));
	char today[16];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(today, sizeof today, "%Y-%m-%d", &tm);
	assert_non_null(strstr(out, today));
	free(out);
	remove_temp(path);

	/* Negative control: a Command Complete too short for its own parameters. */
	path = temp_path("bad.btsnoop");
	bt_snoop *s = bt_snoop_open(path, NULL, 0);
	assert_non_null(s);
	static const uint8_t short_cc[] = { 0x04, 0x0e, 0x01, 0x01 };
	bt_snoop_write(s, short_cc, sizeof short_cc, true);
	bt_snoop_close(s);
	out = btmon_read(path);
	if (!has_error_marker(out))
		print_error("btmon did not flag the short event:\n%s\n", out);
	assert_true(has_error_marker(out));
	free(out);
	remove_temp(path);
}

typedef struct {
	bt_snoop *s;
	uint8_t tag;
} writer_arg;

#define PER_THREAD 3000

static void *writer(void *a)
{
	writer_arg *w = a;
	uint8_t pkt[300];
	for (uint32_t i = 0; i < PER_THREAD; i++) {
		size_t len = 9 + i % 250;
		pkt[0] = 0x02; /* ACL, handle = tag */
		pkt[1] = w->tag;
		pkt[2] = 0x20;
		put_le16(pkt + 3, (uint16_t)(len - 5));
		put_le32(pkt + 5, i);
		memset(pkt + 9, w->tag, len - 9);
		bt_snoop_write(w->s, pkt, len, (i & 1) != 0);
	}
	return NULL;
}

/* btsnoop records stay whole when two stacks (threads) share one capture. */
static void test_snoop_shared_by_threads(void **state)
{
	char *path = temp_path("threads.btsnoop");
	bt_snoop *s = bt_snoop_open(path, NULL, 0);
	assert_non_null(s);
	writer_arg a = { s, 1 }, b = { s, 2 };
	pthread_t ta, tb;
	assert_int_equal(pthread_create(&ta, NULL, writer, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, writer, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	bt_snoop_close(s);
	size_t len;
	uint8_t *f = slurp(path, &len);
	size_t off = 16;
	uint32_t next[3] = { 0, 0, 0 };
	while (off < len) {
		assert_true(off + 24 <= len);
		uint32_t plen = get_be32(f + off);
		assert_int_equal(get_be32(f + off + 4), plen);
		assert_true(off + 24 + plen <= len);
		const uint8_t *p = f + off + 24;
		uint8_t tag = p[1];
		assert_true(tag == 1 || tag == 2);
		uint32_t seq = get_le32(p + 5);
		assert_int_equal(seq, next[tag]);
		assert_int_equal(plen, 9 + seq % 250);
		assert_int_equal(get_be32(f + off + 8), seq & 1); /* data: only the direction bit */
		for (size_t i = 9; i < plen; i++)
			assert_int_equal(p[i], tag);
		next[tag]++;
		off += 24 + plen;
	}
	assert_int_equal(next[1], PER_THREAD);
	assert_int_equal(next[2], PER_THREAD);
	free(f);
	remove_temp(path);
}

/* btsnoop.h: a file that cannot be created gives NULL and a sentence naming it. */
static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t size_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (size_t)st.st_size;
}

/* No fflush per packet (each was a write(2) on the adapter's loop under its lock): records
 * reach the file once they are BT_SNOOP_FLUSH_MS old (bt_snoop_tick, the loop's round), on
 * bt_snoop_flush, or on close. */
static void test_snoop_flushes_on_a_timer(void **state)
{
	(void)state;
	char *path = temp_path("timer.btsnoop");
	char err[256];
	bt_snoop *s = bt_snoop_open(path, err, sizeof err);
	assert_non_null(s);
	assert_int_equal(size_of(path), 16); /* the header is there at once */
	size_t rec = 24 + sizeof hci_reset;
	uint64_t before = mono_ms();
	bt_snoop_write(s, hci_reset, sizeof hci_reset, false);
	bt_snoop_write(s, hci_reset, sizeof hci_reset, false);
	uint64_t after = mono_ms();
	if (after - before < BT_SNOOP_FLUSH_MS) /* (a very slow machine may flush on the 2nd write) */
		assert_int_equal(size_of(path), 16);
	bt_snoop_tick(s, before); /* not old enough yet */
	if (after - before < BT_SNOOP_FLUSH_MS)
		assert_int_equal(size_of(path), 16);
	bt_snoop_tick(s, after + BT_SNOOP_FLUSH_MS);
	assert_int_equal(size_of(path), 16 + 2 * rec);
	bt_snoop_write(s, hci_reset, sizeof hci_reset, false);
	bt_snoop_flush(s);
	assert_int_equal(size_of(path), 16 + 3 * rec);
	bt_snoop_write(s, hci_reset, sizeof hci_reset, false);
	bt_snoop_close(s);
	assert_int_equal(size_of(path), 16 + 4 * rec);
	bt_snoop_tick(NULL, 0);
	bt_snoop_flush(NULL);
	remove_temp(path);
}

static void test_snoop_open_error(void **state)
{
	char err[256];
	assert_null(bt_snoop_open("/nonexistent-btsock-dir/x.btsnoop", err, sizeof err));
	assert_non_null(strstr(err, "/nonexistent-btsock-dir/x.btsnoop"));
	assert_non_null(strstr(err, strerror(ENOENT)));
	assert_null(bt_snoop_open("/nonexistent-btsock-dir/x.btsnoop", NULL, 0));
	/* Writing to or closing no capture is a no-op. */
	bt_snoop_write(NULL, hci_reset, sizeof hci_reset, false);
	bt_snoop_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_snoop_known_bytes),
		cmocka_unit_test(test_snoop_btmon_decodes),
		cmocka_unit_test(test_snoop_flushes_on_a_timer),
		cmocka_unit_test(test_snoop_shared_by_threads),
		cmocka_unit_test(test_snoop_open_error),
	};
	return cmocka_run_group_tests_name("btsnoop", tests, NULL, NULL);
}
