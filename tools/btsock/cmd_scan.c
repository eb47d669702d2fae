/* cmd_scan.c - `btsock scan`: device discovery (inquiry), one line per device found: address,
 * name, class of device in words, RSSI. */
#include <stdlib.h>

#include "tool.h"

static const char scan_help[] =
	"Usage: btsock scan [options]\n"
	"\n"
	"Inquires for nearby devices and prints one line per device:\n"
	"  ADDR  \"NAME\"  CLASS  RSSI\n"
	"Names come from the devices' extended inquiry responses; devices without one are asked\n"
	"by a remote name request (unless --no-names).\n"
	"\n"
	"Options:\n"
	"  -t, --time SECONDS  how long to inquire (1-61, default 10; rounded up to 1.28 s units)\n"
	"      --no-names      do not ask devices without a name in their inquiry response\n"
	"\n"
	"Exit status 0 also when no device answered (then \"no devices found\" on stderr).\n";

enum { OPT_TIME, OPT_NO_NAMES };

static const struct tool_opt scan_opts[] = {
	[OPT_TIME] = { 't', "time", true },
	[OPT_NO_NAMES] = { 0, "no-names", false },
};

static void print_device(const struct btsock_device *d)
{
	char cls[256];

	btsock_describe_class(d->device_class, cls, sizeof cls);
	printf("%s  \"%s\"  %s (0x%06x)", d->addr, d->name[0] ? d->name : "(unknown)", cls, d->device_class);
	if (d->has_rssi)
		printf("  %d dBm", d->rssi);
	printf("\n");
}

static int run_scan(struct tool_ctx *ctx, int argc, char **argv)
{
	struct tool_args a = { .argc = argc, .argv = argv, .i = 1, .cmd = "scan", .ctx = ctx };
	unsigned long seconds = 10;
	bool names = true;
	int r;

	while ((r = tool_next_arg(&a, scan_opts, 2)) != TOOL_ARG_END) {
		if (r == TOOL_ARG_HELP) {
			tool_print_help(stdout, &tool_cmd_scan);
			return TOOL_EXIT_OK;
		}
		if (r == TOOL_ARG_ERROR)
			return TOOL_EXIT_USAGE;
		if (r == TOOL_ARG_POSITIONAL)
			return tool_usage_error("scan", "unexpected argument '%s'", a.arg);
		if (r == OPT_TIME && !tool_parse_uint(a.arg, "time", 1, 61, &seconds))
			return TOOL_EXIT_USAGE;
		if (r == OPT_NO_NAMES)
			names = false;
	}
	r = tool_open_adapter(ctx, NULL);
	if (r != TOOL_EXIT_OK)
		return r;
	struct btsock_device *devs = calloc(255, sizeof *devs);
	if (!devs) {
		tool_msg("out of memory");
		return TOOL_EXIT_FAILURE;
	}
	int n = btsock_discover(NULL, (int)seconds * 1000, names, devs, 255);
	if (n < 0) {
		free(devs);
		return tool_fail("scan");
	}
	for (int k = 0; k < n; k++)
		print_device(&devs[k]);
	if (n == 0)
		tool_msg("no devices found");
	free(devs);
	return TOOL_EXIT_OK;
}

const struct tool_cmd tool_cmd_scan = {
	.name = "scan",
	.summary = "discover nearby devices: address, name, class, RSSI",
	.help = scan_help,
	.run = run_scan,
};
