/* pairing.c - the public pairing settings: each adapter's IO capability, MITM requirement and
 * minimum key size, fixed PINs, and the process-wide agent that answers pairing requests needing
 * the user (GAP's agent, gap.h). The agent's callbacks run on an adapter's loop thread: they
 * answer at once through their return value (or a reply call, which then runs inline), or
 * later from another thread through btsock_agent_confirm / _passkey / _pin. */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gap/gap.h"

/* The process-wide agent, under agent_mu; each callback works on a copy. */
static pthread_mutex_t agent_mu = PTHREAD_MUTEX_INITIALIZER;
static struct btsock_agent rt_agent; /* all NULL: GAP's default (Just Works only) */
static void *rt_agent_ctx;
static bool rt_agent_set;

static struct btsock_agent agent_copy(void **ctx)
{
	pthread_mutex_lock(&agent_mu);
	struct btsock_agent a = rt_agent;
	*ctx = rt_agent_ctx;
	pthread_mutex_unlock(&agent_mu);
	return a;
}

static void names(void *ctx, const bt_addr *peer, char ad[BT_ADDR_STRLEN], char p[BT_ADDR_STRLEN])
{
	adapter *a = ctx;
	bt_addr_format(&a->addr, ad);
	bt_addr_format(peer, p);
}

static void tr_confirm(void *ctx, const bt_addr *peer, uint32_t value)
{
	char ad[BT_ADDR_STRLEN], p[BT_ADDR_STRLEN];
	names(ctx, peer, ad, p);
	void *actx;
	struct btsock_agent a = agent_copy(&actx);
	int r = a.confirm ? a.confirm(actx, ad, p, value) : 0;
	if (r >= 0)
		gap_agent_confirm(bt_stack_gap(((adapter *)ctx)->st), peer, r > 0);
}

static void tr_display(void *ctx, const bt_addr *peer, uint32_t passkey)
{
	char ad[BT_ADDR_STRLEN], p[BT_ADDR_STRLEN];
	names(ctx, peer, ad, p);
	void *actx;
	struct btsock_agent a = agent_copy(&actx);
	if (a.display_passkey)
		a.display_passkey(actx, ad, p, passkey);
}

static void tr_enter(void *ctx, const bt_addr *peer)
{
	char ad[BT_ADDR_STRLEN], p[BT_ADDR_STRLEN];
	names(ctx, peer, ad, p);
	void *actx;
	struct btsock_agent a = agent_copy(&actx);
	long r = a.enter_passkey ? a.enter_passkey(actx, ad, p) : -2;
	gap *g = bt_stack_gap(((adapter *)ctx)->st);
	if (r >= 0 && r <= 999999)
		gap_agent_passkey(g, peer, true, (uint32_t)r);
	else if (r != -1)
		gap_agent_passkey(g, peer, false, 0);
}

static void tr_pin(void *ctx, const bt_addr *peer)
{
	char ad[BT_ADDR_STRLEN], p[BT_ADDR_STRLEN], pin[17] = { 0 };
	names(ctx, peer, ad, p);
	void *actx;
	struct btsock_agent a = agent_copy(&actx);
	int r = a.pin ? a.pin(actx, ad, p, pin) : 0;
	gap *g = bt_stack_gap(((adapter *)ctx)->st);
	if (r > 0 && gap_agent_pin(g, peer, pin) == 0)
		return;
	if (r >= 0)
		gap_agent_pin(g, peer, NULL);
}

/* The GAP agent tables: one per combination of callbacks the application gave (each member
 * NULL where it gave none), constant, so adapters never share mutable state. */
static const gap_agent agent_tables[16] = {
#define T(i) { .confirm = (i) & 1 ? tr_confirm : NULL, .display_passkey = (i) & 2 ? tr_display : NULL, \
	       .enter_passkey = (i) & 4 ? tr_enter : NULL, .pin = (i) & 8 ? tr_pin : NULL }
	T(0), T(1), T(2), T(3), T(4), T(5), T(6), T(7), T(8), T(9), T(10), T(11), T(12), T(13), T(14), T(15),
#undef T
};

/* On the adapter's loop. */
void rt_agent_apply(adapter *ad)
{
	gap *g = bt_stack_gap(ad->st);
	void *actx;
	pthread_mutex_lock(&agent_mu);
	bool set = rt_agent_set;
	pthread_mutex_unlock(&agent_mu);
	struct btsock_agent a = agent_copy(&actx);
	if (!set) {
		gap_set_agent(g, NULL, NULL);
		return;
	}
	int i = (a.confirm ? 1 : 0) | (a.display_passkey ? 2 : 0) | (a.enter_passkey ? 4 : 0) | (a.pin ? 8 : 0);
	gap_set_agent(g, &agent_tables[i], ad);
}

static int agent_step(adapter *ad, void *arg, rt_why why)
{
	if (why != RT_DOWN && !ad->closing)
		rt_agent_apply(ad);
	return 0;
}

int rt_set_agent(const struct btsock_agent *agent, void *ctx)
{
	pthread_mutex_lock(&agent_mu);
	rt_agent_set = agent != NULL;
	memset(&rt_agent, 0, sizeof rt_agent);
	if (agent)
		rt_agent = *agent;
	rt_agent_ctx = ctx;
	pthread_mutex_unlock(&agent_mu);
	rt_for_each_adapter(agent_step, NULL, "set_agent");
	rt_clear_error();
	return 0;
}

/* The adapter and peer of a reply; NULL + message on failure (referenced). */
static adapter *reply_target(const char *adapter_addr, const char *peer, bt_addr *p, const char *call)
{
	if (!peer || bt_addr_parse(peer, p) != 0) {
		rt_fail(EINVAL, "%s: '%s' is not a Bluetooth address", call, peer ? peer : "(null)");
		return NULL;
	}
	return rt_adapter_arg(adapter_addr, call);
}

/* A reply or setting for the adapter's GAP, run on its loop. */
typedef enum { R_CONFIRM, R_PASSKEY, R_PIN, R_FIXED_PIN, R_PAIRING } reply_kind;

typedef struct {
	reply_kind kind;
	const char *call, *peer_text;
	bt_addr peer;
	bool accept;
	long passkey;
	const char *pin;
	const struct btsock_pairing *pairing;
} reply_args;

static int reply_step(adapter *ad, void *arg, rt_why why)
{
	reply_args *a = arg;
	if (why == RT_DOWN || ad->closing || ad->dead)
		return rt_adapter_down(ad, a->call) < 0 ? -1 : rt_fail(ENETDOWN, "%s: the adapter was closed", a->call);
	gap *g = bt_stack_gap(ad->st);
	int rc = 0;
	switch (a->kind) {
	case R_CONFIRM: rc = gap_agent_confirm(g, &a->peer, a->accept); break;
	case R_PASSKEY:
		rc = gap_agent_passkey(g, &a->peer, a->passkey >= 0, a->passkey >= 0 ? (uint32_t)a->passkey : 0);
		break;
	case R_PIN: rc = gap_agent_pin(g, &a->peer, a->pin); break;
	case R_FIXED_PIN:
		rc = gap_set_pin(g, &a->peer, a->pin);
		if (rc == -EINVAL)
			return rt_fail(EINVAL, "set_pin: a PIN has 1 to 16 characters");
		if (rc < 0)
			return rt_fail(-rc, "set_pin: no room for another fixed PIN");
		break;
	case R_PAIRING:
		gap_set_io_capability(g, (uint8_t)a->pairing->io_capability, a->pairing->mitm);
		hci_set_min_key_size(bt_stack_hci(ad->st),
				     (uint8_t)(a->pairing->min_key_size ? a->pairing->min_key_size : 7));
		break;
	}
	if (rc == -ENOENT)
		return rt_fail(ENOENT, "%s: no pairing request from %s is waiting (it timed out?)", a->call, a->peer_text);
	if (rc < 0)
		return rt_fail(-rc, "%s: %s", a->call, strerror(-rc));
	rt_clear_error();
	return 0;
}

static int reply(const char *adapter_addr, reply_args *a)
{
	adapter *ad = a->kind == R_PAIRING ? rt_adapter_arg(adapter_addr, a->call)
					   : reply_target(adapter_addr, a->peer_text, &a->peer, a->call);
	if (!ad)
		return -1;
	int rc = rt_call(ad, reply_step, a, -1, a->call);
	rt_adapter_put(ad);
	return rc;
}

int rt_agent_confirm(const char *adapter_addr, const char *peer, bool accept)
{
	return reply(adapter_addr, &(reply_args){ .kind = R_CONFIRM, .call = "agent_confirm", .peer_text = peer,
						   .accept = accept });
}

int rt_agent_passkey(const char *adapter_addr, const char *peer, long passkey)
{
	if (passkey > 999999)
		return rt_fail(EINVAL, "agent_passkey: %ld is more than 6 digits", passkey);
	return reply(adapter_addr, &(reply_args){ .kind = R_PASSKEY, .call = "agent_passkey", .peer_text = peer,
						   .passkey = passkey });
}

int rt_agent_pin(const char *adapter_addr, const char *peer, const char *pin)
{
	if (pin && (strlen(pin) < 1 || strlen(pin) > 16))
		return rt_fail(EINVAL, "agent_pin: a PIN has 1 to 16 characters");
	return reply(adapter_addr, &(reply_args){ .kind = R_PIN, .call = "agent_pin", .peer_text = peer, .pin = pin });
}

int rt_set_pin(const char *adapter_addr, const char *peer, const char *pin)
{
	return reply(adapter_addr, &(reply_args){ .kind = R_FIXED_PIN, .call = "set_pin", .peer_text = peer, .pin = pin });
}

int rt_set_pairing(const char *adapter_addr, const struct btsock_pairing *p)
{
	if (!p)
		return rt_fail(EINVAL, "set_pairing: no settings given");
	if ((unsigned)p->io_capability > BTSOCK_IO_KEYBOARD_DISPLAY)
		return rt_fail(EINVAL, "set_pairing: %d is not an IO capability", (int)p->io_capability);
	if (p->min_key_size && (p->min_key_size < 7 || p->min_key_size > 16))
		return rt_fail(EINVAL, "set_pairing: a minimum key size is 7 to 16 octets, not %u", p->min_key_size);
	return reply(adapter_addr, &(reply_args){ .kind = R_PAIRING, .call = "set_pairing", .pairing = p });
}
