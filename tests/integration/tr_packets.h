/* tr_packets.h - a transport kind of the tests' own, "test-packets:PATH", that plugs into
 * btsock through the packet interface (src/transport/transport_impl.h) and is no byte stream.
 *
 * Like USB (H2, Core spec Vol 4 Part B), it has two channels, each a SOCK_SEQPACKET
 * socketpair carrying one HCI packet per datagram and no H4 indicator: commands down and
 * events up on one, ACL data both ways on the other; the channel says the type. A relay
 * thread per transport stands in for the controller's USB side: it connects to btvirt's H4
 * socket at PATH and converts (it frames btvirt's stream with src/transport/h4.h). */
#ifndef BTSOCK_TEST_TR_PACKETS_H
#define BTSOCK_TEST_TR_PACKETS_H

/* Registers the kind (once per process). 0 or -errno. */
int tr_packets_register(void);
/* Kills every relay now: each closes its channels and its btvirt connection at once, as an
 * unplugged adapter would. Returns how many were alive. */
int tr_packets_kill_all(void);
/* Datagrams the relays carried so far (host to controller, controller to host). */
void tr_packets_counts(unsigned long *down, unsigned long *up);

#endif
