// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* xdpacct XDP program: count every frame per (CPU, rx queue), then redirect
 * it to the AF_XDP socket registered for its rx queue. A queue without a
 * socket passes the frame to the stack and counts it as redirect_failed, so
 * no loss is silent. Declared multi-buffer ("xdp.frags") so interfaces with
 * a jumbo MTU accept it in native mode.
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
	return action;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
