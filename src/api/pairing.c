/* pairing.c - the public pairing settings: each adapter's IO capability, MITM requirement and
 * minimum key size, fixed PINs, and the process-wide agent that answers pairing requests needing
 * the user (GAP's agent, gap.h). The agent's callbacks run on an adapter's loop thread with
 * rt_lock held: they answer at once through their return value, or later from another thread
 * through btsock_agent_confirm / _passkey / _pin. */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gap/gap.h"

static struct btsock_agent rt_agent; /* all NULL: GAP's default (Just Works only) */
static void *rt_agent_ctx;
static bool rt_agent_set;

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
	int r = rt_agent.confirm(rt_agent_ctx, ad, p, value);
	if (r >= 0)
		gap_agent_confirm(bt_stack_gap(((adapter *)ctx)->st), peer, r > 0);
}

static void tr_display(void *ctx, const bt_addr *peer, uint32_t passkey)
{
	char ad[BT_ADDR_STRLEN], p[BT_ADDR_STRLEN];
	names(ctx, peer, ad, p);
	rt_agent.display_passkey(rt_agent_ctx, ad, p, passkey);
}

static void tr_enter(void *ctx, const bt_addr *peer)
{
	char ad[BT_ADDR_STRLEN], p[BT_ADDR_STRLEN];
	names(ctx, peer, ad, p);
	long r = rt_agent.enter_passkey(rt_agent_ctx, ad, p);
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
	int r = rt_agent.pin(rt_agent_ctx, ad, p, pin);
	gap *g = bt_stack_gap(((adapter *)ctx)->st);
	if (r > 0 && gap_agent_pin(g, peer, pin) == 0)
		return;
	if (r >= 0)
		gap_agent_pin(g, peer, NULL);
}

/* The GAP agent table for the current process-wide agent (members NULL where it has none). */
static gap_agent rt_gap_agent;

void rt_agent_apply(adapter *ad)
{
	gap *g = bt_stack_gap(ad->st);
	if (!rt_agent_set) {
		gap_set_agent(g, NULL, NULL);
		return;
	}
	rt_gap_agent = (gap_agent){
		.confirm = rt_agent.confirm ? tr_confirm : NULL,
		.display_passkey = rt_agent.display_passkey ? tr_display : NULL,
		.enter_passkey = rt_agent.enter_passkey ? tr_enter : NULL,
		.pin = rt_agent.pin ? tr_pin : NULL,
	};
	gap_set_agent(g, &rt_gap_agent, ad);
}

int btsock_set_agent(const struct btsock_agent *agent, void *ctx)
{
	rt_enter();
	rt_agent_set = agent != NULL;
	memset(&rt_agent, 0, sizeof rt_agent);
	if (agent)
		rt_agent = *agent;
	rt_agent_ctx = ctx;
	for (adapter *ad = rt_adapters; ad; ad = ad->next)
		if (ad->st)
			rt_agent_apply(ad);
	rt_clear_error();
	pthread_mutex_unlock(&rt_lock);
	return 0;
}

static int unlock_ret(int rc)
{
	pthread_mutex_unlock(&rt_lock);
	return rc;
}

/* The adapter and peer of a reply; NULL + message on failure (rt_lock held). */
static adapter *reply_target(const char *adapter_addr, const char *peer, bt_addr *p, const char *call)
{
	if (!peer || bt_addr_parse(peer, p) != 0) {
		rt_fail(EINVAL, "%s: '%s' is not a Bluetooth address", call, peer ? peer : "(null)");
		return NULL;
	}
	return rt_adapter_arg(adapter_addr, call);
}

static int reply_done(adapter *ad, int rc, const char *call, const char *peer)
{
	if (rc == -ENOENT)
		return unlock_ret(rt_fail(ENOENT, "%s: no pairing request from %s is waiting (it timed out?)", call, peer));
	if (rc < 0)
		return unlock_ret(rt_fail(-rc, "%s: %s", call, strerror(-rc)));
	rt_wake(ad);
	rt_clear_error();
	return unlock_ret(0);
}

int btsock_agent_confirm(const char *adapter_addr, const char *peer, bool accept)
{
	rt_enter();
	bt_addr p;
	adapter *ad = reply_target(adapter_addr, peer, &p, "agent_confirm");
	if (!ad)
		return unlock_ret(-1);
	return reply_done(ad, gap_agent_confirm(bt_stack_gap(ad->st), &p, accept), "agent_confirm", peer);
}

int btsock_agent_passkey(const char *adapter_addr, const char *peer, long passkey)
{
	rt_enter();
	bt_addr p;
	adapter *ad = reply_target(adapter_addr, peer, &p, "agent_passkey");
	if (!ad)
		return unlock_ret(-1);
	if (passkey > 999999)
		return unlock_ret(rt_fail(EINVAL, "agent_passkey: %ld is more than 6 digits", passkey));
	gap *g = bt_stack_gap(ad->st);
	int rc = gap_agent_passkey(g, &p, passkey >= 0, passkey >= 0 ? (uint32_t)passkey : 0);
	return reply_done(ad, rc, "agent_passkey", peer);
}

int btsock_agent_pin(const char *adapter_addr, const char *peer, const char *pin)
{
	rt_enter();
	bt_addr p;
	adapter *ad = reply_target(adapter_addr, peer, &p, "agent_pin");
	if (!ad)
		return unlock_ret(-1);
	if (pin && (strlen(pin) < 1 || strlen(pin) > 16))
		return unlock_ret(rt_fail(EINVAL, "agent_pin: a PIN has 1 to 16 characters"));
	return reply_done(ad, gap_agent_pin(bt_stack_gap(ad->st), &p, pin), "agent_pin", peer);
}

int btsock_set_pin(const char *adapter_addr, const char *peer, const char *pin)
{
	rt_enter();
	bt_addr p;
	adapter *ad = reply_target(adapter_addr, peer, &p, "set_pin");
	if (!ad)
		return unlock_ret(-1);
	int rc = gap_set_pin(bt_stack_gap(ad->st), &p, pin);
	if (rc == -EINVAL)
		return unlock_ret(rt_fail(EINVAL, "set_pin: a PIN has 1 to 16 characters"));
	if (rc < 0)
		return unlock_ret(rt_fail(-rc, "set_pin: no room for another fixed PIN"));
	rt_clear_error();
	return unlock_ret(0);
}

int btsock_set_pairing(const char *adapter_addr, const struct btsock_pairing *p)
{
	if (!p)
		return rt_fail(EINVAL, "set_pairing: no settings given");
	if ((unsigned)p->io_capability > BTSOCK_IO_KEYBOARD_DISPLAY)
		return rt_fail(EINVAL, "set_pairing: %d is not an IO capability", (int)p->io_capability);
	if (p->min_key_size && (p->min_key_size < 7 || p->min_key_size > 16))
		return rt_fail(EINVAL, "set_pairing: a minimum key size is 7 to 16 octets, not %u", p->min_key_size);
	rt_enter();
	adapter *ad = rt_adapter_arg(adapter_addr, "set_pairing");
	if (!ad)
		return unlock_ret(-1);
	gap_set_io_capability(bt_stack_gap(ad->st), (uint8_t)p->io_capability, p->mitm);
	hci_set_min_key_size(bt_stack_hci(ad->st), (uint8_t)(p->min_key_size ? p->min_key_size : 7));
	rt_clear_error();
	return unlock_ret(0);
}
