/* pp_tool: the pairing proxy (tests/integration/pairing_proxy.h) as a program of its own, for
 * the kernel tier (test-only; scripts/kernel-vm/passkey-check.sh).
 *
 *   pp_tool [-H HOST]... [-A HOST]... SOCKET N
 *
 * Starts the pairing proxy for N hosts (1-4) in front of btvirt's socket server SOCKET
 * (/tmp/bt-server-bredr) and prints "host I PATH" for each host's socket, then, as things
 * happen, one line per change of a host's counters:
 *   T_MS host I addr ADDR
 *   T_MS host I confirm=N value=V notify=N passkey=P request=N wrong=N paired=N failed=N
 *        ssp_hidden=N sec_block=N disc=N reason=0xRR auth_dropped=N
 * (T_MS: milliseconds since the start). -H I hides the peer's Secure Simple Pairing host
 * support from host I (pp_hide_peer_ssp); -A I keeps host I's first Authentication_Requested
 * from btvirt (pp_drop_auth). Runs until SIGTERM/SIGINT. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pairing_proxy.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void usage(void)
{
	fprintf(stderr, "usage: pp_tool [-H HOST]... [-A HOST]... SOCKET N\n");
	exit(2);
}

int main(int argc, char **argv)
{
	bool hide[PP_MAX_HOSTS] = { false }, drop_auth[PP_MAX_HOSTS] = { false };
	int opt;
	while ((opt = getopt(argc, argv, "H:A:")) != -1) {
		if (opt != 'H' && opt != 'A')
			usage();
		int i = atoi(optarg);
		if (i < 0 || i >= PP_MAX_HOSTS)
			usage();
		if (opt == 'H')
			hide[i] = true;
		else
			drop_auth[i] = true;
	}
	if (argc - optind != 2)
		usage();
	int n = atoi(argv[optind + 1]);
	if (n < 1 || n > PP_MAX_HOSTS)
		usage();
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	pairing_proxy *pp = pp_start(argv[optind], n);
	if (!pp) {
		fprintf(stderr, "pp_tool: cannot start the pairing proxy on %s\n", argv[optind]);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		pp_hide_peer_ssp(pp, i, hide[i]);
		pp_drop_auth(pp, i, drop_auth[i] ? 1 : 0);
		const char *a = pp_adapter(pp, i);
		printf("host %d %s\n", i, strncmp(a, "unix:", 5) == 0 ? a + 5 : a);
	}
	fflush(stdout);

	long long t0 = now_ms();
	bool has_addr[PP_MAX_HOSTS] = { false };
	pp_stats last[PP_MAX_HOSTS];
	memset(last, 0, sizeof last);
	while (!stop) {
		usleep(50 * 1000);
		for (int i = 0; i < n; i++) {
			const char *addr = pp_addr(pp, i);
			if (!has_addr[i] && addr[0]) {
				has_addr[i] = true;
				printf("%lld host %d addr %s\n", now_ms() - t0, i, addr);
			}
			pp_stats st;
			pp_get_stats(pp, i, &st);
			st.links_up = 0; /* not printed: no line for it alone */
			st.key_sizes_rewritten = 0;
			if (memcmp(&st, &last[i], sizeof st) == 0)
				continue;
			last[i] = st;
			printf("%lld host %d confirm=%u value=%06u notify=%u passkey=%06u request=%u wrong=%u "
			       "paired=%u failed=%u ssp_hidden=%u sec_block=%u disc=%u reason=0x%02x auth_dropped=%u\n",
			       now_ms() - t0, i, st.confirm_requests, st.last_confirm_value, st.passkey_notifications,
			       st.last_passkey, st.passkey_requests, st.wrong_passkeys, st.pairings_completed,
			       st.pairings_failed, st.ssp_bits_hidden, st.sec_blocks, st.disconnects,
			       st.last_disc_reason, st.auths_dropped);
		}
		fflush(stdout);
	}
	pp_stop(pp);
	return 0;
}
