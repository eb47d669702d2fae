/* cmd_info.c - `btsock info`: opens the adapter and prints what the controller reported
 * (address, HCI/LMP versions, manufacturer, ACL buffers). */
#include <stddef.h>

#include "tool.h"

static const char info_help[] =
	"Usage: btsock info\n"
	"\n"
	"Opens the adapter (-a ADAPTER, $BTSOCK_ADAPTER, or else a kernel adapter that is up)\n"
	"and prints which backend runs it, its Bluetooth address,\n"
	"how it was opened, the HCI and LMP versions the controller reports (as Core spec\n"
	"versions, e.g. 5.3), its manufacturer and its ACL buffers.\n";

/* Core spec version codes of Read Local Version Information (Vol 4 Part E 7.4.1; values
 * from the Assigned Numbers document). */
static const char *version_name(unsigned v)
{
	static const char *const names[] = {
		"1.0b", "1.1", "1.2", "2.0+EDR", "2.1+EDR", "3.0+HS", "4.0", "4.1",
		"4.2", "5.0", "5.1", "5.2", "5.3", "5.4", "6.0", "6.1",
	};

	return v < sizeof(names) / sizeof(names[0]) ? names[v] : "unknown";
}

/* A few common company identifiers (Assigned Numbers, "Company Identifiers"). */
static const char *manufacturer_name(unsigned id)
{
	static const struct {
		unsigned id;
		const char *name;
	} names[] = {
		{ 0, "Ericsson" },       { 1, "Nokia" },
		{ 2, "Intel" },          { 6, "Microsoft" },
		{ 10, "Qualcomm Technologies International (CSR)" },
		{ 13, "Texas Instruments" },
		{ 15, "Broadcom" },      { 29, "Qualcomm" },
		{ 48, "ST Microelectronics" },
		{ 70, "MediaTek" },      { 89, "Nordic Semiconductor" },
		{ 93, "Realtek" },       { 305, "Cypress Semiconductor" },
		{ 1521, "The Linux Foundation" },
	};

	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		if (names[k].id == id)
			return names[k].name;
	}
	return NULL;
}

static void print_info(const struct btsock_adapter_info *info)
{
	const char *maker = manufacturer_name(info->manufacturer);

	printf("address:      %s\n", info->addr);
	printf("adapter:      %s\n", info->name);
	printf("hci version:  %s (0x%02x), revision 0x%04x\n", version_name(info->hci_version),
	       info->hci_version, info->hci_revision);
	printf("lmp version:  %s (0x%02x)\n", version_name(info->lmp_version), info->lmp_version);
	if (maker)
		printf("manufacturer: %u (0x%04x, %s)\n", info->manufacturer, info->manufacturer,
		       maker);
	else
		printf("manufacturer: %u (0x%04x)\n", info->manufacturer, info->manufacturer);
	printf("acl buffers:  %u x %u bytes\n", info->acl_packets, info->acl_mtu);
}

static int run_info(struct tool_ctx *ctx, int argc, char **argv)
{
	struct tool_args a = { .argc = argc, .argv = argv, .i = 1, .cmd = "info", .ctx = ctx };
	struct btsock_adapter_info info;
	char addr[BTSOCK_ADDRSTRLEN];
	int r;

	while ((r = tool_next_arg(&a, NULL, 0)) != TOOL_ARG_END) {
		if (r == TOOL_ARG_HELP) {
			tool_print_help(stdout, &tool_cmd_info);
			return TOOL_EXIT_OK;
		}
		if (r == TOOL_ARG_ERROR)
			return TOOL_EXIT_USAGE;
		return tool_usage_error("info", "unexpected argument '%s'", a.arg);
	}
	r = tool_open_adapter(ctx, addr);
	if (r != TOOL_EXIT_OK)
		return r;
	if (btsock_adapter_info(addr, &info) < 0)
		return tool_fail("adapter info");
	print_info(&info);
	r = btsock_adapter_secure_connections(addr);
	printf("secure conn:  %s\n", r > 0 ? "on" : r == 0 ? "off" : "unknown");
	return TOOL_EXIT_OK;
}

const struct tool_cmd tool_cmd_info = {
	.name = "info",
	.summary = "show the adapter's address, versions, manufacturer and buffers",
	.help = info_help,
	.run = run_info,
};
