/* util.c - argument parsing and error reporting for the btsock tool: addresses, numbers,
 * RFCOMM channels, L2CAP PSMs, global options, and the "btsock: ..." messages that go with
 * the stable exit codes of tool.h. */
#include <ctype.h>
#include <pthread.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

void tool_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("btsock: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int tool_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("btsock: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	if (cmd)
		fprintf(stderr, "Try 'btsock %s --help'.\n", cmd);
	else
		fputs("Try 'btsock --help'.\n", stderr);
	return TOOL_EXIT_USAGE;
}

int tool_fail(const char *what)
{
	int err = errno;
	const char *sentence = btsock_error();

	if (sentence && sentence[0])
		tool_msg("%s", sentence);
	else
		tool_msg("%s: %s", what, strerror(err));
	return err == ENODEV ? TOOL_EXIT_NO_ADAPTER : TOOL_EXIT_FAILURE;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Six two-digit hex bytes separated by ':' (most significant first, as printed). */
bool tool_parse_addr(const char *s, char out[BTSOCK_ADDRSTRLEN])
{
	bool ok = strlen(s) == BTSOCK_ADDRSTRLEN - 1;

	for (size_t i = 0; ok && i < BTSOCK_ADDRSTRLEN - 1; i++) {
		if (i % 3 == 2)
			ok = s[i] == ':';
		else
			ok = hex_digit(s[i]) >= 0;
	}
	if (!ok) {
		tool_msg("invalid address '%s': expected six hex bytes like 01:23:45:67:89:AB", s);
		return false;
	}
	for (size_t i = 0; i < BTSOCK_ADDRSTRLEN - 1; i++)
		out[i] = (char)toupper((unsigned char)s[i]);
	out[BTSOCK_ADDRSTRLEN - 1] = '\0';
	return true;
}

bool tool_parse_uint(const char *s, const char *what, unsigned long min, unsigned long max,
		     unsigned long *out)
{
	char *end = NULL;
	unsigned long v;

	errno = 0;
	if (!isdigit((unsigned char)s[0])) {
		tool_msg("invalid %s '%s': expected a number", what, s);
		return false;
	}
	v = strtoul(s, &end, 0);
	if (errno || *end != '\0') {
		tool_msg("invalid %s '%s': expected a number", what, s);
		return false;
	}
	if (v < min || v > max) {
		tool_msg("invalid %s '%s': must be %lu to %lu", what, s, min, max);
		return false;
	}
	*out = v;
	return true;
}

bool tool_parse_channel(const char *s, bool allow_any, unsigned *out)
{
	unsigned long v;

	if (!tool_parse_uint(s, "channel", 0, 0xffff, &v))
		return false;
	/* RFCOMM server channels are 1-30 (RFCOMM spec 5.4: DLCI = channel << 1 | direction). */
	if ((v == 0 && !allow_any) || v > 30) {
		tool_msg("invalid channel '%s': RFCOMM channels are 1 to 30%s", s,
			 allow_any ? " (0 = any free channel)" : "");
		return false;
	}
	*out = (unsigned)v;
	return true;
}

/* Counts hex digits in s up to the first character that is not one. */
static size_t hex_run(const char *s)
{
	size_t n = 0;
	while (hex_digit(s[n]) >= 0)
		n++;
	return n;
}

bool tool_check_uuid(const char *s)
{
	static const size_t groups[] = { 8, 4, 4, 4, 12 }; /* 00001101-0000-1000-8000-00805F9B34FB */
	const char *p = s;
	size_t n;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	n = hex_run(p);
	if (p[n] == '\0' && (n == 4 || n == 8 || (n == 32 && p == s)))
		return true;
	for (size_t g = 0, off = 0; p == s && g < 5; g++) {
		if (hex_run(s + off) != groups[g] || s[off + groups[g]] != (g < 4 ? '-' : '\0'))
			break;
		if (g == 4)
			return true;
		off += groups[g] + 1;
	}
	tool_msg("invalid UUID '%s': expected 4 or 8 hex digits (1101, 0x1101) or 128 bits "
		 "(00001101-0000-1000-8000-00805F9B34FB)", s);
	return false;
}

bool tool_parse_psm(const char *s, bool allow_any, unsigned *out)
{
	unsigned long v;

	if (!tool_parse_uint(s, "PSM", 0, 0xffff, &v))
		return false;
	if (v == 0 && allow_any) {
		*out = 0;
		return true;
	}
	/* Core Vol 3 Part A 4.2: a PSM is odd and the lowest bit of its most significant octet
	 * is 0 (so 0x1001, 0x1003, ... 0x10FF, 0x1201, ...). */
	if (v == 0 || (v & 0x0001) == 0 || (v & 0x0100) != 0) {
		tool_msg("invalid PSM '%s': a PSM is odd and its upper byte is even "
			 "(like 0x1001, 0x1003, 0x1201)%s", s, allow_any ? "; 0 = any free PSM" : "");
		return false;
	}
	*out = (unsigned)v;
	return true;
}

/* The CLI's pairing agent (--agent, --pin). accept / reject answer at once, on btsock's
 * thread. ask cannot block that thread (the callbacks run with btsock's lock held): it returns
 * -1 ("later") and hands the question to a thread of its own, which asks on /dev/tty (stdin if
 * there is no terminal) and answers with btsock_agent_confirm / _passkey / _pin. One question
 * at a time: a second one while the user is still answering is refused. */
enum ask_kind { ASK_NONE, ASK_CONFIRM, ASK_PASSKEY, ASK_PIN };
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool started;
	enum ask_kind kind;
	char adapter[BTSOCK_ADDRSTRLEN], peer[BTSOCK_ADDRSTRLEN];
	unsigned value;
} ask = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, ASK_NONE, "", "", 0 };

static bool agent_is(const struct tool_ctx *c, const char *mode)
{
	return c->agent && strcmp(c->agent, mode) == 0;
}

/* One line from the terminal (or stdin), without its newline; false at end of input. */
static bool ask_line(const char *prompt, char *buf, size_t cap)
{
	FILE *tty = fopen("/dev/tty", "r+e");
	FILE *in = tty ? tty : stdin;
	FILE *out = tty ? tty : stderr;

	fputs(prompt, out);
	fflush(out);
	bool ok = fgets(buf, (int)cap, in) != NULL;
	if (tty)
		fclose(tty);
	else
		fputc('\n', out); /* the answer came from stdin: end the prompt's line */
	if (ok)
		buf[strcspn(buf, "\r\n")] = '\0';
	return ok;
}

static void ask_answer(enum ask_kind kind, const char *adapter, const char *peer, unsigned value)
{
	char line[64], prompt[160];
	int rc = 0;

	switch (kind) {
	case ASK_CONFIRM: {
		snprintf(prompt, sizeof prompt, "btsock: pairing with %s: does it show %06u? [yes/no] ", peer, value);
		bool yes = ask_line(prompt, line, sizeof line) && (strcmp(line, "yes") == 0 || strcmp(line, "y") == 0);
		rc = btsock_agent_confirm(adapter, peer, yes);
		break;
	}
	case ASK_PASSKEY: {
		snprintf(prompt, sizeof prompt, "btsock: pairing with %s: type the passkey it shows: ", peer);
		char *end = NULL;
		long v = -1;
		if (ask_line(prompt, line, sizeof line) && line[0]) {
			v = strtol(line, &end, 10);
			if (*end || v < 0 || v > 999999) {
				tool_msg("'%s' is not a passkey (0 to 999999): refused", line);
				v = -1;
			}
		}
		rc = btsock_agent_passkey(adapter, peer, v);
		break;
	}
	case ASK_PIN:
		snprintf(prompt, sizeof prompt, "btsock: pairing with %s: its PIN (1-16 characters): ", peer);
		if (ask_line(prompt, line, sizeof line) && strlen(line) >= 1 && strlen(line) <= 16)
			rc = btsock_agent_pin(adapter, peer, line);
		else
			rc = btsock_agent_pin(adapter, peer, NULL);
		break;
	default:
		return;
	}
	if (rc < 0)
		tool_msg("%s", btsock_error());
}

static void *ask_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&ask.mu);
	for (;;) {
		while (ask.kind == ASK_NONE)
			pthread_cond_wait(&ask.cv, &ask.mu);
		enum ask_kind kind = ask.kind;
		char adapter[BTSOCK_ADDRSTRLEN], peer[BTSOCK_ADDRSTRLEN];
		unsigned value = ask.value;
		memcpy(adapter, ask.adapter, sizeof adapter);
		memcpy(peer, ask.peer, sizeof peer);
		pthread_mutex_unlock(&ask.mu);
		ask_answer(kind, adapter, peer, value);
		pthread_mutex_lock(&ask.mu);
		ask.kind = ASK_NONE;
	}
	return NULL;
}

/* Hands a question to the asking thread: -1 ("answered later"), or 0 (refused: busy). */
static int ask_post(enum ask_kind kind, const char *adapter, const char *peer, unsigned value)
{
	int rc = -1;

	pthread_mutex_lock(&ask.mu);
	if (!ask.started) {
		pthread_t t;
		ask.started = pthread_create(&t, NULL, ask_thread, NULL) == 0;
		if (ask.started)
			pthread_detach(t);
	}
	if (!ask.started || ask.kind != ASK_NONE) {
		rc = 0;
	} else {
		ask.kind = kind;
		snprintf(ask.adapter, sizeof ask.adapter, "%s", adapter);
		snprintf(ask.peer, sizeof ask.peer, "%s", peer);
		ask.value = value;
		pthread_cond_signal(&ask.cv);
	}
	pthread_mutex_unlock(&ask.mu);
	return rc;
}

static int cli_confirm(void *ctx, const char *adapter, const char *peer, unsigned value)
{
	const struct tool_ctx *c = ctx;
	bool yes = agent_is(c, "accept");

	if (agent_is(c, "ask"))
		return ask_post(ASK_CONFIRM, adapter, peer, value);
	fprintf(stderr, "btsock: pairing with %s: confirm %06u? %s (--agent %s)\n", peer, value,
		yes ? "yes" : "no", c->agent ? c->agent : "reject");
	return yes ? 1 : 0;
}

static void cli_display(void *ctx, const char *adapter, const char *peer, unsigned passkey)
{
	fprintf(stderr, "btsock: pairing with %s: type %06u on it\n", peer, passkey);
}

/* Passkey Entry, our side types: only a user can (--agent ask); accept has nothing to type. */
static long cli_passkey(void *ctx, const char *adapter, const char *peer)
{
	const struct tool_ctx *c = ctx;

	if (agent_is(c, "ask"))
		return ask_post(ASK_PASSKEY, adapter, peer, 0) < 0 ? -1 : -2;
	fprintf(stderr, "btsock: pairing with %s: it asks for a passkey to be typed: refused (--agent %s; "
		"use --agent ask)\n", peer, c->agent ? c->agent : "reject");
	return -2;
}

static int cli_pin(void *ctx, const char *adapter, const char *peer, char pin[17])
{
	const struct tool_ctx *c = ctx;

	if (c->pin) {
		snprintf(pin, 17, "%s", c->pin);
		return 1;
	}
	if (agent_is(c, "ask"))
		return ask_post(ASK_PIN, adapter, peer, 0);
	return 0;
}

static const struct btsock_agent cli_agent = { cli_confirm, cli_display, cli_passkey, cli_pin };

int tool_open_adapter(const struct tool_ctx *ctx, char addr[BTSOCK_ADDRSTRLEN])
{
	char local[BTSOCK_ADDRSTRLEN];
	const char *name = ctx->adapter ? ctx->adapter : getenv("BTSOCK_ADAPTER");
	bool unnamed = !name || !name[0]; /* the library's default: a kernel adapter that is up */

	if (ctx->snoop && btsock_set_snoop(ctx->snoop) < 0) {
		tool_fail("snoop file");
		return TOOL_EXIT_FAILURE;
	}
	if (ctx->keys && btsock_set_keystore(ctx->keys) < 0) {
		tool_fail("keys file");
		return TOOL_EXIT_FAILURE;
	}
	if ((ctx->agent || ctx->pin) && btsock_set_agent(&cli_agent, (void *)ctx) < 0) {
		tool_fail("agent");
		return TOOL_EXIT_FAILURE;
	}
	if (btsock_adapter_open(unnamed ? NULL : name, addr ? addr : local) < 0) {
		int err = errno;
		const char *sentence = btsock_error();

		if (unnamed)
			tool_msg("no adapter: %s; set BTSOCK_ADAPTER or use -a ADAPTER (e.g. hci0 next to "
				 "bluetoothd, unix:/tmp/bt-server-bredr for btvirt)",
				 sentence && sentence[0] ? sentence : strerror(err));
		else if (sentence && sentence[0])
			tool_msg("%s", sentence);
		else
			tool_msg("cannot open adapter '%s': %s", name, strerror(err));
		return TOOL_EXIT_NO_ADAPTER;
	}
	if (ctx->local_name && btsock_set_local_name(addr ? addr : local, ctx->local_name) < 0)
		return tool_fail("local name");
	if (ctx->set_class && btsock_set_device_class(addr ? addr : local, ctx->device_class) < 0)
		return tool_fail("device class");
	/* --agent: a user is there to compare numbers, so the adapter says DisplayYesNo (Core Vol 4
	 * Part E 7.1.29) and Numeric Comparison reaches the agent instead of Just Works; with ask
	 * the user can type a passkey too: KeyboardDisplay. */
	struct btsock_pairing p = { agent_is(ctx, "ask") ? BTSOCK_IO_KEYBOARD_DISPLAY : BTSOCK_IO_DISPLAY_YESNO,
				    false, 0 };
	if (ctx->io >= 0) /* --io: what the device really has (e.g. only a display) */
		p.io_capability = (enum btsock_io_capability)ctx->io;
	if (ctx->agent && btsock_set_pairing(addr ? addr : local, &p) < 0)
		return tool_fail("pairing settings");
	return TOOL_EXIT_OK;
}

/* Splits "--name=value" into the name length and value. */
static size_t long_name_len(const char *s, const char **value)
{
	const char *eq = strchr(s, '=');

	*value = eq ? eq + 1 : NULL;
	return eq ? (size_t)(eq - s) : strlen(s);
}

static const struct tool_opt global_opts[] = {
	{ 'a', "adapter", true },
	{ 0, "snoop", true },
	{ 'n', "name", true },
	{ 0, "keys", true },
	{ 0, "agent", true },
	{ 0, "pin", true },
	{ 0, "class", true },
	{ 0, "io", true },
};

/* --io names, in enum btsock_io_capability order (Core Vol 4 Part E 7.1.29). */
static const char *const io_names[] = { "display", "yesno", "keyboard", "none", "kbdisplay" };

/* Finds the option matching argv word `w` in opts; fills *value for attached values. */
static int match_opt(const char *w, const struct tool_opt *opts, int nopts, const char **value)
{
	*value = NULL;
	if (w[1] == '-') {
		size_t len = long_name_len(w + 2, value);

		for (int k = 0; k < nopts; k++) {
			if (opts[k].long_name && strlen(opts[k].long_name) == len &&
			    strncmp(opts[k].long_name, w + 2, len) == 0)
				return k;
		}
		return -1;
	}
	for (int k = 0; k < nopts; k++) {
		if (opts[k].short_name && w[1] == opts[k].short_name) {
			if (w[2] != '\0') {
				if (!opts[k].has_arg)
					return -1;
				*value = w + 2;
			}
			return k;
		}
	}
	return -1;
}

/* Gets the option's value (attached or the next word); false if missing or unwanted. */
static bool opt_value(struct tool_args *a, const struct tool_opt *o, const char *w,
		      const char *attached)
{
	if (!o->has_arg) {
		if (attached) {
			tool_usage_error(a->cmd, "option '%s' takes no value", w);
			return false;
		}
		a->arg = NULL;
		return true;
	}
	if (attached) {
		a->arg = attached;
		return true;
	}
	if (a->i >= a->argc) {
		tool_usage_error(a->cmd, "option '%s' needs a value", w);
		return false;
	}
	a->arg = a->argv[a->i++];
	return true;
}

int tool_next_arg(struct tool_args *a, const struct tool_opt *opts, int nopts)
{
	const char *w, *attached;
	int k;

	if (a->i >= a->argc)
		return TOOL_ARG_END;
	w = a->argv[a->i++];
	if (a->no_more_options || w[0] != '-' || w[1] == '\0') {
		a->arg = w;
		return TOOL_ARG_POSITIONAL;
	}
	if (strcmp(w, "--") == 0) {
		a->no_more_options = true;
		return tool_next_arg(a, opts, nopts);
	}
	if (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0)
		return TOOL_ARG_HELP;
	k = match_opt(w, global_opts, (int)(sizeof(global_opts) / sizeof(global_opts[0])),
		      &attached);
	if (k >= 0) {
		if (!opt_value(a, &global_opts[k], w, attached))
			return TOOL_ARG_ERROR;
		if (k == 0)
			a->ctx->adapter = a->arg;
		else if (k == 1)
			a->ctx->snoop = a->arg;
		else if (k == 2)
			a->ctx->local_name = a->arg;
		else if (k == 3)
			a->ctx->keys = a->arg;
		else if (k == 4 && strcmp(a->arg, "accept") != 0 && strcmp(a->arg, "reject") != 0 &&
			 strcmp(a->arg, "ask") != 0)
			return tool_usage_error(a->cmd, "--agent takes ask, accept or reject, not '%s'", a->arg),
			       TOOL_ARG_ERROR;
		else if (k == 4)
			a->ctx->agent = a->arg;
		else if (k == 7) {
			int io = -1;
			for (int j = 0; j < (int)(sizeof io_names / sizeof io_names[0]); j++)
				if (strcmp(a->arg, io_names[j]) == 0)
					io = j;
			if (io < 0)
				return tool_usage_error(a->cmd, "--io takes display, yesno, keyboard, none or kbdisplay, not '%s'", a->arg),
				       TOOL_ARG_ERROR;
			a->ctx->io = io;
		}
		else if (k == 6) {
			char *end;
			errno = 0;
			unsigned long cod = strtoul(a->arg, &end, 16);
			if (errno || end == a->arg || *end || cod > 0xffffff)
				return tool_usage_error(a->cmd, "--class takes a Class of Device in hex (up to 24 bits, e.g. 5a020c), not '%s'", a->arg),
				       TOOL_ARG_ERROR;
			a->ctx->device_class = (unsigned)cod;
			a->ctx->set_class = true;
		} else if (strlen(a->arg) < 1 || strlen(a->arg) > 16)
			return tool_usage_error(a->cmd, "--pin takes 1 to 16 characters"), TOOL_ARG_ERROR;
		else
			a->ctx->pin = a->arg;
		return tool_next_arg(a, opts, nopts);
	}
	k = match_opt(w, opts, nopts, &attached);
	if (k < 0) {
		tool_usage_error(a->cmd, "unknown option '%s'", w);
		return TOOL_ARG_ERROR;
	}
	if (!opt_value(a, &opts[k], w, attached))
		return TOOL_ARG_ERROR;
	return k;
}

void tool_print_help(FILE *out, const struct tool_cmd *cmd)
{
	fputs(cmd->help, out);
	fputs("\nGlobal options: -a ADAPTER, --snoop FILE, -n NAME (see 'btsock --help').\n"
	      "Exit status: 0 ok, 1 runtime failure, 2 usage error, 3 adapter unavailable.\n", out);
}
