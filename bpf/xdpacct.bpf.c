// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* xdpacct XDP program: count every frame per (CPU, rx queue), then redirect
 * it to the AF_XDP socket registered for its rx queue. A queue without a
 * socket passes the frame to the stack and counts it as redirect_failed, so
 * no loss is silent. Declared multi-buffer ("xdp.frags") so interfaces with
 * a jumbo MTU accept it in native mode.
 *
 * With `stamp_magic` set, TCP handshake frames going to a socket get their
 * time put in front of them (struct frame_stamp), for the handshake RTT.
 *
 * Self-contained: declares the few libbpf helper macros it needs instead of
 * including <bpf/bpf_helpers.h> (libbpf-dev is not a build dependency).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include "xdpacct.h"

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;
static int (*bpf_xdp_get_buff_len)(struct xdp_md *ctx) = (void *)BPF_FUNC_xdp_get_buff_len;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)BPF_FUNC_xdp_adjust_head;

/* Set by user space before loading: stamp TCP handshake frames ([tcp_rtt])
 * with this magic (0: do not stamp). */
volatile const __u64 stamp_magic = 0;

/* Network byte order on this little-endian target. */
#define BE16(x) ((__u16)__builtin_bswap16(x))

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XDPACCT_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPACCT_MAX_QUEUES);
	__type(key, __u32);
	__type(value, struct queue_counters);
} counters SEC(".maps");

/* A TCP frame with SYN set, or a pure ACK (Ethernet, at most one VLAN tag,
 * IPv4 or IPv6 without extension headers): what the handshake RTT probe
 * times. Anything else is not stamped (the worker reads its clock). */
static __attribute__((always_inline)) int handshake_frame(struct xdp_md *ctx)
{
	__u8 *p = (void *)(long)ctx->data;
	__u8 *end = (void *)(long)ctx->data_end;
	if (p + 14 > end)
		return 0;
	__u16 proto = *(__u16 *)(p + 12);
	p += 14;
	if (proto == BE16(0x8100) || proto == BE16(0x88a8)) {
		if (p + 4 > end)
			return 0;
		proto = *(__u16 *)(p + 2);
		p += 4;
	}
	if (proto == BE16(0x0800)) {
		if (p + 20 > end)
			return 0;
		/* TCP, and not a later fragment. */
		if (p[9] != 6 || (*(__u16 *)(p + 6) & BE16(0x1fff)))
			return 0;
		__u32 ihl = (p[0] & 0xf) * 4;
		if (ihl < 20)
			return 0;
		p += ihl;
	} else if (proto == BE16(0x86dd)) {
		if (p + 40 > end || p[6] != 6)
			return 0;
		p += 40;
	} else {
		return 0;
	}
	if (p + 14 > end)
		return 0;
	__u8 flags = p[13] & 0x17; /* SYN, ACK, RST, FIN */
	return (flags & 0x02) || flags == 0x10;
}

/* The frame time, in a struct frame_stamp put in front of the frame. */
static __attribute__((always_inline)) void stamp(struct xdp_md *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct frame_stamp)))
		return;
	struct frame_stamp *m = (void *)(long)ctx->data;
	if ((void *)(m + 1) > (void *)(long)ctx->data_end)
		return;
	m->magic = stamp_magic;
	m->ktime_ns = now;
}

SEC("xdp.frags")
int xdpacct_rx(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;
	__u32 slot = queue < XDPACCT_MAX_QUEUES ? queue : XDPACCT_MAX_QUEUES - 1;
	struct queue_counters *c = bpf_map_lookup_elem(&counters, &slot);
	long action = bpf_redirect_map(&xsks, queue, XDP_PASS);

	if (c) {
		/* Per-CPU slot: no other writer, plain increments suffice. */
		c->frames += 1;
		c->bytes += bpf_xdp_get_buff_len(ctx);
		if (action != XDP_REDIRECT)
			c->redirect_failed += 1;
	}
	/* Only a frame going to a socket: one passed to the stack stays as is. */
	if (action == XDP_REDIRECT && stamp_magic && handshake_frame(ctx))
		stamp(ctx);
	return action;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
