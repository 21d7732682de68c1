#!/usr/bin/env python3
"""Fails when modules call each other in a circle.

Builds the call graph between object files from `nm` (what each object
defines, what it leaves undefined): an edge A -> B when A uses a symbol B
defines. Any cycle (a strongly connected set of two or more objects) is
printed with one symbol per edge and makes the exit status 1.
Usage: callgraph.py OBJ... [--dot]  (make check-cycles runs it on src/core)
"""
import os
import subprocess
import sys


def symbols(obj):
    out = subprocess.run(["nm", "-P", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            undefined.add(name)
        elif kind.isupper():  # global: defined here, others may use it
            defined.add(name)
    return defined, undefined


def sccs(nodes, edges):
    """Tarjan's strongly connected components."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main(argv):
    dot = "--dot" in argv
    objs = [a for a in argv if not a.startswith("--")]
    if not objs:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    name = {o: os.path.splitext(os.path.basename(o))[0] for o in objs}
    defs, uses = {}, {}
    for o in objs:
        defs[o], uses[o] = symbols(o)
    owner = {}
    for o in objs:
        for s in defs[o]:
            owner.setdefault(s, o)
    edges, why = {}, {}
    for o in objs:
        for s in sorted(uses[o]):
            t = owner.get(s)
            if t and t != o:
                edges.setdefault(name[o], set()).add(name[t])
                why.setdefault((name[o], name[t]), s)
    nodes = set(name.values())
    if dot:
        print("digraph core {")
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f'  "{a}" -> "{b}";')
        print("}")
        return 0
    bad = [c for c in sccs(nodes, edges) if len(c) > 1]
    for comp in bad:
        print("call cycle among: " + ", ".join(comp))
        for a in comp:
            for b in sorted(edges.get(a, ())):
                if b in comp:
                    print(f"  {a} -> {b}  ({why[(a, b)]})")
    if bad:
        return 1
    print(f"no call cycles among {len(nodes)} objects ({sum(len(v) for v in edges.values())} edges)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
