/* main.c - the btsock command-line tool: global options and dispatch to the commands.
 *
 * Adding a command = adding a cmd_<name>.c that defines a `const struct tool_cmd` and one row
 * in the table below (plus its extern in tool.h). */
#include <signal.h>
#include <string.h>

#include "tool.h"

static const struct tool_cmd *const commands[] = {
	&tool_cmd_info,
	&tool_cmd_listen,
	&tool_cmd_connect,
	&tool_cmd_l2cap,
	&tool_cmd_scan,
	&tool_cmd_sdp,
	&tool_cmd_bench,
	&tool_cmd_pair,
	&tool_cmd_unpair,
	&tool_cmd_paired,
};

#define N_COMMANDS ((int)(sizeof(commands) / sizeof(commands[0])))

static const struct tool_cmd *find_command(const char *name)
{
	for (int k = 0; k < N_COMMANDS; k++) {
		if (strcmp(commands[k]->name, name) == 0)
			return commands[k];
	}
	return NULL;
}

static void print_usage(FILE *out)
{
	fputs("Usage: btsock [-a ADAPTER] [--snoop FILE] COMMAND [ARGS...]\n"
	      "       btsock help COMMAND | btsock COMMAND --help | btsock --version\n"
	      "\n"
	      "Bluetooth Classic sockets (RFCOMM, L2CAP) from the command line, with btsock's own\n"
	      "host stack.\n"
	      "\nCommands:\n", out);
	for (int k = 0; k < N_COMMANDS; k++)
		fprintf(out, "  %-10s %s\n", commands[k]->name, commands[k]->summary);
	fputs("\nGlobal options (before or after the command):\n"
	      "  -a, --adapter ADAPTER  controller to use; overrides $BTSOCK_ADAPTER:\n"
	      "                         unix:PATH, tcp:HOST:PORT, serial:DEVICE[@BAUD], userchan:hciN\n"
	      "      --snoop FILE       record all HCI traffic to FILE (btsnoop; btmon -r FILE)\n"
	      "  -n, --name NAME        the local name other devices see (default \"btsock\")\n"
	      "      --class HEX        the Class of Device other devices see (e.g. 5a020c)\n"
	      "      --keys FILE        keep link keys in FILE (mode 0600) and bond with peers that\n"
	      "                         pair; also $BTSOCK_KEYS. Without it no pairing is remembered\n"
	      "      --agent ask|accept|reject  answer pairing that asks the user: ask on the\n"
	      "                         terminal (compare the number, type the passkey), accept\n"
	      "                         every request, or refuse; without it only Just Works pairs\n"
	      "      --io display|yesno|keyboard|none|kbdisplay  the IO capability --agent announces\n"
	      "                         (default: kbdisplay with ask, yesno otherwise)\n"
	      "      --pin PIN          the PIN (1-16 characters) for legacy pairing with old devices\n"
	      "  -h, --help             this help\n"
	      "      --version          print the version\n"
	      "\nExit status:\n"
	      "  0  success\n"
	      "  1  runtime failure (connection refused, link lost, I/O error)\n"
	      "  2  usage error (bad option, address, channel, PSM or number)\n"
	      "  3  adapter unavailable (cannot open the controller)\n"
	      "\nErrors are printed on stderr as \"btsock: <reason>\".\n", out);
}

/* `btsock help [COMMAND]`. */
static int run_help(int argc, char **argv)
{
	const struct tool_cmd *cmd;

	if (argc < 2) {
		print_usage(stdout);
		return TOOL_EXIT_OK;
	}
	cmd = find_command(argv[1]);
	if (!cmd)
		return tool_usage_error(NULL, "unknown command '%s'", argv[1]);
	tool_print_help(stdout, cmd);
	return TOOL_EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct tool_opt opts[] = { { 0, "version", false } };
	struct tool_ctx ctx = { .io = -1 };
	struct tool_args a = { .argc = argc, .argv = argv, .i = 1, .ctx = &ctx };
	const struct tool_cmd *cmd;
	int r;

	/* A peer or stdout going away shows up as EPIPE from write(), not as a signal. */
	signal(SIGPIPE, SIG_IGN);

	for (;;) {
		r = tool_next_arg(&a, opts, 1);
		if (r == TOOL_ARG_POSITIONAL)
			break;
		switch (r) {
		case TOOL_ARG_END:
			print_usage(stderr);
			return TOOL_EXIT_USAGE;
		case TOOL_ARG_HELP:
			print_usage(stdout);
			return TOOL_EXIT_OK;
		case TOOL_ARG_ERROR:
			return TOOL_EXIT_USAGE;
		default: /* --version */
			printf("btsock %s\n", BTSOCK_VERSION);
			return TOOL_EXIT_OK;
		}
	}
	if (strcmp(a.arg, "help") == 0)
		return run_help(argc - (a.i - 1), argv + (a.i - 1));
	cmd = find_command(a.arg);
	if (!cmd)
		return tool_usage_error(NULL, "unknown command '%s'", a.arg);
	return cmd->run(&ctx, argc - (a.i - 1), argv + (a.i - 1));
}
