/* cmd_sdp.c - `btsock sdp browse ADDR` and `btsock sdp search UUID [ADDR]`: service records of
 * other devices, printed in full (btsock_describe_record) in the manner of `sdptool browse`. */
#include <stdlib.h>
#include <string.h>

#include "tool.h"

static const char sdp_help[] =
	"Usage: btsock sdp browse ADDR\n"
	"       btsock sdp search UUID [ADDR]\n"
	"\n"
	"browse prints every service record the device ADDR lists in its public browse group.\n"
	"search prints the records that contain UUID (like 1101 for Serial Port, or a 128-bit\n"
	"UUID 00001101-0000-1000-8000-00805F9B34FB) on ADDR, or without ADDR on every device an\n"
	"inquiry finds (about 5 s).\n"
	"Each record is printed with its name, protocols and port (RFCOMM channel or L2CAP\n"
	"PSM), service classes, profiles and every other attribute, records separated by a\n"
	"blank line.\n"
	"\n"
	"Exit status 0 also when no record matched (then \"no matching records\" on stderr).\n"
	"\n"
	"Example: btsock sdp search 1101 00:AA:01:00:00:23\n";

/* Prints each record; returns the exit code. */
static int print_records(const struct btsock_service_info *v, int n)
{
	size_t cap = 4096;
	char *buf = malloc(cap);

	for (int k = 0; buf && k < n; k++) {
		int len = btsock_describe_record(v[k].record, v[k].record_len, buf, cap);
		if (len >= 0 && (size_t)len >= cap) {
			char *bigger = realloc(buf, (size_t)len + 1);
			if (!bigger)
				break;
			buf = bigger;
			cap = (size_t)len + 1;
			len = btsock_describe_record(v[k].record, v[k].record_len, buf, cap);
		}
		if (k)
			printf("\n");
		printf("Device: %s\n", v[k].host);
		if (len < 0)
			printf("(malformed record: %s)\n", btsock_error());
		else
			fputs(buf, stdout);
	}
	if (!buf) {
		tool_msg("out of memory");
		return TOOL_EXIT_FAILURE;
	}
	free(buf);
	if (n == 0)
		tool_msg("no matching records");
	return TOOL_EXIT_OK;
}

static int run_sdp(struct tool_ctx *ctx, int argc, char **argv)
{
	struct tool_args a = { .argc = argc, .argv = argv, .i = 1, .cmd = "sdp", .ctx = ctx };
	const char *pos[3];
	int npos = 0, r;
	char addr[BTSOCK_ADDRSTRLEN];
	const char *uuid = NULL, *peer = NULL;

	while ((r = tool_next_arg(&a, NULL, 0)) != TOOL_ARG_END) {
		if (r == TOOL_ARG_HELP) {
			tool_print_help(stdout, &tool_cmd_sdp);
			return TOOL_EXIT_OK;
		}
		if (r == TOOL_ARG_ERROR)
			return TOOL_EXIT_USAGE;
		if (npos == 3)
			return tool_usage_error("sdp", "unexpected argument '%s'", a.arg);
		pos[npos++] = a.arg;
	}
	if (npos == 0)
		return tool_usage_error("sdp", "sdp needs a subcommand: browse or search");
	if (strcmp(pos[0], "browse") == 0) {
		if (npos != 2)
			return tool_usage_error("sdp", "sdp browse needs exactly one ADDR");
		if (!tool_parse_addr(pos[1], addr))
			return TOOL_EXIT_USAGE;
		peer = addr;
	} else if (strcmp(pos[0], "search") == 0) {
		if (npos < 2)
			return tool_usage_error("sdp", "sdp search needs a UUID");
		if (!tool_check_uuid(pos[1]))
			return TOOL_EXIT_USAGE;
		uuid = pos[1];
		if (npos == 3) {
			if (!tool_parse_addr(pos[2], addr))
				return TOOL_EXIT_USAGE;
			peer = addr;
		}
	} else {
		return tool_usage_error("sdp", "unknown sdp subcommand '%s' (browse or search)", pos[0]);
	}
	r = tool_open_adapter(ctx, NULL);
	if (r != TOOL_EXIT_OK)
		return r;
	struct btsock_service_info *found;
	int n = btsock_find_services(peer, uuid, NULL, &found);
	if (n < 0)
		return tool_fail("sdp");
	r = print_records(found, n);
	btsock_free_services(found);
	return r;
}

const struct tool_cmd tool_cmd_sdp = {
	.name = "sdp",
	.summary = "service records of a device: sdp browse ADDR, sdp search UUID [ADDR]",
	.help = sdp_help,
	.run = run_sdp,
};
