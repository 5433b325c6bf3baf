#!/usr/bin/env python3
"""Writes the three xdpacct Grafana dashboards (overview, billing, peering).

The JSON files next to this script are its output and are what gets packaged;
edit here and re-run (python3 packaging/grafana/generate.py [OUTDIR]; a test
checks the JSON matches), or edit the JSON
in Grafana, export it "for sharing externally" and replace the file.

Every dashboard is importable through Grafana's import page: a `__inputs`
entry asks for a Prometheus data source (DS_PROMETHEUS), every reference is
`${DS_PROMETHEUS}`, no uid is hard-coded and "id" is null.
"""
import json
import os

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
HERE = os.path.dirname(os.path.abspath(__file__))


def inputs():
    return [{
        "name": "DS_PROMETHEUS",
        "label": "Prometheus",
        "description": "The Prometheus that scrapes the xdpacct appliances",
        "type": "datasource",
        "pluginId": "prometheus",
        "pluginName": "Prometheus",
    }]


def requires(panel_types):
    r = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "9.0.0"},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
    ]
    names = {"timeseries": "Time series", "stat": "Stat", "table": "Table",
             "bargauge": "Bar gauge", "heatmap": "Heatmap", "row": "Row"}
    for t in sorted(panel_types):
        if t != "row":
            r.append({"type": "panel", "id": t, "name": names[t], "version": ""})
    return r


def target(expr, legend="", ref="A", instant=False, fmt="time_series"):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref,
         "range": not instant, "instant": instant, "format": fmt}
    return t


class Layout:
    def __init__(self):
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.next_id = 1
        self.panels = []
        self.types = set()

    def _pos(self, w, h):
        if self.x + w > 24:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title):
        if self.x:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        self.panels.append({"type": "row", "title": title, "collapsed": False,
                            "id": self.next_id, "panels": [],
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}})
        self.next_id += 1
        self.y += 1

    def add(self, ptype, title, targets, w=12, h=8, unit="short", description="",
            options=None, field_config=None, transformations=None):
        fc = {"defaults": {"unit": unit}, "overrides": []}
        if field_config:
            fc["defaults"].update(field_config.get("defaults", {}))
            fc["overrides"] = field_config.get("overrides", [])
        p = {
            "type": ptype,
            "title": title,
            "description": description,
            "id": self.next_id,
            "datasource": DS,
            "gridPos": self._pos(w, h),
            "targets": targets,
            "fieldConfig": fc,
            "options": options or {},
        }
        if transformations:
            p["transformations"] = transformations
        self.next_id += 1
        self.types.add(ptype)
        self.panels.append(p)
        return p


def ts_options(legend_calcs=("mean", "max", "lastNotNull")):
    return {"legend": {"displayMode": "table", "placement": "bottom",
                       "calcs": list(legend_calcs), "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"}}


def stacked():
    return {"defaults": {"custom": {"stacking": {"mode": "normal", "group": "A"},
                                    "fillOpacity": 30}}}


def query_var(name, label, query, multi=True, include_all=True):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2, "sort": 1, "multi": multi, "includeAll": include_all,
        "allValue": ".*" if include_all else None,
        "current": {}, "options": [], "hide": 0, "regex": "",
    }


def dashboard(uid_hint, title, description, tags, layout, variables, time_from="now-6h"):
    # No "uid" key: Grafana makes one on import, so importing never collides
    # with (or silently overwrites) an existing dashboard. uid_hint is unused.
    return {
        "__inputs": inputs(),
        "__elements": {},
        "__requires": requires(layout.types),
        "id": None,
        "title": title,
        "description": description,
        "tags": tags,
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "",
        "links": [{"title": "xdpacct", "type": "dashboards", "tags": ["xdpacct"],
                   "asDropdown": True, "includeVars": False, "keepTime": True}],
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": variables},
        "panels": layout.panels,
    }


def rtt_heatmap(title, expr, description):
    """A heatmap of an RTT histogram's buckets (seconds)."""
    return ("heatmap", title, [target(expr, "{{le}}", fmt="heatmap")],
            dict(w=12, h=9, unit="s", description=description,
                 options={"calculate": False, "yAxis": {"unit": "s"},
                          "cellGap": 1, "color": {"mode": "scheme", "scheme": "Spectral"},
                          "tooltip": {"show": True, "yHistogram": True}}))


def overview():
    sel = 'instance=~"$instance", interface=~"$interface"'
    L = Layout()
    L.row("Traffic")
    L.add("timeseries", "Bits per second by interface and direction", [
        target(f'8 * sum by (interface, direction) (rate(xdpacct_interface_bytes_total{{{sel}}}[$__rate_interval]))',
               "{{interface}} {{direction}}")],
        unit="bps", options=ts_options(),
        description="Layer-2 bits/s (or l3 / l2_fcs, per accounting.bytes) per interface and direction.")
    L.add("timeseries", "Packets per second by interface and direction", [
        target(f'sum by (interface, direction) (rate(xdpacct_interface_packets_total{{{sel}}}[$__rate_interval]))',
               "{{interface}} {{direction}}")],
        unit="pps", options=ts_options())
    L.add("bargauge", "Packet size distribution (selected range)", [
        target(f'sum by (le) (increase(xdpacct_packet_size_bytes_bucket{{{sel}}}[$__range]))',
               "{{le}}", instant=True, fmt="heatmap")],
        w=12, unit="short",
        options={"displayMode": "gradient", "orientation": "horizontal",
                 "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "showUnfilled": True},
        description="Frames per size bucket (bytes, upper bound) over the time range.")
    L.add("timeseries", "Average packet size", [
        target(f'sum by (interface) (rate(xdpacct_packet_size_bytes_sum{{{sel}}}[$__rate_interval])) / '
               f'sum by (interface) (rate(xdpacct_packet_size_bytes_count{{{sel}}}[$__rate_interval]))',
               "{{interface}}")],
        unit="decbytes", options=ts_options())
    L.row("Protocols")
    L.add("timeseries", "Bits per second by protocol", [
        target(f'8 * sum by (protocol) (rate(xdpacct_protocol_bytes_total{{{sel}}}[$__rate_interval]))',
               "{{protocol}}")],
        unit="bps", options=ts_options(), field_config=stacked())
    L.add("timeseries", "Packets per second by protocol", [
        target(f'sum by (protocol) (rate(xdpacct_protocol_packets_total{{{sel}}}[$__rate_interval]))',
               "{{protocol}}")],
        unit="pps", options=ts_options(), field_config=stacked())
    L.row("Capture health")
    L.add("stat", "Scrape up", [
        target('up{job=~"xdpacct.*", instance=~"$instance"}', "{{instance}}", instant=True)],
        w=6, h=6, unit="none",
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "colorMode": "background", "graphMode": "none", "textMode": "value_and_name"},
        field_config={"defaults": {"mappings": [{"type": "value", "options": {
            "0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}],
            "thresholds": {"mode": "absolute", "steps": [
                {"color": "red", "value": None}, {"color": "green", "value": 1}]}}})
    L.add("stat", "Frames lost (selected range)", [
        target(f'sum(increase(xdpacct_queue_dropped_total{{{sel}}}[$__range]))', "lost", instant=True)],
        w=6, h=6, unit="short",
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "colorMode": "background", "graphMode": "none"},
        field_config={"defaults": {"thresholds": {"mode": "absolute", "steps": [
            {"color": "green", "value": None}, {"color": "red", "value": 1}]}}},
        description="Frames the kernel or the capture rings dropped before accounting: every one is a gap in the counts.")
    L.add("stat", "Parse errors (selected range)", [
        target('sum(increase(xdpacct_parse_errors_total{instance=~"$instance"}[$__range]))', "errors", instant=True)],
        w=6, h=6, unit="short",
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "colorMode": "value", "graphMode": "none"})
    L.add("table", "Build", [
        target('xdpacct_build_info{instance=~"$instance"}', "", instant=True, fmt="table")],
        w=6, h=6, unit="none",
        transformations=[{"id": "organize", "options": {
            "excludeByName": {"Time": True, "Value": True, "__name__": True}}}])
    L.add("timeseries", "Dropped frames per queue", [
        target(f'sum by (interface, queue, reason) (rate(xdpacct_queue_dropped_total{{{sel}}}[$__rate_interval]))',
               "{{interface}} q{{queue}} {{reason}}")],
        unit="pps", options=ts_options(),
        description="Capture loss per rx queue and reason (ring full, fill ring empty, ...).")
    L.add("timeseries", "Frames seen and accounted per queue", [
        target(f'sum by (interface, queue) (rate(xdpacct_queue_frames_seen_total{{{sel}}}[$__rate_interval]))',
               "seen {{interface}} q{{queue}}", ref="A"),
        target(f'sum by (interface, queue) (rate(xdpacct_queue_frames_accounted_total{{{sel}}}[$__rate_interval]))',
               "accounted {{interface}} q{{queue}}", ref="B")],
        unit="pps", options=ts_options(),
        description="Seen: counted by the XDP program. Accounted: counted by the worker. A queue seen but not accounted is stalled.")
    L.add("timeseries", "Parse errors by reason", [
        target('sum by (reason) (rate(xdpacct_parse_errors_total{instance=~"$instance"}[$__rate_interval]))',
               "{{reason}}")],
        unit="pps", options=ts_options())
    L.add("timeseries", "Flow export", [
        target('sum(rate(xdpacct_flow_records_exported_total{instance=~"$instance"}[$__rate_interval]))',
               "exported", ref="A"),
        target('sum by (reason) (rate(xdpacct_flow_records_dropped_total{instance=~"$instance"}[$__rate_interval]))',
               "dropped {{reason}}", ref="B")],
        unit="short", options=ts_options(),
        description="NetFlow v9 / IPFIX records per second sent to the collectors, and records dropped.")
    L.row("Flow input (exporters)")
    L.add("timeseries", "Flow records per exporter", [
        target('sum by (exporter, protocol) (rate(xdpacct_collector_records_total{instance=~"$instance"}[$__rate_interval]))',
               "{{exporter}} {{protocol}}")],
        w=8, unit="short", options=ts_options(),
        description="NetFlow / IPFIX records and sFlow flow samples per second received from each router and counted.")
    L.add("timeseries", "Sampling rate in use", [
        target('max by (exporter) (xdpacct_collector_sampling_rate{instance=~"$instance"})',
               "{{exporter}}", ref="A"),
        target('sum by (exporter) (rate(xdpacct_collector_records_default_rate_total{instance=~"$instance"}[$__rate_interval]))',
               "{{exporter}} records with no rate (/s)", ref="B")],
        w=8, unit="short", options=ts_options(),
        description="1 in N: the rate of each exporter's last record; records that carried no rate were scaled by collector.default_sampling_rate.")
    L.add("timeseries", "Sequence gaps and drops", [
        target('sum by (exporter, unit) (rate(xdpacct_collector_sequence_gaps_total{instance=~"$instance"}[$__rate_interval]))',
               "{{exporter}} lost {{unit}}", ref="A"),
        target('sum by (reason) (rate(xdpacct_collector_malformed_total{instance=~"$instance"}[$__rate_interval]))',
               "malformed {{reason}}", ref="B"),
        target('sum by (reason) (rate(xdpacct_collector_dropped_total{instance=~"$instance"}[$__rate_interval]))',
               "dropped {{reason}}", ref="C"),
        target('sum by (reason) (rate(xdpacct_collector_socket_drops_total{instance=~"$instance"}[$__rate_interval]))',
               "socket {{reason}}", ref="D")],
        w=8, unit="short", options=ts_options(),
        description="Datagrams or records lost between router and collector (sequence numbers), and what the collector could not decode or refused, per second.")
    L.row("Busiest connections ([connections] top)")
    L.add("table", "Top connections now", [
        target('topk(20, 8 * rate(xdpacct_connection_bytes_total{instance=~"$instance"}[$__rate_interval]))',
               "", ref="A", instant=True, fmt="table"),
        target('topk(20, rate(xdpacct_connection_packets_total{instance=~"$instance"}[$__rate_interval]))',
               "", ref="B", instant=True, fmt="table")],
        w=24, h=10, unit="bps",
        description="The busiest connections of the flow caches (one direction of a flow each; the appliance shows at most connections.top of them, and a connection leaves after connections.idle_timeout without traffic).",
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True},
                "indexByName": {"instance": 0, "src": 1, "src_port": 2, "dst": 3, "dst_port": 4,
                                "protocol": 5, "direction": 6, "Value #A": 7, "Value #B": 8},
                "renameByName": {"Value #A": "bits/s", "Value #B": "packets/s"}}}],
        field_config={"overrides": [{"matcher": {"id": "byName", "options": "packets/s"},
                                     "properties": [{"id": "unit", "value": "pps"}]}]},
        options={"sortBy": [{"displayName": "bits/s", "desc": True}]})
    variables = [
        query_var("instance", "Appliance", "label_values(xdpacct_build_info, instance)"),
        query_var("interface", "Interface",
                  'label_values(xdpacct_interface_bytes_total{instance=~"$instance"}, interface)'),
    ]
    return dashboard("xdpacct-overview", "xdpacct / Overview",
                     "Traffic per interface and direction, packet sizes, protocols and capture health.",
                     ["xdpacct"], L, variables)


def billing():
    csel = 'customer=~"$customer"'
    hsel = 'customer=~"$customer", ip=~"$host"'
    L = Layout()
    L.row("Customers")
    L.add("timeseries", "Customer rate and running monthly 95th percentile", [
        target(f'customer:xdpacct_host_bits:rate5m{{{csel}}}', "{{customer}} {{direction}}", ref="A"),
        target(f'customer:xdpacct_host_bits:rate5m_p95_31d{{{csel}}}', "{{customer}} {{direction}} p95 (31d)", ref="B")],
        w=24, h=10, unit="bps", options=ts_options(),
        field_config={"overrides": [{
            "matcher": {"id": "byFrameRefID", "options": "B"},
            "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                           {"id": "custom.fillOpacity", "value": 0}]}]},
        description="5-minute bits/s per customer and direction (recorded), and the 95th percentile of "
                    "those 5-minute samples over the last 31 days (dashed).")
    L.add("table", "Billing now: rate and 95th percentile per customer", [
        target(f'customer:xdpacct_host_bits_billable:rate5m{{{csel}}}', "", ref="A", instant=True, fmt="table"),
        target(f'customer:xdpacct_host_bits_billable:rate5m_p95_31d{{{csel}}}', "", ref="B", instant=True, fmt="table"),
        target(f'sum by (customer) (increase(xdpacct_customer_bytes_total{{{csel}}}[$__range]))',
               "", ref="C", instant=True, fmt="table")],
        w=12, h=9, unit="bps",
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True},
                "renameByName": {"Value #A": "rate (max of in, out)",
                                 "Value #B": "95th percentile, 31 days",
                                 "Value #C": "bytes in range"}}}],
        field_config={"overrides": [{"matcher": {"id": "byName", "options": "bytes in range"},
                                     "properties": [{"id": "unit", "value": "decbytes"}]}]},
        description="Billable rate is the larger of in and out (burstable billing).")
    L.add("timeseries", "Ledger: running billing period's 95th percentile (nearest rank)", [
        target(f'xdpacct_billing_p95_bits{{{csel}}}', "{{customer}} {{direction}}", ref="A"),
        target(f'customer:xdpacct_host_bits_billable:rate5m{{{csel}}}', "{{customer}} rate", ref="B")],
        w=12, h=9, unit="bps", options=ts_options(legend_calcs=("lastNotNull",)),
        description="From the appliance's billing ledger (the invoice's numbers: exact samples, "
                    "nearest rank, the configured billing period and method; billable = by "
                    "billing.method), next to the live billable rate. The PromQL 31-day p95 above "
                    "interpolates over a rolling window: see the README's Billing section.")
    L.add("table", "Ledger: samples of the running billing period", [
        target('xdpacct_billing_samples', "", ref="A", instant=True, fmt="table"),
        target('xdpacct_billing_write_failures_total', "", ref="B", instant=True, fmt="table")],
        w=12, h=9, unit="short",
        transformations=[{"id": "merge", "options": {}},
                         {"id": "organize", "options": {"excludeByName": {"Time": True},
                          "renameByName": {"Value #A": "intervals", "Value #B": "write failures"}}}],
        description="Expected (ended), present, complete and missing intervals; a sample with "
                    "capture drops, interface down time or a restart in it is not complete.")
    L.add("timeseries", "Customer packets per second", [
        target(f'customer:xdpacct_host_packets:rate5m{{{csel}}}', "{{customer}} {{direction}}")],
        w=12, h=9, unit="pps", options=ts_options())
    L.row("Hosts")
    L.add("timeseries", "Top 20 hosts by rate", [
        target(f'topk(20, sum by (ip, customer, direction) (rate(xdpacct_host_bytes_total{{{hsel}}}[$__rate_interval])) * 8)',
               "{{ip}} {{direction}} ({{customer}})")],
        w=24, h=10, unit="bps", options=ts_options())
    L.add("table", "Hosts: 5-minute rate and 95th percentile", [
        target(f'topk(100, host:xdpacct_host_bits:rate5m{{{hsel}}})', "", ref="A", instant=True, fmt="table"),
        target(f'host:xdpacct_host_bits:rate5m_p95_31d{{{hsel}}}', "", ref="B", instant=True, fmt="table")],
        w=24, h=12, unit="bps",
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True},
                "renameByName": {"Value #A": "rate (5m)", "Value #B": "95th percentile, 31 days"}}}],
        options={"sortBy": [{"displayName": "rate (5m)", "desc": True}]})
    L.add("timeseries", "Host packets per second", [
        target(f'topk(20, host:xdpacct_host_packets:rate5m{{{hsel}}})', "{{ip}} {{direction}}")],
        w=24, h=8, unit="pps", options=ts_options())
    L.row("TCP round-trip times (handshakes seen on the tap; [tcp_rtt])")
    for leg, what in (("internal", "tap to the customer's hosts"),
                      ("external", "tap to the remote hosts")):
        t, title, targets, kw = rtt_heatmap(
            f"Handshake RTT, {leg} leg ({what})",
            f'sum by (le) (increase(xdpacct_tcp_handshake_rtt_seconds_bucket{{customer=~"$customer", leg="{leg}"}}[$__rate_interval]))',
            f"Handshakes per RTT bucket, {leg} leg: SYN to SYN/ACK or SYN/ACK to ACK as seen on the tap.")
        L.add(t, title, targets, **kw)
    L.add("timeseries", "Median handshake RTT per customer and leg", [
        target('histogram_quantile(0.5, sum by (customer, leg, le) '
               '(rate(xdpacct_tcp_handshake_rtt_seconds_bucket{customer=~"$customer"}[$__rate_interval])))',
               "{{customer}} {{leg}}")],
        w=24, h=8, unit="s", options=ts_options(),
        description="Is it our network (internal leg) or theirs (external leg)?")
    variables = [
        query_var("customer", "Customer", "label_values(xdpacct_customer_bytes_total, customer)"),
        query_var("host", "Host", 'label_values(xdpacct_host_bytes_total{customer=~"$customer"}, ip)'),
    ]
    return dashboard("xdpacct-billing", "xdpacct / Customers and billing",
                     "Per-customer and per-host rates with the running monthly 95th percentile.",
                     ["xdpacct", "billing"], L, variables, time_from="now-7d")


def peering():
    sel = 'direction=~"$direction"'
    L = Layout()
    L.row("Peer ASes")
    L.add("timeseries", "Top 10 peer ASes by rate", [
        target(f'topk(10, 8 * sum by (peer_as, peer_as_name) (rate(xdpacct_as_bytes_total{{{sel}}}[$__rate_interval])))',
               "AS{{peer_as}} {{peer_as_name}}")],
        w=24, h=10, unit="bps", options=ts_options(), field_config=stacked())
    L.add("bargauge", "Top 20 peer ASes by volume (selected range)", [
        target(f'topk(20, sum by (peer_as, peer_as_name) (increase(xdpacct_as_bytes_total{{{sel}}}[$__range])))',
               "AS{{peer_as}} {{peer_as_name}}", instant=True)],
        w=12, h=12, unit="decbytes",
        options={"displayMode": "gradient", "orientation": "horizontal",
                 "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "showUnfilled": True})
    L.add("table", "Peer ASes now (5-minute rate, in and out)", [
        target('topk(50, peer_as:xdpacct_as_bits:rate5m{direction="in"})', "", ref="A", instant=True, fmt="table"),
        target('topk(50, peer_as:xdpacct_as_bits:rate5m{direction="out"})', "", ref="B", instant=True, fmt="table")],
        w=12, h=12, unit="bps",
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "direction": True},
                "renameByName": {"Value #A": "in", "Value #B": "out"}}}])
    L.add("timeseries", "Top 10 peer ASes by packets", [
        target(f'topk(10, sum by (peer_as, peer_as_name) (rate(xdpacct_as_packets_total{{{sel}}}[$__rate_interval])))',
               "AS{{peer_as}} {{peer_as_name}}")],
        w=24, h=9, unit="pps", options=ts_options())
    L.row("TCP round-trip times per peer AS (external leg; [tcp_rtt])")
    t, title, targets, kw = rtt_heatmap(
        "Handshake RTT to the remote hosts, all peer ASes",
        'sum by (le) (increase(xdpacct_as_tcp_rtt_seconds_bucket[$__rate_interval]))',
        "Handshakes per RTT bucket, tap to the remote host (SYN to SYN/ACK for outbound connections, SYN/ACK to ACK for inbound ones).")
    L.add(t, title, targets, **kw)
    t, title, targets, kw = rtt_heatmap(
        "Handshake RTT to the remote hosts, selected peer AS",
        'sum by (le) (increase(xdpacct_as_tcp_rtt_seconds_bucket{peer_as=~"$peer_as"}[$__rate_interval]))',
        "The same for the peer ASes chosen above (other: ASes without their own series).")
    L.add(t, title, targets, **kw)
    L.add("table", "Median and 95th percentile handshake RTT per peer AS (selected range)", [
        target('histogram_quantile(0.5, sum by (peer_as, peer_as_name, le) (increase(xdpacct_as_tcp_rtt_seconds_bucket[$__range])))',
               "", ref="A", instant=True, fmt="table"),
        target('histogram_quantile(0.95, sum by (peer_as, peer_as_name, le) (increase(xdpacct_as_tcp_rtt_seconds_bucket[$__range])))',
               "", ref="B", instant=True, fmt="table"),
        target('sum by (peer_as, peer_as_name) (increase(xdpacct_as_tcp_rtt_seconds_count[$__range]))',
               "", ref="C", instant=True, fmt="table")],
        w=24, h=10, unit="s",
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True},
                "renameByName": {"Value #A": "median", "Value #B": "p95", "Value #C": "handshakes"}}}],
        field_config={"overrides": [{"matcher": {"id": "byName", "options": "handshakes"},
                                     "properties": [{"id": "unit", "value": "short"}]}]},
        options={"sortBy": [{"displayName": "handshakes", "desc": True}]})
    variables = [
        query_var("direction", "Direction", "label_values(xdpacct_as_bytes_total, direction)"),
        query_var("peer_as", "Peer AS", "label_values(xdpacct_as_tcp_rtt_seconds_count, peer_as)"),
    ]
    return dashboard("xdpacct-peering", "xdpacct / Peering (AS)",
                     "Traffic per peer AS: who to peer with, and how much each peer carries.",
                     ["xdpacct", "peering"], L, variables, time_from="now-24h")


def main():
    import sys
    outdir = sys.argv[1] if len(sys.argv) > 1 else HERE
    os.makedirs(outdir, exist_ok=True)
    for name, d in [("xdpacct-overview", overview()), ("xdpacct-billing", billing()),
                    ("xdpacct-peering", peering())]:
        path = os.path.join(outdir, name + ".json")
        with open(path, "w") as f:
            json.dump(d, f, indent=2, sort_keys=False)
            f.write("\n")
        print(path)


if __name__ == "__main__":
    main()
