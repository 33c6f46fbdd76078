#!/usr/bin/env python3
"""Plots the memory benchmark's output (tests/benchmarks/run_memory.sh): RSS of a durable SQLite domain
against its number of events, with the whole stream in memory (before) and with a tail and snapshots
(after), as an SVG with no dependency beyond Python.

    scripts/plot_memory.py memory.jsonl docs/memory.svg
"""
import json
import math
import sys


def main(source, target):
    runs = [json.loads(line) for line in open(source) if line.strip().startswith("{")]
    series = {}
    for run in runs:
        series.setdefault(run["mode"], []).append((run["events"], max(run["rss_mib"], 0.1)))
    if not series:
        sys.exit("plot_memory.py: no runs in " + source)
    width, height, left, right, top, bottom = 640, 360, 70, 20, 30, 50
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points]
    x0, x1 = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)

    def px(x):
        return left + (math.log10(x) - x0) / (x1 - x0) * (width - left - right)

    def py(y):
        return height - bottom - (math.log10(y) - y0) / (y1 - y0) * (height - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="14">RSS of a durable SQLite domain (MiB, log) against its events (log)</text>']
    for e in range(x0, x1 + 1):
        x = px(10 ** e)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">1e{e}</text>')
    for e in range(y0, y1 + 1):
        y = py(10 ** e)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">events in the domain</text>')
    colours = {"whole": ("#c0392b", "whole stream in memory (before)"), "tail": ("#2471a3", "tail + snapshots (after)")}
    for i, (mode, points) in enumerate(sorted(series.items())):
        colour, label = colours.get(mode, ("#555", mode))
        points.sort()
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in points:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        ly = top + 16 + 18 * i  # the legend, top left inside the plot
        out.append(f'<line x1="{left + 10}" y1="{ly}" x2="{left + 30}" y2="{ly}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{left + 34}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    with open(target, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: scripts/plot_memory.py memory.jsonl out.svg")
    main(sys.argv[1], sys.argv[2])
