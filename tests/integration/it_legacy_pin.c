/* it_legacy_pin.c - legacy PIN pairing with a pre-2.1 device, over btvirt (issue 11).
 *
 * The "module" is a btsock stack whose host does not support Secure Simple Pairing, as an
 * HC-05/HC-06 serial module or any pre-2.1 device: it opens its adapter through an H4 proxy
 * (tests/integration/h4_proxy.c) that turns its Write_Simple_Pairing_Mode (Core Vol 4 Part E
 * 7.3.59) parameter into 0x00, disabled. Its controller then reports no host SSP support in
 * features page 1 (Vol 2 Part C 3.3), and btvirt pairs with it the legacy way (Vol 2 Part H 3:
 * a PIN Code Request to both hosts, the combination key derived from both PINs, which btvirt
 * does model: a wrong PIN fails). The other side is an ordinary btsock stack.
 * Every test has a pair of adapters of its own (one link each: btvirt forwards ACL data with
 * the sender's handle, so a link only works where both ends numbered it alike). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_util.h"
#include "btsock.h"
#include "btvirt_env.h"
#include "h4_proxy.h"

#define OP_WRITE_SIMPLE_PAIRING_MODE 0x0c56 /* Vol 4 Part E 7.3.59: one parameter */

static btvirt_env *env;

static int group_setup(void **state)
{
	env = btvirt_start();
	return 0;
}

static int group_teardown(void **state)
{
	btsock_set_agent(NULL, NULL);
	btsock_shutdown();
	btvirt_stop(env);
	return 0;
}

#define EV_PIN_CODE_REQUEST 0x16   /* Vol 4 Part E 7.7.22 */
#define EV_IO_CAPABILITY_REQUEST 0x31 /* 7.7.40: the start of Secure Simple Pairing */

/* What the pre-2.1 host's proxy did and saw. */
typedef struct {
	atomic_int rewritten;    /* Write_Simple_Pairing_Mode commands turned into "disabled" */
	atomic_int pin_requests; /* PIN Code Request events to the host */
	atomic_int io_requests;  /* IO Capability Request events to the host */
} module_seen;

/* The proxy's filter: the host's Write_Simple_Pairing_Mode goes to the controller as
 * "disabled" (H4 command: indicator, opcode le16, length, parameters; event: indicator, code,
 * length; Vol 4 Part E 5.4.1, 5.4.4); the pairing events the host gets are counted. */
static bool no_ssp(void *ctx, h4_proxy *p, h4p_dir dir, uint8_t *pkt, size_t *len, size_t cap)
{
	module_seen *m = ctx;
	if (dir == H4P_TO_CTRL && *len >= 5 && pkt[0] == 0x01 &&
	    (pkt[1] | pkt[2] << 8) == OP_WRITE_SIMPLE_PAIRING_MODE && pkt[3] == 1) {
		pkt[4] = 0x00;
		atomic_fetch_add(&m->rewritten, 1);
	}
	if (dir == H4P_TO_HOST && *len >= 2 && pkt[0] == 0x04 && pkt[1] == EV_PIN_CODE_REQUEST)
		atomic_fetch_add(&m->pin_requests, 1);
	if (dir == H4P_TO_HOST && *len >= 2 && pkt[0] == 0x04 && pkt[1] == EV_IO_CAPABILITY_REQUEST)
		atomic_fetch_add(&m->io_requests, 1);
	return true;
}

typedef struct {
	h4_proxy *proxy;
	module_seen seen;
	char module[BTSOCK_ADDRSTRLEN]; /* the pre-2.1 host */
	char phone[BTSOCK_ADDRSTRLEN];  /* an ordinary btsock stack */
} pair;

/* The pair of the running test: static, because the proxy's filter counts into it from its own
 * thread, and a test that fails leaves it to end_test to stop. */
static pair the_pair;

/* Both adapters get a keystore of their own (a fresh file), so that they bond: a pairing that
 * succeeds leaves a key on both sides, one that fails leaves none. */
static pair *pair_open(void)
{
	pair *p = &the_pair;
	char keys[] = "/tmp/it_legacy_pin.keys.XXXXXX";
	int kfd = mkstemp(keys);
	assert_true(kfd >= 0);
	close(kfd);
	assert_int_equal(btsock_set_keystore(keys), 0);
	atomic_init(&p->seen.rewritten, 0);
	atomic_init(&p->seen.pin_requests, 0);
	atomic_init(&p->seen.io_requests, 0);
	p->proxy = h4p_start(env->socket_path);
	assert_non_null(p->proxy);
	h4p_set_filter(p->proxy, no_ssp, &p->seen);
	if (btsock_adapter_open(h4p_adapter(p->proxy), p->module) < 0 ||
	    btsock_adapter_open(env->adapter, p->phone) < 0)
		fail_msg("adapter: %s", btsock_error());
	assert_int_equal(btsock_set_keystore(NULL), 0);
	unlink(keys);
	assert_int_equal(atomic_load(&p->seen.rewritten), 1);
	return p;
}

static void pair_close(pair *p)
{
	btsock_adapter_close(p->module);
	btsock_adapter_close(p->phone);
	h4p_stop(p->proxy);
	p->proxy = NULL;
}

/* After each test, passed or failed: its sockets, then its adapters and proxy. */
static int end_test(void **state)
{
	close_all(state);
	if (the_pair.proxy)
		pair_close(&the_pair);
	return 0;
}

static int rfcomm_listener(const char *local, enum btsock_security level, unsigned *channel)
{
	int s = track(btsock_socket(BTSOCK_RFCOMM));
	assert_true(s >= 0);
	assert_int_equal(btsock_set_security(s, level), 0);
	assert_int_equal(btsock_bind(s, local, 0), 0);
	assert_int_equal(btsock_listen(s, 1), 0);
	assert_int_equal(btsock_getsockname(s, NULL, channel), 0);
	return s;
}

/* Connects an RFCOMM socket from local at level; connect's result, errno kept. */
static int rfcomm_connect(const char *local, const char *peer, unsigned channel,
			  enum btsock_security level, int *fd)
{
	*fd = track(btsock_socket(BTSOCK_RFCOMM));
	assert_true(*fd >= 0);
	assert_int_equal(btsock_set_security(*fd, level), 0);
	assert_int_equal(btsock_settimeout(*fd, 30000), 0);
	assert_int_equal(btsock_bind(*fd, local, 0), 0);
	return btsock_connect(*fd, peer, channel);
}

/* Accepts on l and checks that 64 bytes written on c arrive there. */
static void accept_and_check_data(int l, int c, const char *client)
{
	char peer[BTSOCK_ADDRSTRLEN];
	assert_int_equal(btsock_settimeout(l, 10000), 0);
	int a = track(btsock_accept(l, peer, NULL));
	if (a < 0)
		fail_msg("accept: %s", btsock_error());
	assert_string_equal(peer, client);
	char out[64], in[64];
	for (size_t i = 0; i < sizeof out; i++)
		out[i] = (char)(i * 7 + 1);
	assert_int_equal((int)write(c, out, sizeof out), (int)sizeof out);
	size_t got = 0;
	while (got < sizeof in) {
		struct pollfd pfd = { a, POLLIN, 0 };
		assert_int_equal(poll(&pfd, 1, 10000), 1);
		ssize_t n = read(a, in + got, sizeof in - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_memory_equal(in, out, sizeof out);
}

/* The bond adapter keeps with peer: its key type, or -1 if none. */
static int bond_type(const char *adapter, const char *peer)
{
	struct btsock_bond b[8];
	int n = btsock_paired(adapter, b, 8);
	assert_true(n >= 0 && n <= 8);
	for (int i = 0; i < n; i++)
		if (strcmp(b[i].addr, peer) == 0)
			return (int)b[i].key_type;
	return -1;
}

/* A phone connects to a serial module that asks for authentication (its server at MEDIUM) and
 * knows the module's PIN: the module's host has no SSP, so the phone sends its request at once
 * (Core Vol 3 Part C 5.2.2 asks nothing of such a link); the module answers "pending" and
 * authenticates; both hosts are asked for a PIN and give 1234; the link is encrypted and data
 * moves. The module was asked for a PIN, never for its IO capability (no SSP), and keeps a
 * legacy combination key (type 0, Vol 4 Part E 7.7.24). The phone keeps a key too; btvirt
 * reports its type from the receiving controller's own SSP mode (emulator/btdev.c
 * get_link_key_type), so the phone is told 4, not 0: only that it has one is checked. */
static void test_phone_pairs_with_module_pin(void **state)
{
	pair *p = pair_open();
	assert_int_equal(btsock_set_pin(p->module, p->phone, "1234"), 0);
	assert_int_equal(btsock_set_pin(p->phone, p->module, "1234"), 0);
	unsigned ch;
	int l = rfcomm_listener(p->module, BTSOCK_SEC_MEDIUM, &ch);
	int c;
	if (rfcomm_connect(p->phone, p->module, ch, BTSOCK_SEC_LOW, &c) < 0)
		fail_msg("connect: %s", btsock_error());
	accept_and_check_data(l, c, p->phone);
	assert_true(atomic_load(&p->seen.pin_requests) >= 1);
	assert_int_equal(atomic_load(&p->seen.io_requests), 0);
	assert_int_equal(bond_type(p->module, p->phone), 0);
	assert_true(bond_type(p->phone, p->module) >= 0);
	pair_close(p);
}

/* The phone types the wrong PIN: the pairing fails (btvirt compares the keys both PINs made),
 * connect fails with EACCES and "wrong PIN", the module accepts nothing and neither side keeps
 * a key. */
static void test_wrong_pin_fails_clearly(void **state)
{
	pair *p = pair_open();
	assert_int_equal(btsock_set_pin(p->module, p->phone, "1234"), 0);
	assert_int_equal(btsock_set_pin(p->phone, p->module, "0000"), 0);
	unsigned ch;
	int l = rfcomm_listener(p->module, BTSOCK_SEC_MEDIUM, &ch);
	int c;
	assert_int_equal(rfcomm_connect(p->phone, p->module, ch, BTSOCK_SEC_LOW, &c), -1);
	if (errno != EACCES || !strstr(btsock_error(), "wrong PIN"))
		fail_msg("errno %d, sentence: %s", errno, btsock_error());
	struct pollfd pfd = { l, POLLIN, 0 };
	assert_int_equal(poll(&pfd, 1, 500), 0); /* nothing to accept */
	assert_int_equal(bond_type(p->phone, p->module), -1);
	assert_int_equal(bond_type(p->module, p->phone), -1);
	pair_close(p);
}

/* The PIN comes from the application's agent (pin callback) on the pre-2.1 side, which is the
 * client this time: a server at MEDIUM on an SSP stack with a fixed PIN serves it. */
static atomic_int pin_asks;
static int on_pin(void *ctx, const char *adapter, const char *peer, char pin[17])
{
	atomic_fetch_add(&pin_asks, 1);
	snprintf(pin, 17, "%s", (const char *)ctx);
	return 1;
}

static void test_module_client_pin_from_agent(void **state)
{
	pair *p = pair_open();
	static const struct btsock_agent agent = { NULL, NULL, NULL, on_pin };
	atomic_store(&pin_asks, 0);
	assert_int_equal(btsock_set_agent(&agent, "8642"), 0);
	assert_int_equal(btsock_set_pin(p->phone, p->module, "8642"), 0);
	unsigned ch;
	int l = rfcomm_listener(p->phone, BTSOCK_SEC_MEDIUM, &ch);
	int c;
	if (rfcomm_connect(p->module, p->phone, ch, BTSOCK_SEC_LOW, &c) < 0)
		fail_msg("connect: %s", btsock_error());
	accept_and_check_data(l, c, p->module);
	assert_true(atomic_load(&pin_asks) >= 1); /* the module's host asked its agent */
	assert_int_equal(atomic_load(&p->seen.io_requests), 0);
	btsock_set_agent(NULL, NULL);
	pair_close(p);
}

/* No PIN anywhere on the phone (no fixed PIN, the default agent): a module at MEDIUM refuses
 * it; connect fails with EACCES and a sentence that says a PIN was asked and how to give one;
 * nothing to accept. */
static void test_no_pin_refused(void **state)
{
	pair *p = pair_open();
	assert_int_equal(btsock_set_pin(p->module, p->phone, "1234"), 0);
	unsigned ch;
	int l = rfcomm_listener(p->module, BTSOCK_SEC_MEDIUM, &ch);
	int c;
	assert_int_equal(rfcomm_connect(p->phone, p->module, ch, BTSOCK_SEC_LOW, &c), -1);
	if (errno != EACCES || !strstr(btsock_error(), "asked for a PIN and none was given"))
		fail_msg("errno %d, sentence: %s", errno, btsock_error());
	struct pollfd pfd = { l, POLLIN, 0 };
	assert_int_equal(poll(&pfd, 1, 500), 0);
	pair_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_phone_pairs_with_module_pin, end_test),
		cmocka_unit_test_teardown(test_wrong_pin_fails_clearly, end_test),
		cmocka_unit_test_teardown(test_module_client_pin_from_agent, end_test),
		cmocka_unit_test_teardown(test_no_pin_refused, end_test),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
