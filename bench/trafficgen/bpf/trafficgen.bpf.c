// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Traffic generator for the benches (bench/trafficgen): run from user space
 * with BPF_PROG_RUN + BPF_F_TEST_XDP_LIVE_FRAMES, so every run of
 * `trafficgen_tx` transmits one frame out of the interface named by the
 * ctx_in ingress_ifindex (XDP_TX becomes a redirect to that device).
 *
 * Per frame it rewrites the IPv4 source/destination low bits from a per-CPU
 * sequence number (traffic spreads over hosts) and, in IMIX mode, resizes the
 * frame with bpf_xdp_adjust_tail to 60/590/1514 bytes in a 7:4:1 pattern,
 * fixing the IPv4 total length, UDP length and header checksum. The live-frame
 * page pool keeps the bytes a previous run wrote, so every field written here
 * is written on every run.
 *
 * `xdp_pass` is a pass-through program: on veth, XDP frames only arrive when
 * the receiving end has a native XDP program, so contenders that read from the
 * stack (AF_PACKET, pcap) get this one attached in front of them.
 *
 * Self-contained like xdpacct.bpf.c (no libbpf-dev headers).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_xdp_adjust_tail)(struct xdp_md *ctx, int delta) = (void *)BPF_FUNC_xdp_adjust_tail;
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)BPF_FUNC_get_smp_processor_id;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;

/* Set by user space before the first run (one entry). Addresses are in
 * network byte order; a zero mask leaves that address alone. */
struct gen_config {
	__u32 src_mask;
	__u32 dst_mask;
	__u32 imix;     /* 1: resize frames in the 7:4:1 IMIX pattern */
	__u32 rewrite;  /* 1: rewrite IPv4 addresses (and lengths in IMIX mode) */
	__u64 ns_per_frame; /* pacing per CPU; 0: as fast as possible */
	__u64 catchup_ns;   /* how far behind schedule a CPU may burst to catch up */
};

/* Per CPU: frames the program handed to XDP_TX and their bytes; `quota`
 * frames still to send (user space sets it, the program counts it down and
 * drops every later run, so a call's `repeat` may overshoot safely); pacing
 * state. A run that is ahead of schedule drops its frame (live mode: nothing
 * leaves) and counts it in `idle`. */
struct gen_stats {
	__u64 frames;
	__u64 bytes;
	__u64 quota;
	__u64 next_ns;
	__u64 idle;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_config);
} gen_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_stats);
} gen_stats SEC(".maps");

#define IMIX_SMALL 60
#define IMIX_MEDIUM 590
#define IMIX_LARGE 1514

static __always_inline __u16 ip_checksum(const __u16 *w)
{
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int trafficgen_tx(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct gen_config *cfg = bpf_map_lookup_elem(&gen_cfg, &zero);
	struct gen_stats *st = bpf_map_lookup_elem(&gen_stats, &zero);
	if (!cfg || !st)
		return XDP_ABORTED;

	if (st->quota == 0)
		return XDP_DROP;
	if (cfg->ns_per_frame) {
		__u64 now = bpf_ktime_get_ns();
		if (now < st->next_ns) {
			st->idle += 1;
			return XDP_DROP;
		}
		__u64 next = st->next_ns;
		if (next + cfg->catchup_ns < now)
			next = now - cfg->catchup_ns;
		st->next_ns = next + cfg->ns_per_frame;
	}
	__u64 seq = st->frames;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (cfg->imix) {
		__u32 slot = (__u32)seq % 12;
		int want = slot < 7 ? IMIX_SMALL : slot < 11 ? IMIX_MEDIUM : IMIX_LARGE;
		int have = (int)(data_end - data);
		if (want != have && bpf_xdp_adjust_tail(ctx, want - have))
			return XDP_ABORTED;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
	}

	if (cfg->rewrite) {
		struct ethhdr *eth = data;
		struct iphdr *ip = data + sizeof(*eth);
		if ((void *)(ip + 1) > data_end)
			goto out;
		if (eth->h_proto != __constant_htons(ETH_P_IP) || ip->ihl != 5)
			goto out;
		/* Spread over hosts: low bits from the sequence, CPU mixed in so two
		 * generator threads do not send identical address pairs. */
		__u32 v = (__u32)seq * 2654435761u + bpf_get_smp_processor_id() * 40503u;
		__u32 vs = (v >> 16) | (v << 16);
		ip->saddr = (ip->saddr & ~cfg->src_mask) | (__builtin_bswap32(vs) & cfg->src_mask);
		ip->daddr = (ip->daddr & ~cfg->dst_mask) | (__builtin_bswap32(v) & cfg->dst_mask);
		__u16 l3len = (__u16)(data_end - data - sizeof(*eth));
		if (cfg->imix)
			ip->tot_len = __builtin_bswap16(l3len);
		if (ip->protocol == IPPROTO_UDP) {
			/* Addresses changed: drop the (optional) UDP checksum. TCP
			 * checksums from a pcap template are left stale. */
			struct udphdr *udp = (void *)(ip + 1);
			if ((void *)(udp + 1) <= data_end) {
				if (cfg->imix)
					udp->len = __builtin_bswap16(l3len - sizeof(*ip));
				udp->check = 0;
			}
		}
		ip->check = 0;
		ip->check = ip_checksum((const __u16 *)ip);
	}
out:
	/* Per-CPU slot: the test run holds the CPU for the batch. */
	st->frames = seq + 1;
	st->quota -= 1;
	st->bytes += (__u64)(data_end - data);
	return XDP_TX;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* Receiver stand-in for measuring the generator alone: counts as received
 * on the veth (rx_packets), then drops. */
SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
