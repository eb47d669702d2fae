/* transport.c - the adapter-string front door and the calls every transport kind shares.
 *
 * bt_transport_open() splits "KIND:ARG" and hands ARG to the opener of that kind: a
 * bt_transport_ops table, built in (transport_unix.c, transport_tcp.c, transport_serial.c,
 * transport_userchan.c) or added with bt_transport_register(). Everything after that is the
 * kind's own; the calls here check arguments and dispatch.
 *
 * Error convention: every failure returns -errno and, when the caller gave a buffer, one
 * sentence "SPEC: STEP: reason (hint)". */
#include "transport/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/transport_impl.h"

#define TP_FORMS "unix:PATH, tcp:HOST:PORT, serial:DEVICE[@BAUD] or userchan:hciN"

/* ---- error sentences ------------------------------------------------------------------- */

static const char *shown_spec(const tp_ctx *c) { return c->spec[0] ? c->spec : "\"\""; }

int tp_fail(const tp_ctx *c, const char *step, int e, const char *hint)
{
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: %s: %s%s%s%s", shown_spec(c), step, strerror(e),
			 hint ? " (" : "", hint ? hint : "", hint ? ")" : "");
	return -e;
}

int tp_fail_parse(const tp_ctx *c, int e, const char *fmt, ...)
{
	if (c->err && c->errlen) {
		int n = snprintf(c->err, c->errlen, "%s: parse: ", shown_spec(c));
		if (n >= 0 && (size_t)n < c->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return -e;
}

int tp_set_nonblock(const tp_ctx *c, int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return tp_fail(c, "fcntl", errno, NULL);
	return 0;
}

static int side_fail(char *buf, size_t cap, int e, const char *fmt, va_list ap)
{
	if (!buf[0])
		vsnprintf(buf, cap, fmt, ap);
	return -e;
}

int tp_rx_fail(bt_transport *t, int e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = side_fail(t->rx_err, sizeof t->rx_err, e, fmt, ap);
	va_end(ap);
	return r;
}

int tp_tx_fail(bt_transport *t, int e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = side_fail(t->tx_err, sizeof t->tx_err, e, fmt, ap);
	va_end(ap);
	return r;
}

bool tp_rx_failed(const bt_transport *t) { return t->rx_err[0] != '\0'; }

int tp_parse_hci_index(const char *s)
{
	if (strncmp(s, "hci", 3) != 0)
		return -1;
	s += 3;
	if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	long v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > 0xfffe) /* 0xffff is HCI_DEV_NONE */
			return -1;
	}
	return (int)v;
}

/* ---- kinds ----------------------------------------------------------------------------------- */

typedef struct {
	const char *prefix; /* without the colon */
	const bt_transport_ops *ops;
} tp_kind;

static const tp_kind tp_builtin[] = {
	{ "unix", &tp_unix_ops },
	{ "tcp", &tp_tcp_ops },
	{ "serial", &tp_serial_ops },
	{ "userchan", &tp_userchan_ops },
};

/* Kinds added at run time (bt_transport_register): a small fixed table, never shrinking. */
#define TP_REGISTERED_MAX 4
static tp_kind tp_registered[TP_REGISTERED_MAX];
static size_t tp_nregistered;
static pthread_mutex_t tp_registry_lock = PTHREAD_MUTEX_INITIALIZER;

static const tp_kind *match(const tp_kind *k, size_t n, const char *spec, size_t prefix_len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(k[i].prefix) == prefix_len && memcmp(k[i].prefix, spec, prefix_len) == 0)
			return &k[i];
	return NULL;
}

/* The ops for "PREFIX" (prefix_len octets of spec), or NULL. */
static const bt_transport_ops *find_kind(const char *spec, size_t prefix_len)
{
	const tp_kind *k = match(tp_builtin, sizeof tp_builtin / sizeof tp_builtin[0], spec, prefix_len);
	if (k)
		return k->ops;
	pthread_mutex_lock(&tp_registry_lock);
	k = match(tp_registered, tp_nregistered, spec, prefix_len);
	const bt_transport_ops *ops = k ? k->ops : NULL;
	pthread_mutex_unlock(&tp_registry_lock);
	return ops;
}

int bt_transport_register(const char *prefix, const bt_transport_ops *ops)
{
	if (!prefix || !*prefix || strchr(prefix, ':') || !ops || !ops->open)
		return -EINVAL;
	if (find_kind(prefix, strlen(prefix)))
		return -EEXIST;
	int r = -ENOSPC;
	pthread_mutex_lock(&tp_registry_lock);
	if (tp_nregistered < TP_REGISTERED_MAX) {
		tp_registered[tp_nregistered++] = (tp_kind){ prefix, ops };
		r = 0;
	}
	pthread_mutex_unlock(&tp_registry_lock);
	return r;
}

/* ---- opening ------------------------------------------------------------------------------ */

/* A spec without "KIND:": plain "hciN" names the (future) kernel-socket backend. */
static int open_unprefixed(const tp_ctx *c)
{
	if (tp_parse_hci_index(c->spec) >= 0)
		return tp_fail_parse(c, ENOTSUP,
				     "plain '%s' is reserved for the Linux kernel socket backend, which is not "
				     "implemented yet; use \"userchan:%s\" to drive the adapter through the HCI user channel",
				     c->spec, c->spec);
	return tp_fail_parse(c, EINVAL, "no adapter type; expected " TP_FORMS);
}

/* Checks spec and finds its kind. 0 with *ops and *arg, or -errno with the sentence. */
static int parse_spec(const tp_ctx *c, const bt_transport_ops **ops, const char **arg)
{
	if (c->spec[0] == '\0')
		return tp_fail_parse(c, EINVAL, "empty adapter string; expected " TP_FORMS);
	if (strlen(c->spec) >= sizeof ((bt_transport *)0)->name) { /* do not echo all of it */
		if (c->err && c->errlen)
			snprintf(c->err, c->errlen, "%.32s...: parse: adapter string longer than %zu characters",
				 c->spec, sizeof ((bt_transport *)0)->name - 1);
		return -ENAMETOOLONG;
	}
	const char *colon = strchr(c->spec, ':');
	if (!colon)
		return open_unprefixed(c);
	*ops = find_kind(c->spec, (size_t)(colon - c->spec));
	if (!*ops)
		return tp_fail_parse(c, EINVAL, "unknown adapter type '%.*s'; expected unix:, tcp:, serial: or userchan:",
				     (int)(colon - c->spec), c->spec);
	*arg = colon + 1;
	return 0;
}

int bt_transport_open(const char *spec, bt_transport **out, char *err, size_t errlen)
{
	tp_ctx c = { spec ? spec : "", err, errlen };
	if (err && errlen)
		err[0] = '\0';
	*out = NULL;
	const bt_transport_ops *ops = NULL;
	const char *arg = NULL;
	int r = parse_spec(&c, &ops, &arg);
	if (r < 0)
		return r;
	bt_transport *t = calloc(1, sizeof *t);
	if (!t)
		return tp_fail(&c, "open", ENOMEM, NULL);
	t->ops = ops;
	memcpy(t->name, c.spec, strlen(c.spec) + 1);
	r = ops->open(t, &c, arg);
	if (r < 0) {
		free(t);
		return r;
	}
	*out = t;
	return 0;
}

void bt_transport_close(bt_transport *t)
{
	if (!t)
		return;
	t->ops->close(t);
	free(t);
}

/* ---- dispatch ---------------------------------------------------------------------------------- */

const char *bt_transport_name(const bt_transport *t) { return t->name; }

size_t bt_transport_pollfds(bt_transport *t, struct pollfd *p)
{
	size_t n = t->ops->pollfds(t, p);
	return n <= BT_TRANSPORT_MAX_FDS ? n : BT_TRANSPORT_MAX_FDS;
}

int bt_transport_events(bt_transport *t, const struct pollfd *p, size_t n)
{
	return t->ops->events(t, p, n);
}

ssize_t bt_transport_recv(bt_transport *t, const uint8_t **pkt)
{
	*pkt = NULL;
	return t->ops->recv(t, pkt);
}

int bt_transport_send(bt_transport *t, const uint8_t *pkt, size_t len)
{
	if (len == 0)
		return -EINVAL;
	if (len > BT_TRANSPORT_OUTBUF)
		return -EMSGSIZE;
	return t->ops->send(t, pkt, len);
}

bool bt_transport_pending(const bt_transport *t) { return t->ops->pending(t); }
bool bt_transport_can_send(const bt_transport *t) { return t->ops->can_send(t); }

const char *bt_transport_error(const bt_transport *t) { return t->rx_err[0] ? t->rx_err : t->tx_err; }
