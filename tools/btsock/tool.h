/* tool.h - shared pieces of the btsock command-line tool: the command table entry, the
 * stable exit codes, global options and the argument parsers of util.c.
 *
 * A command lives in its own cmd_<name>.c and exports one `const struct tool_cmd`; main.c
 * lists it in its table. Commands use only the public API (include/btsock.h). */
#ifndef BTSOCK_TOOL_H
#define BTSOCK_TOOL_H

#include <stdbool.h>
#include <stdio.h>

#include "btsock.h"

/* Exit codes: stable, documented in --help and docs/CLI.md. */
enum tool_exit {
	TOOL_EXIT_OK = 0,          /* success */
	TOOL_EXIT_FAILURE = 1,     /* runtime failure: connection refused, link lost, I/O error */
	TOOL_EXIT_USAGE = 2,       /* usage error: bad option, address, channel, PSM, number */
	TOOL_EXIT_NO_ADAPTER = 3,  /* the adapter could not be opened */
};

/* Global options (given before or after the command name). */
struct tool_ctx {
	const char *adapter;  /* -a ADAPTER, NULL = BTSOCK_ADAPTER */
	const char *snoop;    /* --snoop FILE, NULL = none (BTSOCK_SNOOP still applies) */
	const char *keys;     /* --keys FILE, NULL = none (BTSOCK_KEYS still applies) */
	const char *local_name; /* -n NAME: the name other devices see, NULL = "btsock" */
	unsigned device_class;  /* --class HEX: the Class of Device (set_class) */
	bool set_class;
	const char *agent;    /* --agent ask|accept|reject: how pairing that needs the user is answered */
	const char *pin;      /* --pin PIN: the PIN for legacy pairing, NULL = refuse */
	int io;               /* --io: the IO capability announced with --agent, -1 = the default */
};

struct tool_cmd {
	const char *name;     /* "info", "l2cap", ... */
	const char *summary;  /* one line for the command list */
	const char *help;     /* full text for `btsock help NAME` / `btsock NAME --help` */
	/* argv[0] is the command name; returns an exit code (enum tool_exit). */
	int (*run)(struct tool_ctx *ctx, int argc, char **argv);
};

/* The commands (one file each). */
extern const struct tool_cmd tool_cmd_info;
extern const struct tool_cmd tool_cmd_l2cap;
extern const struct tool_cmd tool_cmd_listen;
extern const struct tool_cmd tool_cmd_connect;
extern const struct tool_cmd tool_cmd_scan;
extern const struct tool_cmd tool_cmd_sdp;
extern const struct tool_cmd tool_cmd_bench;
extern const struct tool_cmd tool_cmd_pair;
extern const struct tool_cmd tool_cmd_unpair;
extern const struct tool_cmd tool_cmd_paired;

/* --- util.c --- */

/* Prints "btsock: <formatted message>" on stderr. */
void tool_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "btsock: <message>" and a hint to try --help; returns TOOL_EXIT_USAGE. `cmd` is the
 * command path for the hint ("l2cap connect"), or NULL. */
int tool_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "btsock: <btsock_error()>" (or strerror(errno) when the library set no sentence,
 * prefixed by `what`); returns TOOL_EXIT_NO_ADAPTER for ENODEV, else TOOL_EXIT_FAILURE. */
int tool_fail(const char *what);

/* Parses "01:23:45:67:89:AB" (either case) into out[BTSOCK_ADDRSTRLEN], upper case.
 * On error prints the message and returns false. */
bool tool_parse_addr(const char *s, char out[BTSOCK_ADDRSTRLEN]);

/* Parses an unsigned number (decimal, or 0x hex) in [min, max]; `what` names it in the
 * error message ("channel"). */
bool tool_parse_uint(const char *s, const char *what, unsigned long min, unsigned long max,
		     unsigned long *out);

/* A UUID as btsock takes it ("1101", "0x1101", 32-bit, or 128-bit with dashes); prints the
 * message and returns false if it is not one. */
bool tool_check_uuid(const char *s);

/* RFCOMM server channel 1-30; allow_any also accepts 0 (any free channel). */
bool tool_parse_channel(const char *s, bool allow_any, unsigned *out);

/* L2CAP PSM (Core Vol 3 Part A 4.2): odd, upper byte's lowest bit 0; allow_any accepts 0. */
bool tool_parse_psm(const char *s, bool allow_any, unsigned *out);

/* Applies --snoop, opens the adapter (-a or BTSOCK_ADAPTER) as the default one and gives it
 * the -n name; writes its address to addr (may be NULL). Returns TOOL_EXIT_OK or the exit code to use. */
int tool_open_adapter(const struct tool_ctx *ctx, char addr[BTSOCK_ADDRSTRLEN]);

/* Command-line scanning shared by all commands: global options (-a, --snoop) are accepted
 * anywhere and handled here; -h/--help is reported; "--" ends the options. */
struct tool_opt {
	char short_name;        /* 'k' for -k, or 0 */
	const char *long_name;  /* "keep" for --keep, or NULL */
	bool has_arg;           /* takes a value: -m 100, --mtu 100, --mtu=100 */
};

struct tool_args {
	int argc;
	char **argv;
	int i;                  /* next argv index to look at */
	bool no_more_options;   /* after "--" */
	const char *cmd;        /* command path for messages ("l2cap connect") */
	struct tool_ctx *ctx;
	const char *arg;        /* out: the positional or the option's value */
};

enum {
	TOOL_ARG_END = -1,         /* argv exhausted */
	TOOL_ARG_POSITIONAL = -2,  /* a->arg is a positional argument */
	TOOL_ARG_HELP = -3,        /* -h or --help */
	TOOL_ARG_ERROR = -4,       /* unknown option or missing value; message printed */
};

/* Returns the index in opts of the next command option (value in a->arg), or one of the
 * TOOL_ARG_* codes. */
int tool_next_arg(struct tool_args *a, const struct tool_opt *opts, int nopts);

/* Prints a command's help text to `out`. */
void tool_print_help(FILE *out, const struct tool_cmd *cmd);

#endif
