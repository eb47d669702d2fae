/* cmd_pair.c - `btsock pair ADDR`, `btsock unpair ADDR`, `btsock paired`: bonds with peers
 * (btsock_pair, btsock_unpair, btsock_paired), kept across runs in the --keys file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

static const char pair_help[] =
	"Usage: btsock pair [--timeout MS] ADDR\n"
	"\n"
	"Pairs with the device at ADDR: pages it, authenticates (pairing if no key is known) and\n"
	"encrypts the link, then lets the link go. With --keys FILE the bond is kept there, so\n"
	"later connections need no pairing; without it the pairing lasts only as long as the link.\n"
	"Pairing that needs the user goes to --agent (ask: compare the number or type the passkey\n"
	"on this terminal; accept; reject) or --pin for legacy pairing; without them only Just\n"
	"Works pairs.\n"
	"\n"
	"Options:\n"
	"      --timeout MS   give up after MS milliseconds (default 60000)\n";

static const char unpair_help[] =
	"Usage: btsock unpair ADDR\n"
	"\n"
	"Forgets the bond with ADDR: its key is deleted from the --keys file ($BTSOCK_KEYS). The\n"
	"next connection with it pairs again. Fails (exit 1) if there was no bond.\n";

static const char paired_help[] =
	"Usage: btsock paired\n"
	"\n"
	"Lists the devices this adapter is bonded with (from the --keys file, $BTSOCK_KEYS), one a\n"
	"line: the address, then whether the key is authenticated (MITM-protected, from Numeric\n"
	"Comparison or Passkey Entry) or not (Just Works), legacy (PIN) or Secure Connections.\n";

/* Scans a command's arguments: exactly one address (want_addr) or none. */
static int scan_args(struct tool_ctx *ctx, int argc, char **argv, const struct tool_cmd *cmd, bool want_addr,
		     char addr[BTSOCK_ADDRSTRLEN], unsigned long *timeout_ms)
{
	static const struct tool_opt opts[] = { { 0, "timeout", true } };
	struct tool_args a = { .argc = argc, .argv = argv, .i = 1, .cmd = cmd->name, .ctx = ctx };
	int n = 0, r;

	while ((r = tool_next_arg(&a, opts, timeout_ms ? 1 : 0)) != TOOL_ARG_END) {
		if (r == TOOL_ARG_HELP) {
			tool_print_help(stdout, cmd);
			return -1;
		}
		if (r == TOOL_ARG_ERROR)
			return TOOL_EXIT_USAGE;
		if (r == 0) {
			if (!tool_parse_uint(a.arg, "timeout", 1, 3600000, timeout_ms))
				return TOOL_EXIT_USAGE;
			continue;
		}
		if (!want_addr || n++)
			return tool_usage_error(cmd->name, "unexpected argument '%s'", a.arg);
		if (!tool_parse_addr(a.arg, addr))
			return TOOL_EXIT_USAGE;
	}
	if (want_addr && !n)
		return tool_usage_error(cmd->name, "missing the device address (ADDR)");
	return TOOL_EXIT_OK;
}

static const char *key_words(const struct btsock_bond *b)
{
	if (b->key_type <= 2) /* Vol 4 Part E 7.7.24: combination, local / remote unit keys */
		return "legacy (PIN)";
	if (b->secure_connections)
		return b->authenticated ? "authenticated, Secure Connections" : "unauthenticated, Secure Connections";
	return b->authenticated ? "authenticated" : "unauthenticated (Just Works)";
}

/* The bond with addr, if the adapter has one. */
static bool find_bond(const char *addr, struct btsock_bond *out)
{
	struct btsock_bond b[64];
	int n = btsock_paired(NULL, b, 64);

	for (int k = 0; k < n && k < 64; k++) {
		if (strcmp(b[k].addr, addr) == 0) {
			*out = b[k];
			return true;
		}
	}
	return false;
}

static int run_pair(struct tool_ctx *ctx, int argc, char **argv)
{
	char addr[BTSOCK_ADDRSTRLEN];
	unsigned long timeout_ms = 60000;
	int r = scan_args(ctx, argc, argv, &tool_cmd_pair, true, addr, &timeout_ms);

	if (r != TOOL_EXIT_OK)
		return r < 0 ? TOOL_EXIT_OK : r;
	if ((r = tool_open_adapter(ctx, NULL)) != TOOL_EXIT_OK)
		return r;
	if (btsock_pair(NULL, addr, (int)timeout_ms) < 0)
		return tool_fail("pair");
	struct btsock_bond b;
	if (find_bond(addr, &b))
		printf("paired with %s: bonded, key %s\n", addr, key_words(&b));
	else
		printf("paired with %s: link authenticated and encrypted; no bond kept (no --keys file, "
		       "or the peer did not bond)\n", addr);
	return TOOL_EXIT_OK;
}

static int run_unpair(struct tool_ctx *ctx, int argc, char **argv)
{
	char addr[BTSOCK_ADDRSTRLEN];
	int r = scan_args(ctx, argc, argv, &tool_cmd_unpair, true, addr, NULL);

	if (r != TOOL_EXIT_OK)
		return r < 0 ? TOOL_EXIT_OK : r;
	if ((r = tool_open_adapter(ctx, NULL)) != TOOL_EXIT_OK)
		return r;
	if (btsock_unpair(NULL, addr) < 0)
		return tool_fail("unpair");
	printf("unpaired %s\n", addr);
	return TOOL_EXIT_OK;
}

static int run_paired(struct tool_ctx *ctx, int argc, char **argv)
{
	struct btsock_bond b[64];
	int r = scan_args(ctx, argc, argv, &tool_cmd_paired, false, NULL, NULL);

	if (r != TOOL_EXIT_OK)
		return r < 0 ? TOOL_EXIT_OK : r;
	if ((r = tool_open_adapter(ctx, NULL)) != TOOL_EXIT_OK)
		return r;
	int n = btsock_paired(NULL, b, 64);
	if (n < 0)
		return tool_fail("paired");
	for (int k = 0; k < n && k < 64; k++)
		printf("%s  %s\n", b[k].addr, key_words(&b[k]));
	if (n == 0)
		fprintf(stderr, "btsock: no bonds%s\n", ctx->keys || getenv("BTSOCK_KEYS") ? "" : " (no --keys file given)");
	return TOOL_EXIT_OK;
}

const struct tool_cmd tool_cmd_pair = {
	.name = "pair",
	.summary = "pair (bond) with a device",
	.help = pair_help,
	.run = run_pair,
};

const struct tool_cmd tool_cmd_unpair = {
	.name = "unpair",
	.summary = "forget the bond with a device",
	.help = unpair_help,
	.run = run_unpair,
};

const struct tool_cmd tool_cmd_paired = {
	.name = "paired",
	.summary = "list the devices this adapter is bonded with",
	.help = paired_help,
	.run = run_paired,
};
