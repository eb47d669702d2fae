#!/bin/sh
# gen_seeds.sh - writes the seed corpora of the stateful fuzz targets (fuzz_l2cap_chan,
# fuzz_rfcomm_session, fuzz_sdp_cont, fuzz_acl_reassembly) under tests/fuzz/corpus/.
# Each seed is hex here so the layout can be read and reviewed; the chunk format
# [hdr][len][octets] and the hdr bits are described at the top of each target.
# Run from anywhere: sh tests/fuzz/gen_seeds.sh
set -eu
dir=$(cd "$(dirname "$0")" && pwd)/corpus

# seed <target> <name> <hex...>: spaces in the hex are ignored.
seed() {
	mkdir -p "$dir/$1"
	# POSIX printf knows octal escapes only: each hex pair becomes \ooo.
	esc=$(echo "$3" | tr -d ' \n' | sed 's/../& /g' | awk '{
		for (i = 1; i <= NF; i++) {
			v = 0
			for (j = 1; j <= 2; j++)
				v = v * 16 + index("0123456789abcdef", tolower(substr($i, j, 1))) - 1
			printf "\\%03o", v
		}
	}')
	printf "$esc" >"$dir/$1/$2"
}

# ---- l2cap_chan: data[0] bit 0 user channel, bit 1 OPEN.
# Option layouts: Vol 3 Part A 5.1 MTU (01 02 mtu), 5.4 RFC (04 09 mode txwin maxtx rtx2 mon2 mps2).
rfc_ertm='04 09 03 3f 03 d0 07 e0 2e f0 03'
rfc_retx='04 09 01 00 00 00 00 00 00 00 00'
mtu='01 02 a0 02'
# The issue 9 crash: a Configuration Request on the SDP channel in CONFIG with 7 RFC options
# (mode != basic): each answered option adds 11 octets to a 64-octet response.
seed l2cap_chan conf_7rfc_sdp_config "00 02 4e 00 $rfc_retx $rfc_retx $rfc_retx $rfc_retx $rfc_retx $rfc_retx $rfc_retx"
seed l2cap_chan conf_6rfc_user_open "03 22 43 00 $rfc_ertm $rfc_ertm $rfc_ertm $rfc_ertm $rfc_ertm $rfc_ertm"
seed l2cap_chan conf_mtu_rfc_sdp_open "02 12 10 00 $mtu $rfc_ertm"
# Peer's Configuration Request (MTU), then the stack's is answered: CONFIG -> OPEN, then data.
seed l2cap_chan conf_then_open_user "01 0a 05 00 $mtu 01 04 74 65 73 74 11 04 61 62 63 64"
# Continuation flag set, unknown non-hint option 0x55, hint 0x85.
seed l2cap_chan conf_cont_unknown "00 02 0a 01 55 02 00 00 85 03 01 02 03"
# SDP ServiceSearchAttribute on the open SDP channel (Vol 3 Part B 4.7.1).
seed l2cap_chan sdp_ssa_open "02 01 14 06 00 01 00 0f 35 03 19 01 00 ff ff 35 05 0a 00 00 ff ff 00"
# Echo Request (4.8), Information Request (4.10), Disconnection Request via hdr 3 (4.6).
seed l2cap_chan echo_info_disc "03 00 0c 08 01 02 00 aa bb 0a 02 02 00 02 00 03 06 06 05 00 00 00 00"
# Configuration Response (4.5) "unacceptable" proposing an MTU, on the open user channel.
seed l2cap_chan conf_rsp_unacceptable "00 03 0c 05 01 00 00 00 00 01 00 01 02 30 00 04 00"
# A 7-option request that stays within 64 octets if answered (MTU + flush timeout + QoS hint),
# and 3 non-basic RFC options: the fuzzer's CopyPart can grow it into the crash.
seed l2cap_chan conf_3rfc_sdp_config "00 02 22 00 $rfc_retx $rfc_ertm $rfc_retx"
seed l2cap_chan conf_mixed_user_config "01 0a 15 00 $mtu 02 02 ff ff 83 0a 00 01 00 00 00 00 00 00 00 00"

# ---- rfcomm_session: frames after setup (two DLCs open, DLC 6 in MSC exchange, PN out for
# DLC 11). Built frames: [dlci | C/R << 6][ctl index | P/F << 3 | credit << 4][credits][info].
# Multiplexer commands: [type | C/R << 6][value], type per TS 07.10 5.4.6.3.
seed rfcomm_session data_read_write "09 07 42 1c 05 64 61 74 61 31 00 01 07 44 1c 02 64 61 74 61 04 00"
# Test command (5.4.6.3.4), short and long.
seed rfcomm_session test_cmd "02 05 48 70 69 6e 67 02 c9 48 $(printf '5a%.0s' $(seq 200))"
# MSC both ways for DLC 6 (5.4.6.3.7): the exchange the setup left pending completes.
seed rfcomm_session msc_dlc6 "02 03 38 1b 8d 02 03 78 1b 8d 51 00"
# PN response for the stack's DLC 11 (5.4.6.3.1), then UA: the outgoing DLC opens.
seed rfcomm_session pn_rsp_ua_dlc11 "02 09 20 0b e0 07 00 c8 00 00 07 01 03 0b 09 00 02 03 38 2f 8d 02 03 78 2f 8d 71 00"
# Flow control off/on (5.4.6.3.5-6), RPN query, RLS, an unknown type (NSC expected).
seed rfcomm_session fc_rpn_rls "02 01 58 02 01 68 02 02 64 0b 02 03 54 0b 01 02 02 7f 00"
# DISC on DLC 4, then DLC 4 again (PN, SABM), raw SABM on DLCI 0, close of channel 3.
seed rfcomm_session disc_reopen "01 03 44 0b 00 02 09 60 04 f0 07 00 c8 00 00 07 01 03 44 08 00 00 04 03 3f 01 1c c1 00"
# L2CAP signalling under the session: Echo, and a Configuration Request on the open channel.
seed rfcomm_session sig_echo_conf "03 08 08 01 04 00 01 02 03 04 03 0c 04 05 08 00 40 00 00 00 01 02 00 01"
# Timers: T2 for the unanswered PN, linger.
seed rfcomm_session timers "04 00 04 00 04 00 04 00"

# ---- sdp_cont: a continuation is pending after setup.
# Replays: fetch the rest of the answer slice by slice (Vol 3 Part B 4.3).
seed sdp_cont replay_all "03 00 03 00 03 00 03 00 03 00 03 00 03 00 03 00 03 00 03 00 03 00 03 00"
seed sdp_cont replay_tid "03 01 ff 03 01 00 03 00"
# The continuation spliced into other requests: SA for record 0x00010000, SS for SerialPort.
seed sdp_cont splice_sa "02 12 04 00 02 00 0d 00 01 00 00 ff ff 35 05 0a 00 00 ff ff"
seed sdp_cont splice_ss "02 0c 02 00 03 00 07 35 03 19 11 01 00 10"
seed sdp_cont splice_ssa_small "02 11 06 00 09 00 00 35 03 19 11 01 00 07 35 03 09 00 04 03 00"
# The database changes under the pending continuation, then replays.
seed sdp_cont remove_replay "0b 00 03 00 0b 00 03 00"
# A request with a state the server never gave.
seed sdp_cont bogus_cont "00 18 06 00 05 00 13 35 03 19 11 01 ff ff 35 05 0a 00 00 ff ff 04 de ad be ef"
# Timers, then the channel is disconnected (Vol 3 Part A 4.6) and a replay follows.
seed sdp_cont disc_replay "04 00 03 00 01 08 06 07 04 00 40 00 40 00 03 00"

# ---- acl_reassembly: link A holds 104 of 604 octets, link B 6 of 12.
# The rest of link A's PDU in two continuing fragments (Vol 4 Part E 5.4.2 PB 01).
seed acl_reassembly complete_a "01 ff $(printf 'a5%.0s' $(seq 255)) 01 f5 $(printf 'a5%.0s' $(seq 245))"
# The rest of link B's Echo Request: an Echo Response follows.
seed acl_reassembly complete_b "05 06 04 00 de ad be ef"
# A new start on A in the middle (the half PDU is dropped), then a continuation for it.
seed acl_reassembly restart_a "22 05 68 65 6c 6c 6f 01 04 01 02 03 04"
# Continuation for a handle with no link; a non-flushable start announcing 255 octets.
seed acl_reassembly no_link_nonflush "09 04 01 02 03 04 30 05 ff 00 01 02 03 01 10 $(printf '00%.0s' $(seq 16))"
# Complete signalling PDUs on A and B, one with the Broadcast flag set.
seed acl_reassembly sig_both "12 08 08 09 04 00 aa bb cc dd 16 06 0a 0a 02 00 02 00 5e 08 42 20 08 0b 02 00 03 00 80 00"
