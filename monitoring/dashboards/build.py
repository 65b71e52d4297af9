#!/usr/bin/env python3
"""Writes retrofarm's Grafana dashboards (the JSON files next to this script).

The JSON files are what Grafana provisions and what is committed; this script is how they are
made, so that the two boards share one style (datasource variable, units, thresholds) and panel
ids and positions never drift. After editing, run it and commit both:

    python3 monitoring/dashboards/build.py           # rewrite the JSON files
    python3 monitoring/dashboards/build.py --check   # fail if a JSON file is out of date

Metric names are the ones the worker and coordinator export (docs/decisions/operations.md).
Every target carries `instance` (the host) and `zone` from the Prometheus scrape configuration.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 42  # Grafana 13.2 (see monitoring/schema/)
DS = {"type": "prometheus", "uid": "${datasource}"}
ENCODE_BUDGET_S = 0.008  # same budget as the RetrofarmEncodeSlow alert
LATE_RATIO_LIMIT = 0.01  # same limit as the RetrofarmLateFrames alert
RTT_LIMIT_S = 0.1  # RetrofarmViewerRttHigh: a host's median viewer round trip
LOSS_LIMIT = 0.10  # RetrofarmViewerLossHigh: a host's mean viewer packet loss
GPU_TEMP_LIMIT_C = 85  # RetrofarmGpuHot
# Interfaces that are not the host's own link: loopback, containers' and VMs' virtual ones.
VIRTUAL_NICS = "lo|veth.*|docker.*|br-.*|virbr.*|cni.*|flannel.*|ifb.*"


# ---------------------------------------------------------------------------------------------
# Building blocks


def target(expr, legend="__auto", ref="A", instant=False):
    t = {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
        "refId": ref,
    }
    return t


def targets(*pairs, instant=False):
    """(expr, legend) pairs -> targets with refIds A, B, ..."""
    return [target(e, l, chr(ord("A") + i), instant) for i, (e, l) in enumerate(pairs)]


def thresholds(*steps):
    """steps: (value, color) with the first value None (= -Infinity)."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


BASE_THRESHOLDS = thresholds((None, "green"))


def timeseries(title, description, tgts, unit, *, min0=True, max_=None, limit=None, stack=False):
    defaults = {
        "color": {"mode": "palette-classic"},
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10 if not stack else 40,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line+area" if limit is not None else "off"},
        },
        "unit": unit,
        "thresholds": thresholds((None, "green"), (limit, "red")) if limit is not None else BASE_THRESHOLDS,
    }
    if min0:
        defaults["min"] = 0
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True, "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title, description, expr, unit, *, steps=None, decimals=None, legend="__auto", text_mode="auto"):
    defaults = {
        "color": {"mode": "thresholds"},
        "unit": unit,
        "thresholds": steps or BASE_THRESHOLDS,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(expr, legend, instant=True)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "textMode": text_mode,
            "orientation": "auto",
        },
    }


def table(title, description, expr, legend="__auto"):
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [dict(target(expr, legend, instant=True), format="table")],
        "fieldConfig": {"defaults": {"unit": "short", "thresholds": BASE_THRESHOLDS}, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm"},
        "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def layout(rows):
    """rows: list of (height, [panel, ...]) or a row panel; widths split 24 columns evenly."""
    panels, y, next_id = [], 0, 1
    for item in rows:
        if isinstance(item, dict):  # a row header
            item = dict(item, id=next_id, gridPos={"h": 1, "w": 24, "x": 0, "y": y})
            panels.append(item)
            next_id += 1
            y += 1
            continue
        height, items = item
        width = 24 // len(items)
        for i, p in enumerate(items):
            panels.append(dict(p, id=next_id, gridPos={"h": height, "w": width, "x": i * width, "y": y}))
            next_id += 1
        y += height
    return panels


def datasource_var():
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "regex": "",
        "options": [],
        "skipUrlSync": False,
    }


def query_var(name, label, query, *, multi=True):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": query,
        "refresh": 2,  # on time range change: hosts come and go
        "sort": 7,  # natural ascending: gpu-eu-2 before gpu-eu-10
        "hide": 0,
        "multi": multi,
        "includeAll": True,
        # ".*" (not Grafana's default alternation of every value) so "All" also matches series
        # that lack the label, e.g. a worker scraped without a zone.
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "regex": "",
        "options": [],
        "skipUrlSync": False,
    }


def dashboard(uid, title, description, variables, panels, links):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["retrofarm"],
        "editable": False,  # provisioned from files: change build.py instead
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": links,
        "liveNow": False,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-3h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "weekStart": "",
        "version": 1,
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": variables},
        "panels": panels,
    }


def link_to(title, tooltip):
    return {
        "title": title,
        "tooltip": tooltip,
        "type": "dashboards",
        "tags": ["retrofarm"],
        "asDropdown": False,
        "icon": "dashboard",
        "includeVars": False,
        "keepTime": True,
        "targetBlank": False,
    }


# ---------------------------------------------------------------------------------------------
# Farm overview

Z = '{zone=~"$zone"}'
ZW = '{job="retrofarm-worker", zone=~"$zone"}'


def overview():
    late_ratio = (
        f"sum by (instance) (rate(retrofarm_frames_late_total{Z}[$__rate_interval]))\n/\n"
        f"sum by (instance) (rate(retrofarm_frames_emulated_total{Z}[$__rate_interval]))"
    )
    panels = layout(
        [
            row("Farm"),
            (
                4,
                [
                    stat("Rooms", "Game rooms running on the selected zones' workers.", f"sum(retrofarm_rooms{Z})", "short"),
                    stat(
                        "Viewers",
                        "WebRTC viewers (players and spectators) connected to the selected workers.",
                        f"sum(retrofarm_viewers{Z})",
                        "short",
                    ),
                    stat(
                        "Browsers on the coordinator",
                        "Browsers with an open signaling WebSocket (lobby included).",
                        "sum(retrofarm_coordinator_browsers)",
                        "short",
                    ),
                    stat(
                        "Capacity free",
                        "Free room slots over all room slots. The RetrofarmCapacityLow alert fires under 10%.",
                        f"sum(retrofarm_capacity_free_rooms{Z}) / sum(retrofarm_capacity_rooms{Z})",
                        "percentunit",
                        steps=thresholds((None, "red"), (0.1, "orange"), (0.25, "green")),
                        decimals=1,
                    ),
                    stat(
                        "Free room slots",
                        "Rooms the selected workers can still start.",
                        f"sum(retrofarm_capacity_free_rooms{Z})",
                        "short",
                        steps=thresholds((None, "red"), (1, "green")),
                    ),
                    stat(
                        "Workers up",
                        "Worker hosts Prometheus scrapes successfully.",
                        f"sum(up{ZW})",
                        "short",
                        steps=thresholds((None, "red"), (1, "green")),
                    ),
                ],
            ),
            (
                8,
                [
                    timeseries(
                        "Rooms and viewers by zone",
                        "Running rooms and connected viewers, per zone.",
                        targets(
                            (f"sum by (zone) (retrofarm_rooms{Z})", "rooms {{zone}}"),
                            (f"sum by (zone) (retrofarm_viewers{Z})", "viewers {{zone}}"),
                        ),
                        "short",
                    ),
                    timeseries(
                        "Room capacity by zone",
                        "Free and total room slots per zone. Workers register their capacity with the coordinator.",
                        targets(
                            (f"sum by (zone) (retrofarm_capacity_free_rooms{Z})", "free {{zone}}"),
                            (f"sum by (zone) (retrofarm_capacity_rooms{Z})", "total {{zone}}"),
                            ("sum by (zone) (retrofarm_coordinator_workers)", "workers registered {{zone}}"),
                        ),
                        "short",
                    ),
                ],
            ),
            row("Video"),
            (
                8,
                [
                    timeseries(
                        "Frames encoded per second, per GPU",
                        'Encoded frames per second on each host and GPU ("cpu" = software encoders).',
                        targets(
                            (
                                f"sum by (instance, gpu) (rate(retrofarm_frames_encoded_total{Z}[$__rate_interval]))",
                                "{{instance}} gpu {{gpu}}",
                            )
                        ),
                        "fps",
                    ),
                    timeseries(
                        "Late frames",
                        "Share of emulated frames that missed their deadline, per host. Alert: above 1% for 5 minutes.",
                        targets((late_ratio, "{{instance}}")),
                        "percentunit",
                        limit=LATE_RATIO_LIMIT,
                    ),
                ],
            ),
            (
                8,
                [
                    timeseries(
                        "Encode time p99 by encoder",
                        "99th percentile of the time one frame spends in the encoder. Alert: above 8 ms for 10 minutes.",
                        targets(
                            (
                                "histogram_quantile(0.99, sum by (le, encoder) "
                                f"(rate(retrofarm_encode_duration_seconds_bucket{Z}[$__rate_interval])))",
                                "p99 {{encoder}}",
                            )
                        ),
                        "s",
                        limit=ENCODE_BUDGET_S,
                    ),
                    timeseries(
                        "Bitrate sent",
                        "Media sent to browsers, in bits per second, and the mean video bitrate per viewer.",
                        targets(
                            (f"sum by (kind) (rate(retrofarm_sent_bytes_total{Z}[$__rate_interval])) * 8", "{{kind}}"),
                            (
                                f'sum(rate(retrofarm_sent_bytes_total{{kind="video", zone=~"$zone"}}[$__rate_interval])) * 8\n/\nsum(retrofarm_viewers{Z})',
                                "video per viewer",
                            ),
                        ),
                        "bps",
                    ),
                    timeseries(
                        "Frames dropped by reason",
                        "Frames dropped instead of blocking the emulator: ring_overrun (conversion fell behind), encoder_busy, send_queue (network); rate_step: left out on purpose by congestion control's frame-rate step (slow viewer links).",
                        targets(
                            (f"sum by (reason) (rate(retrofarm_frames_dropped_total{Z}[$__rate_interval]))", "{{reason}}"),
                        ),
                        "fps",
                        stack=True,
                    ),
                ],
            ),
            row("Network and players"),
            (
                8,
                [
                    timeseries(
                        "Round-trip time by zone",
                        "WebRTC round-trip time between workers and browsers (RTCP), median and 95th percentile per zone. "
                        "Alert: a host's median above 100 ms for 10 minutes (hosts with 3 viewers or more).",
                        targets(
                            (
                                f"histogram_quantile(0.5, sum by (le, zone) (rate(retrofarm_peer_rtt_seconds_bucket{Z}[$__rate_interval])))",
                                "p50 {{zone}}",
                            ),
                            (
                                f"histogram_quantile(0.95, sum by (le, zone) (rate(retrofarm_peer_rtt_seconds_bucket{Z}[$__rate_interval])))",
                                "p95 {{zone}}",
                            ),
                        ),
                        "s",
                        limit=RTT_LIMIT_S,
                    ),
                    timeseries(
                        "Packet loss by zone",
                        "Packets the browsers reported lost (RTCP) over packets sent to them, per zone. "
                        "Alert: a host above 10% for 10 minutes (hosts with 3 viewers or more).",
                        targets(
                            (
                                f"sum by (zone) (rate(retrofarm_peer_packets_lost_total{Z}[$__rate_interval]))\n/\n"
                                f"sum by (zone) (rate(retrofarm_peer_packets_sent_total{Z}[$__rate_interval]))",
                                "{{zone}}",
                            )
                        ),
                        "percentunit",
                        limit=LOSS_LIMIT,
                    ),
                    timeseries(
                        "Placements by outcome",
                        "Coordinator decisions on join/start requests: placed, no_capacity, unknown_room, unknown_game. "
                        "Alert: no_capacity refusals going on for 5 minutes.",
                        targets(
                            (
                                "sum by (outcome) (rate(retrofarm_coordinator_placements_total[$__rate_interval]))",
                                "{{outcome}}",
                            )
                        ),
                        "reqps",
                        stack=True,
                    ),
                ],
            ),
            row("Health"),
            (
                7,
                [
                    timeseries(
                        "Emulator crashes",
                        "Emulator child processes that died, per host (each takes down one room only).",
                        targets(
                            (
                                f"sum by (instance) (increase(retrofarm_emulator_crashes_total{Z}[$__rate_interval]))",
                                "{{instance}}",
                            )
                        ),
                        "short",
                    ),
                    timeseries(
                        "Signaling relay time",
                        "Time the coordinator takes to relay one signaling message between browser and worker (p50, p99), and malformed messages received.",
                        targets(
                            (
                                "histogram_quantile(0.5, sum by (le) (rate(retrofarm_coordinator_signaling_relay_seconds_bucket[$__rate_interval])))",
                                "p50",
                            ),
                            (
                                "histogram_quantile(0.99, sum by (le) (rate(retrofarm_coordinator_signaling_relay_seconds_bucket[$__rate_interval])))",
                                "p99",
                            ),
                        ),
                        "s",
                    ),
                    timeseries(
                        "Malformed messages",
                        "Messages the coordinator rejected as malformed, per second (browsers and workers).",
                        targets(
                            ("sum(rate(retrofarm_coordinator_malformed_messages_total[$__rate_interval]))", "malformed"),
                        ),
                        "short",
                    ),
                    table(
                        "Versions",
                        "Running processes per version (retrofarm_build_info).",
                        "count by (job, version) (retrofarm_build_info)",
                    ),
                ],
            ),
        ]
    )
    variables = [datasource_var(), query_var("zone", "Zone", "label_values(retrofarm_rooms, zone)")]
    return dashboard(
        "retrofarm-overview",
        "retrofarm / Farm overview",
        "Rooms, players, capacity, video pipeline health and network quality across the whole farm.",
        variables,
        panels,
        [link_to("Worker and GPU detail", "Per-host and per-GPU drill-down")],
    )


# ---------------------------------------------------------------------------------------------
# Worker / GPU detail

I = '{instance=~"$instance"}'
IG = '{instance=~"$instance", gpu=~"$gpu"}'
# node_exporter (job "node"), same `instance` as the host's worker.
N = '{job="node", instance=~"$instance"}'


def worker():
    stage = lambda q: (  # noqa: E731
        f"histogram_quantile({q}, sum by (le, stage) (rate(retrofarm_stage_latency_seconds_bucket{I}[$__rate_interval])))"
    )
    encode = lambda q: (  # noqa: E731
        f"histogram_quantile({q}, sum by (le, encoder) (rate(retrofarm_encode_duration_seconds_bucket{I}[$__rate_interval])))"
    )
    idle = f'{{job="node", instance=~"$instance", mode="idle"}}'
    nics = f'{{job="node", instance=~"$instance", device!~"{VIRTUAL_NICS}"}}'
    panels = layout(
        [
            row("Summary"),
            (
                4,
                [
                    stat("Rooms", "Rooms running on the selected hosts.", f"sum(retrofarm_rooms{I})", "short"),
                    stat("Viewers", "Viewers connected to the selected hosts.", f"sum(retrofarm_viewers{I})", "short"),
                    stat(
                        "Free room slots",
                        "Rooms the selected hosts can still start, out of their capacity.",
                        f"sum(retrofarm_capacity_free_rooms{I})",
                        "short",
                        steps=thresholds((None, "red"), (1, "green")),
                    ),
                    stat(
                        "CPU per room",
                        "Measured CPU cost of one room (emulation, conversion, encoding, sending), in cores.",
                        f"avg(retrofarm_room_cpu_cores{I})",
                        "percentunit",
                        decimals=1,
                    ),
                    stat(
                        "Late frames",
                        "Share of frames that missed their deadline over the last 5 minutes.",
                        f"sum(rate(retrofarm_frames_late_total{IG}[5m])) / sum(rate(retrofarm_frames_emulated_total{IG}[5m]))",
                        "percentunit",
                        steps=thresholds((None, "green"), (LATE_RATIO_LIMIT, "red")),
                        decimals=2,
                    ),
                    stat(
                        "Version",
                        "retrofarm-worker version on the selected hosts.",
                        f'count by (version) (retrofarm_build_info{{job="retrofarm-worker", instance=~"$instance"}})',
                        "none",
                        legend="{{version}}",
                        text_mode="name",
                    ),
                ],
            ),
            row("Frame pipeline"),
            (
                8,
                [
                    timeseries(
                        "Stage latency p50",
                        "Median time from a frame being emulated to it being converted, encoded and sent.",
                        targets((stage(0.5), "{{stage}}")),
                        "s",
                    ),
                    timeseries(
                        "Stage latency p99",
                        "99th percentile of the same; a frame lasts 16.7 ms at 60 fps.",
                        targets((stage(0.99), "{{stage}}")),
                        "s",
                    ),
                    timeseries(
                        "Encode duration",
                        "Time one frame spends in each encoder (p50, p99). Alert: p99 above 8 ms.",
                        targets((encode(0.5), "p50 {{encoder}}"), (encode(0.99), "p99 {{encoder}}")),
                        "s",
                        limit=ENCODE_BUDGET_S,
                    ),
                ],
            ),
            (
                8,
                [
                    timeseries(
                        "Frames per second by GPU",
                        'Frames emulated, encoded, and repeated (identical to the frame before, so not '
                        'encoded again) per second ("cpu" = software encoders).',
                        targets(
                            (f"sum by (gpu) (rate(retrofarm_frames_emulated_total{IG}[$__rate_interval]))", "emulated gpu {{gpu}}"),
                            (
                                f"sum by (gpu, encoder) (rate(retrofarm_frames_encoded_total{IG}[$__rate_interval]))",
                                "encoded gpu {{gpu}} {{encoder}}",
                            ),
                            (f"sum by (gpu) (rate(retrofarm_frames_repeated_total{IG}[$__rate_interval]))", "repeated gpu {{gpu}}"),
                        ),
                        "fps",
                    ),
                    timeseries(
                        "Frames dropped by reason",
                        "Drops instead of stalls: ring_overrun, encoder_busy, send_queue; rate_step (congestion control halving the frame rate for slow links); and late frames.",
                        targets(
                            (
                                f"sum by (reason, gpu) (rate(retrofarm_frames_dropped_total{IG}[$__rate_interval]))",
                                "{{reason}} gpu {{gpu}}",
                            ),
                            (f"sum by (gpu) (rate(retrofarm_frames_late_total{IG}[$__rate_interval]))", "late gpu {{gpu}}"),
                        ),
                        "fps",
                    ),
                    timeseries(
                        "Room CPU cost",
                        "Measured CPU per room (cores) and the rooms this host runs; CPU per room × rooms ≈ cores in use.",
                        targets(
                            (f"retrofarm_room_cpu_cores{I}", "cores per room {{instance}}"),
                            (f"retrofarm_room_cpu_cores{I} * retrofarm_rooms{I}", "cores for rooms {{instance}}"),
                        ),
                        "short",
                    ),
                ],
            ),
            row("Network"),
            (
                8,
                [
                    timeseries(
                        "Bitrate sent",
                        "Video and audio sent by the selected hosts, bits per second.",
                        targets((f"sum by (kind) (rate(retrofarm_sent_bytes_total{I}[$__rate_interval])) * 8", "{{kind}}")),
                        "bps",
                        stack=True,
                    ),
                    timeseries(
                        "Round-trip time",
                        "WebRTC round-trip time to browsers (p50, p95).",
                        targets(
                            (
                                f"histogram_quantile(0.5, sum by (le) (rate(retrofarm_peer_rtt_seconds_bucket{I}[$__rate_interval])))",
                                "p50",
                            ),
                            (
                                f"histogram_quantile(0.95, sum by (le) (rate(retrofarm_peer_rtt_seconds_bucket{I}[$__rate_interval])))",
                                "p95",
                            ),
                        ),
                        "s",
                    ),
                    timeseries(
                        "Packet loss and crashes",
                        "Packets the viewers reported lost over packets sent to them (alert: above 10% for 10 "
                        "minutes with 3 viewers or more), and emulator processes that crashed.",
                        targets(
                            (
                                f"sum by (instance) (rate(retrofarm_peer_packets_lost_total{I}[$__rate_interval]))\n/\n"
                                f"sum by (instance) (rate(retrofarm_peer_packets_sent_total{I}[$__rate_interval]))",
                                "loss {{instance}}",
                            ),
                            (f"increase(retrofarm_emulator_crashes_total{I}[$__rate_interval])", "crashes {{instance}}"),
                        ),
                        "short",
                    ),
                    timeseries(
                        "What the players see",
                        "Frames per second the viewers' browsers decoded, as their pages report every 5 s "
                        "(all viewers together, and the slowest 5% of reports: 60 is smooth, 30 a stream "
                        "halved for a slow link), and the freezes their browsers counted per minute.",
                        targets(
                            (
                                f"sum by (instance) (rate(retrofarm_viewer_frames_decoded_total{I}[$__rate_interval]))\n/\n"
                                f"sum by (instance) (rate(retrofarm_viewer_report_seconds_total{I}[$__rate_interval]))",
                                "fps {{instance}}",
                            ),
                            (
                                f"histogram_quantile(0.05, sum by (le) (rate(retrofarm_viewer_fps_bucket{I}[$__rate_interval])))",
                                "fps, slowest 5%",
                            ),
                            (
                                f"sum by (instance) (rate(retrofarm_viewer_freezes_total{I}[$__rate_interval])) * 60",
                                "freezes/min {{instance}}",
                            ),
                        ),
                        "short",
                    ),
                ],
            ),
            row("Host (node_exporter)"),
            (
                8,
                [
                    timeseries(
                        "CPU busy",
                        "Share of the host's CPU time not idle (node_cpu_seconds_total), and the share the rooms "
                        "use by their measured cost (cores per room × rooms ÷ cores). Busy well above the rooms' "
                        "share: something else runs on the host.",
                        targets(
                            (f"1 - avg by (instance) (rate(node_cpu_seconds_total{idle}[$__rate_interval]))", "busy {{instance}}"),
                            (
                                f"sum by (instance) (retrofarm_room_cpu_cores{I} * retrofarm_rooms{I})\n/\n"
                                f"count by (instance) (node_cpu_seconds_total{idle})",
                                "rooms {{instance}}",
                            ),
                        ),
                        "percentunit",
                        max_=1,
                    ),
                    timeseries(
                        "Network out",
                        "Bits per second the host sends on its own interfaces (node_network_transmit_bytes_total, "
                        "loopback and virtual interfaces left out), and the media payload the worker sends "
                        "(the difference is RTP/SRTP/UDP headers, retransmissions, and everything else).",
                        targets(
                            (f"sum by (instance) (rate(node_network_transmit_bytes_total{nics}[$__rate_interval])) * 8", "host {{instance}}"),
                            (f"sum by (instance) (rate(retrofarm_sent_bytes_total{I}[$__rate_interval])) * 8", "media {{instance}}"),
                        ),
                        "bps",
                    ),
                    timeseries(
                        "Memory used",
                        "Host memory in use (MemTotal − MemAvailable) against the total, and the worker process's "
                        "resident memory (its emulators are separate processes, counted in the host's figure).",
                        targets(
                            (f"node_memory_MemTotal_bytes{N} - node_memory_MemAvailable_bytes{N}", "used {{instance}}"),
                            (f"node_memory_MemTotal_bytes{N}", "total {{instance}}"),
                            (f'process_resident_memory_bytes{{job="retrofarm-worker", instance=~"$instance"}}', "retrofarm-worker {{instance}}"),
                        ),
                        "bytes",
                    ),
                ],
            ),
            row("GPU (NVIDIA DCGM exporter)"),
            (
                8,
                [
                    timeseries(
                        "GPU utilisation",
                        "DCGM_FI_DEV_GPU_UTIL: share of time a kernel ran (colour conversion, CUDA interop).",
                        targets((f"DCGM_FI_DEV_GPU_UTIL{IG}", "gpu {{gpu}} {{instance}}")),
                        "percent",
                        max_=100,
                    ),
                    timeseries(
                        "Encoder (NVENC) utilisation",
                        "DCGM_FI_DEV_ENC_UTIL: how busy the NVENC engines are; the stock DCGM dashboard has no such panel. "
                        "Near 100% the encoder becomes the room limit of this GPU.",
                        targets((f"DCGM_FI_DEV_ENC_UTIL{IG}", "gpu {{gpu}} {{instance}}")),
                        "percent",
                        max_=100,
                    ),
                ],
            ),
            (
                8,
                [
                    timeseries(
                        "GPU memory used",
                        "DCGM_FI_DEV_FB_USED: frame buffer in use (frame rings, conversion buffers, encoder surfaces).",
                        targets((f"DCGM_FI_DEV_FB_USED{IG}", "gpu {{gpu}} {{instance}}")),
                        "decmbytes",
                    ),
                    timeseries(
                        "GPU power",
                        "DCGM_FI_DEV_POWER_USAGE: board power draw.",
                        targets((f"DCGM_FI_DEV_POWER_USAGE{IG}", "gpu {{gpu}} {{instance}}")),
                        "watt",
                    ),
                    timeseries(
                        "Encoded fps vs encoder load",
                        "Frames encoded on this GPU per 1% of NVENC utilisation: how many more rooms the encoder can take.",
                        targets(
                            (
                                f"sum by (instance, gpu) (rate(retrofarm_frames_encoded_total{{instance=~\"$instance\", gpu=~\"$gpu\", encoder=\"nvenc\"}}[$__rate_interval]))\n/ on (instance, gpu)\n(DCGM_FI_DEV_ENC_UTIL{IG} > 0)",
                                "gpu {{gpu}} {{instance}}",
                            )
                        ),
                        "fps",
                    ),
                ],
            ),
            (
                8,
                [
                    timeseries(
                        "GPU temperature",
                        "DCGM_FI_DEV_GPU_TEMP. Alert: above 85 °C for 10 minutes; near its slowdown temperature "
                        "(nvidia-smi -q -d TEMPERATURE) the GPU lowers its clocks.",
                        targets((f"DCGM_FI_DEV_GPU_TEMP{IG}", "gpu {{gpu}} {{instance}}")),
                        "celsius",
                        min0=False,
                        limit=GPU_TEMP_LIMIT_C,
                    ),
                    timeseries(
                        "SM clock",
                        "DCGM_FI_DEV_SM_CLOCK: a clock that falls under load while the temperature or power is "
                        "high is the GPU throttling.",
                        targets((f"DCGM_FI_DEV_SM_CLOCK{IG} * 1000000", "gpu {{gpu}} {{instance}}")),
                        "hertz",
                    ),
                    timeseries(
                        "Decoder (NVDEC) utilisation",
                        "DCGM_FI_DEV_DEC_UTIL: retrofarm decodes no video, so anything here is another process "
                        "using this GPU's decoders.",
                        targets((f"DCGM_FI_DEV_DEC_UTIL{IG}", "gpu {{gpu}} {{instance}}")),
                        "percent",
                        max_=100,
                    ),
                    timeseries(
                        "Last XID error",
                        "DCGM_FI_DEV_XID_ERRORS: the code of the last XID error the NVIDIA driver reported for "
                        "the GPU, 0 for none. Any other value fires RetrofarmGpuXidError; "
                        "docs/runbooks/gpu-xid-error.md says what the common codes mean.",
                        targets((f"DCGM_FI_DEV_XID_ERRORS{IG}", "gpu {{gpu}} {{instance}}")),
                        "none",
                    ),
                ],
            ),
        ]
    )
    variables = [
        datasource_var(),
        query_var("instance", "Host", 'label_values(retrofarm_rooms{job="retrofarm-worker"}, instance)'),
        query_var("gpu", "GPU", 'label_values(retrofarm_frames_encoded_total{instance=~"$instance"}, gpu)'),
    ]
    return dashboard(
        "retrofarm-worker",
        "retrofarm / Worker and GPU detail",
        "One or more worker hosts: frame pipeline latency per stage, encoders, drops, room CPU cost, "
        "the host's CPU, network and memory (node_exporter), and the NVIDIA GPUs (DCGM exporter) "
        "including NVENC utilisation, temperature, clocks and XID errors.",
        variables,
        panels,
        [link_to("Farm overview", "Back to the whole farm")],
    )


BOARDS = {"retrofarm-overview.json": overview, "retrofarm-worker.json": worker}


def render(board):
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main(argv):
    check = "--check" in argv
    stale = []
    for name, make in BOARDS.items():
        text = render(make())
        path = HERE / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"build: wrote {path}")
    if stale:
        print(f"build: out of date: {', '.join(stale)} (run python3 {Path(__file__).name})", file=sys.stderr)
        return 1
    if check:
        print(f"build: {len(BOARDS)} dashboards up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
