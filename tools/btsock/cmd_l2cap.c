/* cmd_l2cap.c - `btsock l2cap listen PSM` and `btsock l2cap connect ADDR PSM`: netcat over
 * L2CAP, one message per chunk read (the relay itself is in netcat.c). */
#include <string.h>

#include "netcat.h"

static const char l2cap_help[] =
	"Usage: btsock l2cap listen [options] PSM\n"
	"       btsock l2cap connect [options] ADDR PSM\n"
	"       btsock l2cap connect [options] ADDR --uuid UUID\n"
	"\n"
	"Netcat over L2CAP. listen waits on PSM (0 = any free PSM), prints\n"
	"\"listening on ADDR psm 0x1001\" on stderr and handles one connection; connect connects\n"
	"to PSM on the device ADDR (like 01:23:45:67:89:AB). Both relay stdin -> peer, as\n"
	"messages of at most the peer's MTU (one per read), and peer -> stdout. When stdin ends\n"
	"the channel is closed; when the peer closes, btsock exits with status 0. A lost link\n"
	"(the peer vanished, the controller died) is no close: \"link lost ...\" on stderr and\n"
	"status 1.\n"
	"\n"
	"A PSM is odd and the lowest bit of its upper byte is 0 (Core Vol 3 Part A 4.2):\n"
	"0x1001, 0x1003, ... 0x10FF, 0x1201, ... (decimal works too: 4097).\n"
	"\n"
	"Options:\n"
	"  -m, --mtu N      the largest message we accept (48-4096, default 672)\n"
	"  -k, --keep       listen: accept connections one after another; once stdin has\n"
	"                   ended, each connection lasts until the peer closes\n"
	"  -d, --no-stdin   do not read stdin; run until the peer closes\n"
	"      --send FILE  send FILE instead of stdin, then close (progress bar on a terminal)\n"
	"  -q, --quiet      no progress bar, throughput line or connection messages\n"
	"      --advertise NAME\n"
	"                   listen: publish an SDP record for the PSM named NAME\n"
	"  -u, --uuid UUID  listen: the record's service UUID; connect: find the PSM of the\n"
	"                   service with this UUID by SDP (then PSM is omitted)\n"
	"      --security LEVEL\n"
	"                   low (default), medium (encrypted), high (authenticated key) or\n"
	"                   fips (Secure Connections key); a shortfall fails with the reason\n"
	"\n"
	"Example: btsock l2cap listen 0x1001\n"
	"         echo hello | btsock l2cap connect 00:AA:01:00:00:23 0x1001\n";

static int run_l2cap_listen(struct tool_ctx *ctx, int argc, char **argv)
{
	struct tool_args a = { .argc = argc, .argv = argv, .i = 1, .cmd = "l2cap listen",
			       .ctx = ctx };
	struct session s = { .proto = BTSOCK_L2CAP, .listening = true };
	const char *pos[1];
	int npos, r;

	r = session_parse_args(&a, &s, &tool_cmd_l2cap, pos, 1, &npos);
	if (r >= 0)
		return r;
	if (npos < 1)
		return tool_usage_error("l2cap listen", "l2cap listen needs a PSM");
	if (!tool_parse_psm(pos[0], true, &s.port))
		return TOOL_EXIT_USAGE;
	return session_listen(ctx, &s);
}

static int run_l2cap_connect(struct tool_ctx *ctx, int argc, char **argv)
{
	struct tool_args a = { .argc = argc, .argv = argv, .i = 1, .cmd = "l2cap connect",
			       .ctx = ctx };
	struct session s = { .proto = BTSOCK_L2CAP };
	char peer[BTSOCK_ADDRSTRLEN];
	const char *pos[2];
	int npos, r;

	r = session_parse_args(&a, &s, &tool_cmd_l2cap, pos, 2, &npos);
	if (r >= 0)
		return r;
	if (npos < (s.uuid ? 1 : 2))
		return tool_usage_error("l2cap connect", "l2cap connect needs ADDR and PSM (or ADDR --uuid UUID)");
	if (s.uuid && npos == 2)
		return tool_usage_error("l2cap connect", "give PSM or --uuid, not both");
	if (!tool_parse_addr(pos[0], peer) || (!s.uuid && !tool_parse_psm(pos[1], false, &s.port)))
		return TOOL_EXIT_USAGE;
	s.peer = peer;
	return session_connect(ctx, &s);
}

/* `btsock l2cap SUBCOMMAND ...`: global options and --help may come before the
 * subcommand. */
static int run_l2cap(struct tool_ctx *ctx, int argc, char **argv)
{
	struct tool_args a = { .argc = argc, .argv = argv, .i = 1, .cmd = "l2cap", .ctx = ctx };
	int r = tool_next_arg(&a, NULL, 0);

	if (r == TOOL_ARG_HELP) {
		tool_print_help(stdout, &tool_cmd_l2cap);
		return TOOL_EXIT_OK;
	}
	if (r == TOOL_ARG_ERROR)
		return TOOL_EXIT_USAGE;
	if (r == TOOL_ARG_END)
		return tool_usage_error("l2cap", "l2cap needs a subcommand: listen or connect");
	if (strcmp(a.arg, "listen") == 0)
		return run_l2cap_listen(ctx, argc - (a.i - 1), argv + (a.i - 1));
	if (strcmp(a.arg, "connect") == 0)
		return run_l2cap_connect(ctx, argc - (a.i - 1), argv + (a.i - 1));
	return tool_usage_error("l2cap", "unknown l2cap subcommand '%s' (listen or connect)",
				a.arg);
}

const struct tool_cmd tool_cmd_l2cap = {
	.name = "l2cap",
	.summary = "netcat over L2CAP: l2cap listen PSM | l2cap connect ADDR PSM",
	.help = l2cap_help,
	.run = run_l2cap,
};
