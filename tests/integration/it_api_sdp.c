/* it_api_sdp.c - SDP and device discovery through the public API (include/btsock.h), over
 * btvirt: the seed's dynamic server and client as programs (by address and by inquiry), the
 * btsock tool's listen --advertise / sdp browse / sdp search / connect --uuid / scan, records
 * advertised and found with every field, a record that needs continuation states, discovery
 * of several stacks with their names, name lookup of a missing address, bad arguments, and
 * the btsnoop capture of it all decoded by btmon as the intended attributes.
 *
 * The program-level tests run first, while this process holds no adapter: btvirt links only
 * work between controllers holding the same number of links (docs/ARCHITECTURE.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api_util.h"
#include "btsock.h"
#include "btvirt_env.h"

#define SAMPLE_UUID "94f39d29-7d6d-437d-973b-fba39e49d4ee"
#define TOOL BTSOCK_BIN_DIR "/btsock"

static btvirt_env *env;
static char A[BTSOCK_ADDRSTRLEN], B[BTSOCK_ADDRSTRLEN], C[BTSOCK_ADDRSTRLEN], D[BTSOCK_ADDRSTRLEN];
static char snoop_path[64];

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static int group_setup(void **state)
{
	env = btvirt_start();
	snprintf(snoop_path, sizeof snoop_path, "/tmp/btsock-it-sdp-%d.btsnoop", (int)getpid());
	return btsock_set_snoop(snoop_path) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	btsock_shutdown();
	btvirt_stop(env);
	return 0;
}

static void cleanup(child *c)
{
	unlink(c->out);
	unlink(c->err);
}

/* The address a server program printed in "listening on ADDR channel N". */
static void listening_addr(child *srv, const char *prefix, char addr[BTSOCK_ADDRSTRLEN])
{
	char line[256], fmt[128];
	assert_true(child_wait_stderr(srv, "listening on", line, sizeof line, 10000));
	snprintf(fmt, sizeof fmt, "%slistening on %%17s", prefix);
	assert_int_equal(sscanf(line, fmt, addr), 1);
}

/* ------------------------------------------------------------------ programs */

/* The dynamic examples: the server binds channel 0 and advertises; the client finds it by
 * UUID, first on the address given, then by inquiry over every device nearby. */
static void run_dynamic_examples(bool by_inquiry)
{
	child srv, cli;
	char *sargv[] = { BTSOCK_BIN_DIR "/rfcomm-server-sdp", NULL };
	child_start(&srv, env->adapter, sargv);
	char out[2048];
	uint64_t t0 = now_ms();
	do { /* the server prints its channel once it advertises */
		read_file(srv.out, out, sizeof out);
	} while (!strstr(out, "Waiting for connection") && now_ms() - t0 < 10000 && usleep(20000) == 0);
	unsigned channel;
	assert_int_equal(sscanf(out, "Waiting for connection on RFCOMM channel %u", &channel), 1);
	assert_true(channel >= 1 && channel <= 30);

	/* The server's address: its controller is the only other one, so a scan finds it. */
	char *scan_argv[] = { TOOL, "scan", "-t", "1", NULL };
	child scan;
	child_start(&scan, env->adapter, scan_argv);
	assert_int_equal(child_wait(&scan, 20000), 0);
	char scanned[1024], srv_addr[BTSOCK_ADDRSTRLEN];
	read_file(scan.out, scanned, sizeof scanned);
	assert_int_equal(sscanf(scanned, "%17s", srv_addr), 1);
	cleanup(&scan);

	char *cargv_addr[] = { BTSOCK_BIN_DIR "/rfcomm-client-sdp", srv_addr, NULL };
	char *cargv_any[] = { BTSOCK_BIN_DIR "/rfcomm-client-sdp", NULL };
	/* stdin of the client: two lines to send, from a file. */
	char in_path[64];
	snprintf(in_path, sizeof in_path, "/tmp/btsock-it-sdp-%d.in", (int)getpid());
	FILE *in = fopen(in_path, "w");
	fputs("hello!!\n", in);
	fclose(in);
	assert_non_null(freopen(in_path, "r", stdin));
	child_start(&cli, env->adapter, by_inquiry ? cargv_any : cargv_addr);
	assert_int_equal(child_wait(&cli, 30000), 0);
	assert_int_equal(child_wait(&srv, 15000), 0);
	freopen("/dev/null", "r", stdin);
	unlink(in_path);

	char cout[1024], expect[1024];
	read_file(cli.out, cout, sizeof cout);
	snprintf(expect, sizeof expect, "%sconnecting to \"SampleServer\" on %s channel %u\nconnected.  type stuff\n",
		 by_inquiry ? "searching all nearby bluetooth devices for the SampleServer service\n" : "", srv_addr,
		 channel);
	assert_string_equal(cout, expect);
	read_file(srv.out, out, sizeof out);
	char peer[BTSOCK_ADDRSTRLEN];
	char *acc = strstr(out, "Accepted connection from ");
	assert_non_null(acc);
	assert_int_equal(sscanf(acc, "Accepted connection from %17s", peer), 1);
	snprintf(expect, sizeof expect,
		 "Waiting for connection on RFCOMM channel %u\nAccepted connection from %s\nreceived [hello!!]\n"
		 "disconnected\nall done\n",
		 channel, peer);
	assert_string_equal(out, expect);
	cleanup(&srv);
	cleanup(&cli);
}

static void test_dynamic_examples_by_address(void **state) { run_dynamic_examples(false); }
static void test_dynamic_examples_by_inquiry(void **state) { run_dynamic_examples(true); }

/* The tool: a named listener advertising a UUID; browse shows the record, search by UUID
 * finds it, connect --uuid reaches its channel, scan shows the local name. */
static void test_tool_advertise_browse_search_connect(void **state)
{
	child srv, c;
	char *sargv[] = { TOOL, "-n", "Logger box", "listen", "--advertise", "Logger", "--uuid", SAMPLE_UUID,
			  "-d", NULL };
	child_start(&srv, env->adapter, sargv);
	char addr[BTSOCK_ADDRSTRLEN], out[4096];
	listening_addr(&srv, "", addr);
	assert_true(child_wait_stderr(&srv, "advertising", out, sizeof out, 5000));

	char *scan_argv[] = { TOOL, "scan", "--time", "1", NULL };
	child_start(&c, env->adapter, scan_argv);
	assert_int_equal(child_wait(&c, 20000), 0);
	read_file(c.out, out, sizeof out);
	char want[128];
	snprintf(want, sizeof want, "%s  \"Logger box\"  ", addr);
	assert_non_null(strstr(out, want));
	cleanup(&c);

	char *browse_argv[] = { TOOL, "sdp", "browse", addr, NULL };
	child_start(&c, env->adapter, browse_argv);
	assert_int_equal(child_wait(&c, 20000), 0);
	read_file(c.out, out, sizeof out);
	assert_non_null(strstr(out, "Service Name: \"Logger\"\n"));
	assert_non_null(strstr(out, "UUID 94F39D29-7D6D-437D-973B-FBA39E49D4EE\n"));
	assert_non_null(strstr(out, "\"Serial Port\" (0x1101)\n"));
	assert_non_null(strstr(out, "\"RFCOMM\" (0x0003)\n    Channel: 1\n"));
	assert_non_null(strstr(out, "Version: 0x0102\n"));
	cleanup(&c);

	char *search_argv[] = { TOOL, "sdp", "search", "0x1101", addr, NULL };
	child_start(&c, env->adapter, search_argv);
	assert_int_equal(child_wait(&c, 20000), 0);
	read_file(c.out, out, sizeof out);
	assert_non_null(strstr(out, "Service Name: \"Logger\"\n"));
	cleanup(&c);

	char *none_argv[] = { TOOL, "sdp", "search", "1105", addr, NULL }; /* OBEX Object Push */
	child_start(&c, env->adapter, none_argv);
	assert_int_equal(child_wait(&c, 20000), 0);
	read_file(c.out, out, sizeof out);
	assert_string_equal(out, "");
	read_file(c.err, out, sizeof out);
	assert_non_null(strstr(out, "no matching records"));
	cleanup(&c);

	char *conn_argv[] = { TOOL, "connect", addr, "--uuid", SAMPLE_UUID, NULL };
	char in_path[64];
	snprintf(in_path, sizeof in_path, "/tmp/btsock-it-sdp-%d.in", (int)getpid());
	FILE *in = fopen(in_path, "w");
	fputs("found by uuid\n", in);
	fclose(in);
	assert_non_null(freopen(in_path, "r", stdin));
	child_start(&c, env->adapter, conn_argv);
	assert_int_equal(child_wait(&c, 20000), 0);
	freopen("/dev/null", "r", stdin);
	unlink(in_path);
	read_file(c.err, out, sizeof out);
	snprintf(want, sizeof want, "found \"Logger\" on %s channel 1\n", addr);
	assert_non_null(strstr(out, want));
	cleanup(&c);
	assert_int_equal(child_wait(&srv, 10000), 0);
	read_file(srv.out, out, sizeof out);
	assert_string_equal(out, "found by uuid\n");
	cleanup(&srv);
}

/* Bad input on the command line: usage errors (exit 2) that say what was wrong. */
static void test_tool_bad_arguments(void **state)
{
	struct {
		char *argv[8];
		int code;
		const char *says;
	} cases[] = {
		{ { TOOL, "sdp", "search", "11O1", NULL }, 2, "invalid UUID '11O1'" },
		{ { TOOL, "sdp", "browse", "00:11:22:33:44", NULL }, 2, "00:11:22:33:44" },
		{ { TOOL, "sdp", "frobnicate", NULL }, 2, "unknown sdp subcommand" },
		{ { TOOL, "connect", "00:11:22:33:44:55", "1", "--uuid", "1101", NULL }, 2, "not both" },
		{ { TOOL, "listen", "--uuid", "1101", NULL }, 2, "--uuid needs --advertise" },
		{ { TOOL, "scan", "-t", "99", NULL }, 2, "time" },
		/* A device that is not there: a runtime failure, in bounded time, naming it. */
		{ { TOOL, "sdp", "browse", "00:11:22:33:44:55", NULL }, 1, "00:11:22:33:44:55" },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		child c;
		char err[1024];
		child_start(&c, env->adapter, cases[k].argv);
		int rc = child_wait(&c, 30000);
		read_file(c.err, err, sizeof err);
		if (rc != cases[k].code || !strstr(err, cases[k].says))
			fail_msg("case %zu: exit %d, stderr: %s", k, rc, err);
		cleanup(&c);
	}
}

/* ------------------------------------------------------------------ in-process stacks */

static void open_adapters(void)
{
	if (A[0])
		return;
	if (btsock_adapter_open(env->adapter, A) < 0 || btsock_adapter_open(env->adapter, B) < 0 ||
	    btsock_adapter_open(env->adapter, C) < 0 || btsock_adapter_open(env->adapter, D) < 0)
		fail_msg("adapter: %s", btsock_error());
}

static const struct btsock_device *find_dev(const struct btsock_device *v, int n, const char *addr)
{
	for (int k = 0; k < n; k++)
		if (strcmp(v[k].addr, addr) == 0)
			return &v[k];
	return NULL;
}

/* Inquiry finds the other three stacks with the names and classes they set. */
static void test_discovery_with_names(void **state)
{
	open_adapters();
	assert_int_equal(btsock_set_local_name(B, "bravo"), 0);
	assert_int_equal(btsock_set_local_name(C, "charlie \xc3\xa9t\xc3\xa9"), 0); /* UTF-8 */
	assert_int_equal(btsock_set_local_name(D, ""), 0);
	assert_int_equal(btsock_set_device_class(C, 0x5a020c), 0); /* smartphone with services */
	struct btsock_device devs[16];
	int n = btsock_discover(A, 1280, false, devs, 16);
	assert_true(n >= 3);
	const struct btsock_device *b = find_dev(devs, n, B), *c = find_dev(devs, n, C), *d = find_dev(devs, n, D);
	assert_non_null(b);
	assert_non_null(c);
	assert_non_null(d);
	assert_null(find_dev(devs, n, A));
	assert_string_equal(b->name, "bravo");
	assert_string_equal(c->name, "charlie \xc3\xa9t\xc3\xa9");
	assert_string_equal(d->name, "");
	assert_int_equal(c->device_class, 0x5a020c);
	assert_true(b->has_rssi);
	char cls[256];
	btsock_describe_class(c->device_class, cls, sizeof cls);
	assert_non_null(strstr(cls, "Phone (Smartphone)"));
	assert_non_null(strstr(cls, "Telephony"));
	/* max bounds what is stored. */
	assert_int_equal(btsock_discover(A, 1280, false, devs, 1), 1);
}

/* Remote name requests: a present device answers; a missing one fails in bounded time with
 * a message naming it; a bad address is refused before anything is sent. */
static void test_lookup_name(void **state)
{
	open_adapters();
	char name[BTSOCK_NAMESTRLEN];
	assert_int_equal(btsock_set_local_name(B, "bravo"), 0);
	/* lookup_name runs on the default adapter, A (opened first). */
	if (btsock_lookup_name(B, 5000, name) < 0)
		fail_msg("lookup_name: %s", btsock_error());
	assert_string_equal(name, "bravo");
	uint64_t t0 = now_ms();
	assert_int_equal(btsock_lookup_name("00:11:22:33:44:55", 3000, name), -1);
	assert_true(now_ms() - t0 < 10000);
	assert_true(errno != 0);
	assert_non_null(strstr(btsock_error(), "00:11:22:33:44:55"));
	assert_string_equal(name, "");
	assert_int_equal(btsock_lookup_name("00:11:22:33:44", 1000, name), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(btsock_error(), "invalid address"));
}

static const struct btsock_service_info *find_name(const struct btsock_service_info *v, int n, const char *name)
{
	for (int k = 0; k < n; k++)
		if (strcmp(v[k].name, name) == 0)
			return &v[k];
	return NULL;
}

/* Every field PyBluez's advertise_service() takes comes back from find_services() on another
 * stack (B advertises, the default adapter A searches); L2CAP records carry the PSM; the name
 * filter, a UUID nobody has, browsing, stop_advertising and closing the socket all behave. */
static void test_advertise_and_find_every_field(void **state)
{
	open_adapters();
	int rs = btsock_socket(BTSOCK_RFCOMM), ls = btsock_socket(BTSOCK_L2CAP);
	assert_int_equal(btsock_advertise_service(rs, &(struct btsock_service){ .name = "x" }), -1);
	assert_int_equal(errno, EINVAL); /* not bound yet */
	assert_non_null(strstr(btsock_error(), "not bound"));
	assert_int_equal(btsock_bind(rs, B, 0), 0);
	assert_int_equal(btsock_listen(rs, 1), 0);
	assert_int_equal(btsock_bind(ls, B, 0), 0);
	assert_int_equal(btsock_listen(ls, 1), 0);
	unsigned ch, psm;
	btsock_getsockname(rs, NULL, &ch);
	btsock_getsockname(ls, NULL, &psm);

	const char *classes[] = { SAMPLE_UUID, BTSOCK_SERIAL_PORT_CLASS };
	struct btsock_profile prof = { BTSOCK_SERIAL_PORT_PROFILE, 0x0102 };
	struct btsock_service svc = { .name = "SampleServer",
				      .description = "An experimental service",
				      .provider = "btsock tests",
				      .service_id = SAMPLE_UUID,
				      .service_classes = classes,
				      .n_service_classes = 2,
				      .profiles = &prof,
				      .n_profiles = 1 };
	if (btsock_advertise_service(rs, &svc) < 0)
		fail_msg("advertise: %s", btsock_error());
	const char *l2classes[] = { "0000ABCD" };
	struct btsock_service l2svc = { .name = "Raw L2CAP", .service_classes = l2classes, .n_service_classes = 1 };
	assert_int_equal(btsock_advertise_service(ls, &l2svc), 0);
	struct btsock_service bad = { .service_id = "not-a-uuid" };
	assert_int_equal(btsock_advertise_service(rs, &bad), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(btsock_error(), "not-a-uuid"));

	struct btsock_service_info *v;
	int n = btsock_find_services(B, SAMPLE_UUID, NULL, &v);
	if (n < 0)
		fail_msg("find: %s", btsock_error());
	assert_int_equal(n, 1);
	assert_string_equal(v[0].host, B);
	assert_string_equal(v[0].name, "SampleServer");
	assert_string_equal(v[0].description, "An experimental service");
	assert_string_equal(v[0].provider, "btsock tests");
	assert_int_equal(v[0].protocol, BTSOCK_RFCOMM);
	assert_true(v[0].has_port);
	assert_int_equal(v[0].port, ch);
	assert_string_equal(v[0].service_id, "94F39D29-7D6D-437D-973B-FBA39E49D4EE");
	assert_int_equal(v[0].n_service_classes, 2);
	assert_string_equal(v[0].service_classes[0], "94F39D29-7D6D-437D-973B-FBA39E49D4EE");
	assert_string_equal(v[0].service_classes[1], "1101");
	assert_int_equal(v[0].n_profiles, 1);
	assert_string_equal(v[0].profiles[0].uuid, "1101");
	assert_int_equal(v[0].profiles[0].version, 0x0102);
	assert_true(v[0].handle >= 0x10000);
	char text[4096];
	assert_true(btsock_describe_record(v[0].record, v[0].record_len, text, sizeof text) > 0);
	assert_non_null(strstr(text, "Service Description: \"An experimental service\"\n"));
	btsock_free_services(v);

	/* Browse (no UUID): both records and no others; the L2CAP one carries its PSM. */
	n = btsock_find_services(B, NULL, NULL, &v);
	assert_int_equal(n, 2);
	const struct btsock_service_info *l2 = find_name(v, n, "Raw L2CAP");
	assert_non_null(l2);
	assert_int_equal(l2->protocol, BTSOCK_L2CAP);
	assert_int_equal(l2->port, psm);
	assert_string_equal(l2->service_classes[0], "0000ABCD");
	btsock_free_services(v);

	/* The name filter; a UUID nobody advertises: 0 results, not an error. */
	assert_int_equal(btsock_find_services(B, "1101", "Raw L2CAP", &v), 0);
	btsock_free_services(v);
	assert_int_equal(btsock_find_services(B, NULL, "Raw L2CAP", &v), 1);
	btsock_free_services(v);
	assert_int_equal(btsock_find_services(B, "1105", NULL, &v), 0);
	btsock_free_services(v);

	/* Withdrawn by stop_advertising and by close. */
	assert_int_equal(btsock_stop_advertising(ls), 0);
	assert_int_equal(btsock_stop_advertising(ls), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(btsock_find_services(B, NULL, NULL, &v), 1);
	btsock_free_services(v);
	btsock_close(rs);
	assert_int_equal(btsock_find_services(B, SAMPLE_UUID, NULL, &v), 0);
	btsock_free_services(v);
	btsock_close(ls);

	/* Bad arguments: the searching adapter itself, a malformed address or UUID. */
	assert_int_equal(btsock_find_services(A, NULL, NULL, &v), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(btsock_find_services("00:11:22", NULL, NULL, &v), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(btsock_find_services(B, "xyz", NULL, &v), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(btsock_error(), "'xyz' is not a UUID"));
}

/* A record far larger than one SDP response (the channel's MTU is 672): fetched whole through
 * continuation states (Core Vol 3 Part B 4.3), every byte of a 6000-byte description intact. */
static void test_large_record_needs_continuation(void **state)
{
	open_adapters();
	static char desc[6001];
	for (size_t i = 0; i < sizeof desc - 1; i++)
		desc[i] = (char)('a' + i % 26);
	int rs = btsock_socket(BTSOCK_RFCOMM);
	assert_int_equal(btsock_bind(rs, B, 0), 0);
	struct btsock_service svc = { .name = "Big", .description = desc, .service_id = "0000BEEF" };
	assert_int_equal(btsock_advertise_service(rs, &svc), 0);
	struct btsock_service_info *v;
	int n = btsock_find_services(B, "0000BEEF", NULL, &v);
	if (n < 0)
		fail_msg("find: %s", btsock_error());
	assert_int_equal(n, 1);
	assert_true(v[0].record_len > sizeof desc);
	assert_memory_equal(v[0].description, desc, sizeof v[0].description - 1); /* truncated copy */
	size_t cap = 16384;
	char *text = malloc(cap);
	int len = btsock_describe_record(v[0].record, v[0].record_len, text, cap);
	assert_true(len > 6000 && (size_t)len < cap);
	char *q = strstr(text, "Service Description: \"");
	assert_non_null(q);
	q += strlen("Service Description: \"");
	assert_memory_equal(q, desc, sizeof desc - 1);
	assert_int_equal(q[sizeof desc - 1], '"');
	const unsigned char *raw = v[0].record;
	bool whole = false;
	for (size_t i = 0; i + sizeof desc - 1 <= v[0].record_len && !whole; i++)
		whole = memcmp(raw + i, desc, sizeof desc - 1) == 0;
	assert_true(whole);
	free(text);
	btsock_free_services(v);
	btsock_close(rs);
}

/* The capture of everything above decodes with BlueZ's btmon, which shows our SDP records as
 * the intended attributes: names, the service UUID, RFCOMM with its channel, the profile. */
static void test_capture_decodes_with_btmon(void **state)
{
	btsock_shutdown(); /* flushes and closes the capture */
	A[0] = 0;
	char *all = btmon_decode(snoop_path);
	if (!all) {
		print_message("btmon missing (Debian package bluez): capture not checked\n");
		skip();
	}
	assert_non_null(strstr(all, "SDP: Service Search Attribute Request"));
	assert_non_null(strstr(all, "SDP: Service Search Attribute Response"));
	assert_non_null(strstr(all, "Continuation state"));
	assert_non_null(strstr(all, "94f39d29-7d6d-437d-973b-fba39e49d4ee"));
	assert_non_null(strstr(all, "Serial Port"));
	assert_non_null(strstr(all, "SampleServer"));
	assert_non_null(strstr(all, "An experimental service"));
	assert_null(strstr(all, "invalid"));
	assert_null(strstr(all, "Malformed"));
	free(all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dynamic_examples_by_address),
		cmocka_unit_test(test_dynamic_examples_by_inquiry),
		cmocka_unit_test(test_tool_advertise_browse_search_connect),
		cmocka_unit_test(test_tool_bad_arguments),
		cmocka_unit_test(test_discovery_with_names),
		cmocka_unit_test(test_lookup_name),
		cmocka_unit_test(test_advertise_and_find_every_field),
		cmocka_unit_test(test_large_record_needs_continuation),
		cmocka_unit_test(test_capture_decodes_with_btmon),
	};
	return cmocka_run_group_tests_name("api_sdp_over_btvirt", tests, group_setup, group_teardown);
}
