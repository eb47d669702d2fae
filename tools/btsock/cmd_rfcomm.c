/* cmd_rfcomm.c - `btsock listen [CHANNEL]` and `btsock connect ADDR CHANNEL`: netcat over
 * RFCOMM (the relay itself is in netcat.c). */
#include "netcat.h"

#define RELAY_OPTIONS_HELP                                                                    \
	"  -d, --no-stdin   do not read stdin; run until the peer closes\n"                      \
	"      --send FILE  send FILE instead of stdin, then close; with a progress bar when\n" \
	"                   stderr is a terminal, and a throughput line at the end\n"          \
	"  -q, --quiet      no progress bar, throughput line or connection messages\n"         \
	"  -u, --uuid UUID  listen: the service UUID of --advertise; connect: find the channel\n" \
	"                   of the service with this UUID by SDP (then CHANNEL is omitted)\n" \
	"      --security LEVEL\n"                                                            \
	"                   low (default), medium (encrypted), high (authenticated key) or\n" \
	"                   fips (Secure Connections key); a shortfall fails with the reason\n"

static const char listen_help[] =
	"Usage: btsock listen [options] [CHANNEL]\n"
	"\n"
	"Netcat over RFCOMM, server side. Listens on CHANNEL (1-30; 0 or omitted = any free\n"
	"channel), prints \"listening on ADDR channel N\" on stderr, accepts one connection and\n"
	"relays: stdin -> peer, peer -> stdout. When stdin ends the connection is closed; when\n"
	"the peer closes, btsock exits with status 0. A lost link (the peer vanished, the\n"
	"controller died) is no close: \"link lost ...\" on stderr and status 1.\n"
	"\n"
	"Options:\n"
	"  -k, --keep       accept connections one after another; once stdin has ended, each\n"
	"                   connection lasts until the peer closes\n"
	"      --advertise NAME\n"
	"                   publish an SDP record for the channel: service NAME, the Serial\n"
	"                   Port class and profile, and --uuid's UUID as ServiceID and class\n"
	RELAY_OPTIONS_HELP
	"\n"
	"Examples: btsock listen 3 > received.bin\n"
	"          btsock listen --advertise Logger --uuid 94f39d29-7d6d-437d-973b-fba39e49d4ee\n";

static const char connect_help[] =
	"Usage: btsock connect [options] ADDR CHANNEL\n"
	"       btsock connect [options] ADDR --uuid UUID\n"
	"\n"
	"Netcat over RFCOMM, client side. Connects to channel CHANNEL (1-30) of the device ADDR\n"
	"(like 01:23:45:67:89:AB) and relays: stdin -> peer, peer -> stdout. When stdin ends the\n"
	"connection is closed; when the peer closes, btsock exits with status 0. A lost link\n"
	"(the peer vanished, the controller died) is no close: \"link lost ...\" on stderr and\n"
	"status 1.\n"
	"\n"
	"Options:\n"
	RELAY_OPTIONS_HELP
	"\n"
	"Examples: btsock connect 00:AA:01:00:00:23 3 --send big.bin\n"
	"          btsock connect 00:AA:01:00:00:23 --uuid 94f39d29-7d6d-437d-973b-fba39e49d4ee\n";

static int run_listen(struct tool_ctx *ctx, int argc, char **argv)
{
	struct tool_args a = { .argc = argc, .argv = argv, .i = 1, .cmd = "listen", .ctx = ctx };
	struct session s = { .proto = BTSOCK_RFCOMM, .listening = true };
	const char *pos[1];
	int npos, r;

	r = session_parse_args(&a, &s, &tool_cmd_listen, pos, 1, &npos);
	if (r >= 0)
		return r;
	if (npos == 1 && !tool_parse_channel(pos[0], true, &s.port))
		return TOOL_EXIT_USAGE;
	return session_listen(ctx, &s);
}

static int run_connect(struct tool_ctx *ctx, int argc, char **argv)
{
	struct tool_args a = { .argc = argc, .argv = argv, .i = 1, .cmd = "connect", .ctx = ctx };
	struct session s = { .proto = BTSOCK_RFCOMM };
	char peer[BTSOCK_ADDRSTRLEN];
	const char *pos[2];
	int npos, r;

	r = session_parse_args(&a, &s, &tool_cmd_connect, pos, 2, &npos);
	if (r >= 0)
		return r;
	if (npos < (s.uuid ? 1 : 2))
		return tool_usage_error("connect", "connect needs ADDR and CHANNEL (or ADDR --uuid UUID)");
	if (s.uuid && npos == 2)
		return tool_usage_error("connect", "give CHANNEL or --uuid, not both");
	if (!tool_parse_addr(pos[0], peer) || (!s.uuid && !tool_parse_channel(pos[1], false, &s.port)))
		return TOOL_EXIT_USAGE;
	s.peer = peer;
	return session_connect(ctx, &s);
}

const struct tool_cmd tool_cmd_listen = {
	.name = "listen",
	.summary = "netcat over RFCOMM: wait for a connection on a channel",
	.help = listen_help,
	.run = run_listen,
};

const struct tool_cmd tool_cmd_connect = {
	.name = "connect",
	.summary = "netcat over RFCOMM: connect to ADDR CHANNEL",
	.help = connect_help,
	.run = run_connect,
};
