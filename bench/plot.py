#!/usr/bin/env python3
"""Plot and tabulate bench/e2e.sh output.

    python3 bench/plot.py bench/results/e2e.csv bench/results/accuracy.png > table.md

Draws frames counted / offered (%) against the achieved offered rate (Mpps),
one line per contender, one panel per frame profile (64-byte, IMIX), and
prints the Markdown table used in bench/RESULTS.md (and, with flow export
on, a second one of nfdump's sums). Needs matplotlib
(`pip install matplotlib`); the table is printed even without it.
"""
import csv
import sys


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def pct(num, den):
    return 100.0 * num / den if den > 0 else float("nan")


def table(rows):
    out = [
        "| contender | profile | target Mpps | achieved Mpps | offered frames | counted frames | frames % "
        "| bytes counted / expected | CPU s | peak RSS MiB | load1 | xdpacct queues seen/acc/drop (balanced) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        off = int(r["offered_frames"])
        cnt = int(r["counted_frames"])
        cb = int(r["counted_bytes"])
        eb = int(r["expected_bytes"])
        bytes_cell = "n/a (rates only)" if cb < 0 else f"{cb} / {eb} ({pct(cb, eb):.2f} %)"
        q = r.get("queues_seen_acc_drop", "").strip()
        qcell = f"{q} ({r['queues_balanced']})" if q else ""
        out.append(
            f"| {r['contender']} | {r['profile']} | {r['target_mpps']} | {float(r['achieved_mpps']):.3f} "
            f"| {off} | {cnt} | {pct(cnt, off):.2f} | {bytes_cell} | {r['cpu_s']} "
            f"| {int(r['peak_rss_kb']) / 1024:.1f} | {r['load1']} | {qcell} |"
        )
    return "\n".join(out)


def plot(rows, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profiles = sorted({r["profile"] for r in rows}, key=lambda p: (p != "64", p))
    fig, axes = plt.subplots(1, len(profiles), figsize=(6 * len(profiles), 4.5), squeeze=False)
    for ax, prof in zip(axes[0], profiles):
        for c in dict.fromkeys(r["contender"] for r in rows):
            pts = [
                (float(r["achieved_mpps"]), pct(int(r["counted_frames"]), int(r["offered_frames"])))
                for r in rows
                if r["contender"] == c and r["profile"] == prof and int(r["offered_frames"]) > 0
            ]
            pts.sort()
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=c)
        ax.set_title(f"{'64-byte frames' if prof == '64' else 'IMIX 7:4:1'} (veth, 2 shared cores)")
        ax.set_xlabel("offered rate achieved by the generator (Mpps)")
        ax.set_ylabel("frames counted / offered (%)")
        ax.set_ylim(0, 105)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def flows_table(rows):
    """The flows-at-nfcapd rows (flow export on): nfdump's sums per profile."""
    out = [
        "| contender | profile | offered frames / bytes | nfdump's sum of flow records |",
        "|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['contender']} | {r['profile']} | {r['offered_frames']} / {r['offered_bytes_l2']} "
            f"| {r['counted_frames']} / {r['counted_bytes']} |"
        )
    return "\n".join(out)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = load(sys.argv[1])
    # e2e.sh adds one flows-at-nfcapd row per profile when flow export is on.
    flows = [r for r in rows if r["target_mpps"] == "flows-at-nfcapd"]
    rows = [r for r in rows if r["target_mpps"] != "flows-at-nfcapd"]
    print(table(rows))
    if flows:
        print()
        print(flows_table(flows))
    if len(sys.argv) > 2:
        try:
            plot(rows, sys.argv[2])
        except ImportError as e:
            print(f"plot skipped: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
