#!/usr/bin/env python3
"""The layering of the connection core: who calls whom among the modules of
proxy/ listed in MODULES, and no cycle among them.

    python3 tests/layers.py [ROOT]      (ROOT: the repository, default: the one
                                         holding this file; make check-layers)

A module is proxy/NAME.c; the ones of MODULES that do not exist are left out.
There is an edge A -> B when A.c names a function that proxy/B.h declares
(a prototype at file scope whose name starts with `B_`), by calling it or by
taking its address, or when A.c names the table `B_ops`. Comments, string
and character literals, #include lines, struct members (`x.name`,
`x->name`) and tags (`struct conn_ops`) are not looked at. The direction
is the direction of the calls: `conn -> forward` means conn.c calls into
forward.

It prints every edge with the names behind it (and the line of their first
use), then every cycle as a path, then every edge that breaks the rule that
the core (CORE) never calls a phase or a stage above it (CORE_MUST_NOT_CALL).
Exit status: 0 when there is neither, 1 otherwise, 2 on a usage error.
Only the Python standard library is used.
"""

import re
import sys
import textwrap
from pathlib import Path

# The modules whose call graph must have no cycle, in the order they are
# printed. Add new phases here (e.g. "tlspage", "inspect") as they appear.
MODULES = ["conn", "forward", "tunnel", "tlspage", "gate", "upstream", "request", "txn", "decision"]

# The core dispatches to phases through a `struct conn_ops` table and never
# calls one by name, nor the modules that drive a transaction through it
# (gate, upstream). It may call the pure stages (request, decision), which
# call nothing back: the core frees the routed request it holds.
CORE = "conn"
CORE_MUST_NOT_CALL = ["forward", "tunnel", "tlspage", "gate", "upstream", "txn"]

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TAG_BEFORE = re.compile(r"(?<![A-Za-z0-9_])(struct|union|enum)$")
INCLUDE = re.compile(r"[ \t]*#[ \t]*include\b[^\n]*")


def strip_c(text):
    """text with comments, string and character literals and preprocessor
    #include lines replaced by spaces; newlines are kept, so line numbers hold."""
    out = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        ch = text[i]
        if line_start:
            # an #include line: its file name is not a use of anything
            m = INCLUDE.match(text, i)
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
                continue
        line_start = False
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
            continue
        if ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        if ch == "\n":
            line_start = True
        out.append(ch)
        i += 1
    return "".join(out)


def drop_directives(text):
    """Blanks every preprocessor directive (with its continuation lines)."""
    lines = text.split("\n")
    out, cont = [], False
    for line in lines:
        if cont or line.lstrip().startswith("#"):
            cont = line.rstrip().endswith("\\")
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def declared_functions(header_text, prefix):
    """Names starting with `prefix` that the header declares as functions at
    file scope (outside braces and parentheses)."""
    text = drop_directives(strip_c(header_text))
    names = set()
    brace = paren = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "{":
            brace += 1
        elif ch == "}":
            brace = max(0, brace - 1)
        elif ch == "(":
            paren += 1
        elif ch == ")":
            paren = max(0, paren - 1)
        elif ch.isalpha() or ch == "_":
            m = IDENT.match(text, i)
            name = m.group(0)
            i = m.end()
            if brace == 0 and paren == 0 and name.startswith(prefix):
                rest = text[i:].lstrip()
                if rest.startswith("("):
                    names.add(name)
            continue
        i += 1
    return names


def uses(source_text):
    """(name, line) of every identifier of the source that is neither a struct
    member nor a struct, union or enum tag, in order."""
    text = strip_c(source_text)
    out = []
    line = 1
    last = 0
    for m in IDENT.finditer(text):
        line += text.count("\n", last, m.start())
        last = m.start()
        j = m.start() - 1
        while j >= 0 and text[j] in " \t\n":
            j -= 1
        if j >= 0 and (text[j] == "." or (text[j] == ">" and j > 0 and text[j - 1] == "-")):
            continue
        if TAG_BEFORE.search(text, max(0, j - 6), j + 1):
            continue  # a type (struct conn_ops), not a table
        if m.start() > 0 and text[m.start() - 1].isdigit():
            continue  # part of a number such as 0x1f or 1e5
        out.append((m.group(0), line))
    return out


def build_graph(proxy_dir):
    """({module: path}, {(a, b): {name: first line}}, notes)."""
    present = {m: proxy_dir / (m + ".c") for m in MODULES if (proxy_dir / (m + ".c")).is_file()}
    notes = []
    api = {}
    for m in present:
        h = proxy_dir / (m + ".h")
        if h.is_file():
            api[m] = declared_functions(h.read_text(errors="replace"), m + "_")
        else:
            api[m] = set()
            notes.append("proxy/%s.h is missing: nothing can call into %s" % (m, m))
    owner = {}
    for m, names in api.items():
        for name in names:
            owner[name] = m
        owner[m + "_ops"] = m
    edges = {}
    for a, path in present.items():
        for name, line in uses(path.read_text(errors="replace")):
            b = owner.get(name)
            if b is None or b == a:
                continue
            edges.setdefault((a, b), {}).setdefault(name, line)
    return present, edges, notes


def cycles(nodes, edges):
    """Every elementary cycle, each once, starting at its first node in `nodes` order."""
    order = {m: i for i, m in enumerate(nodes)}
    succ = {m: sorted({b for (a, b) in edges if a == m}, key=order.get) for m in nodes}
    found = []

    def walk(start, node, path, seen):
        for nxt in succ[node]:
            if nxt == start:
                found.append(path + [start])
            elif order[nxt] > order[start] and nxt not in seen:
                seen.add(nxt)
                walk(start, nxt, path + [nxt], seen)
                seen.discard(nxt)

    for s in nodes:
        walk(s, s, [s], {s})
    return found


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print("usage: layers.py [ROOT]", file=sys.stderr)
        return 2
    root = Path(argv[1]) if len(argv) == 2 else Path(__file__).resolve().parents[1]
    proxy_dir = root / "proxy"
    if not proxy_dir.is_dir():
        print("layers.py: no proxy/ folder in %s" % root, file=sys.stderr)
        return 2
    present, edges, notes = build_graph(proxy_dir)
    nodes = list(present)
    missing = [m for m in MODULES if m not in present]
    print("modules: %s%s" % (" ".join(nodes),
                              "  (not present: %s)" % " ".join(missing) if missing else ""))
    for note in notes:
        print("note: " + note)

    order = {m: i for i, m in enumerate(nodes)}
    print("\nedges (caller -> callee: what the caller names, with the line of its first use):")
    if not edges:
        print("  none")
    for (a, b) in sorted(edges, key=lambda e: (order[e[0]], order[e[1]])):
        names = sorted(edges[(a, b)].items(), key=lambda kv: kv[1])
        # no break inside one "name (file:line)"
        text = ", ".join("%s\xa0(%s.c:%d)" % (name, a, line) for name, line in names)
        print(textwrap.fill(text, width=100, initial_indent="  %s -> %s: " % (a, b),
                            subsequent_indent="      ").replace("\xa0", " "))

    found = cycles(nodes, edges)
    print("\ncycles:")
    if not found:
        print("  none")
    for c in found:
        print("  " + " -> ".join(c))

    core_bad = []
    if CORE in present:
        core_bad = [b for b in CORE_MUST_NOT_CALL if (CORE, b) in edges]
    print("\nthe core (%s) calls a phase or stage (%s must not call %s):"
          % (CORE, CORE, ", ".join(CORE_MUST_NOT_CALL)))
    if not core_bad:
        print("  none")
    for b in core_bad:
        print(textwrap.fill(", ".join(sorted(edges[(CORE, b)])), width=100,
                            initial_indent="  %s -> %s: " % (CORE, b), subsequent_indent="      "))

    if found or core_bad:
        print("\nlayers: FAIL: %d cycle%s, %d call%s from the core into a phase or stage"
              % (len(found), "" if len(found) == 1 else "s", len(core_bad),
                 "" if len(core_bad) == 1 else "s"))
        return 1
    print("\nlayers: OK: no cycle, and the core calls no phase")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
