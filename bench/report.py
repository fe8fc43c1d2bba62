#!/usr/bin/env python3
"""The benches' one way of stating a result, and bench/all.sh's table.

  report.py row --metric M --unit U --minipod X --anchor-name A --anchor Y
                --target T [--target-text TEXT] [--higher-better]
      prints the result and, when $BENCH_RESULTS names a file, appends it
      there as one JSON line. The ratio is how many times better minipod is
      than its anchor: anchor/minipod for times and sizes, minipod/anchor
      with --higher-better (throughput). The target holds when ratio >= T
      (so "within 3x of the floor" is T = 1/3).
  report.py table FILE [--markdown]
      prints every row of FILE as one table; exits 1 when a target does not
      hold.
"""
import argparse
import json
import os
import sys
from fractions import Fraction


def fmt(value, unit):
    if unit == "s" and value < 1:
        return f"{value * 1000:.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms" and value < 1:
        return f"{value * 1000:.0f} µs"
    return f"{value:.4g} {unit}"


def row(args):
    m, a = float(args.minipod), float(args.anchor)
    ratio = (m / a) if args.higher_better else (a / m if m else float("inf"))
    target = float(Fraction(args.target))
    text = args.target_text or f">= {args.target}x"
    r = {
        "metric": args.metric,
        "unit": args.unit,
        "minipod": m,
        "anchor_name": args.anchor_name,
        "anchor": a,
        "ratio": ratio,
        "target": target,
        "target_text": text,
        "holds": ratio >= target,
    }
    print(f"{r['metric']}: minipod {fmt(m, args.unit)}, {args.anchor_name} {fmt(a, args.unit)}: "
          f"{ratio:.2f}x (target {text}: {'holds' if r['holds'] else 'MISSED'})")
    out = os.environ.get("BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(r) + "\n")


def table(args):
    rows = [json.loads(line) for line in open(args.file) if line.strip()]
    head = ["what", "minipod", "anchor", "anchor's figure", "ratio", "target", "holds"]
    body = [[r["metric"], fmt(r["minipod"], r["unit"]), r["anchor_name"], fmt(r["anchor"], r["unit"]),
             f"{r['ratio']:.2f}x", r["target_text"], "yes" if r["holds"] else "NO"] for r in rows]
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for b in body:
            # A | in a cell would end it.
            print("| " + " | ".join(c.replace("|", "\\|") for c in b) + " |")
    else:
        widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
        for b in [head] + body:
            print("  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip())
    return 0 if all(r["holds"] for r in rows) else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("row")
    for name in ("metric", "unit", "minipod", "anchor-name", "anchor", "target"):
        r.add_argument("--" + name, required=True)
    r.add_argument("--target-text")
    r.add_argument("--higher-better", action="store_true")
    t = sub.add_parser("table")
    t.add_argument("file")
    t.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    if args.cmd == "row":
        row(args)
        return 0
    return table(args)


if __name__ == "__main__":
    sys.exit(main())
