#!/usr/bin/env python3
"""Many concurrent idle tunnels: opens N CONNECT tunnels through socialgate
to a local echo server, leaves them idle, measures the proxy's RSS, then
pushes one message through every tunnel and counts the echoes.

usage: tunnels.py --proxy-pid PID --proxy-port PORT [--tunnels 20000]
Prints: tunnels=N ok=M rss_base_kb=A rss_kb=B per_tunnel_kb=C
Loopback only; bounded by --timeout seconds.
"""
import argparse
import asyncio
import resource
import sys
import time


def rss_kb(pid):
    total = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                total = int(line.split()[1])
    return total


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def open_tunnel(port, echo_port, sem):
    async with sem:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (echo_port, echo_port))
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head[:80])
        return r, w


async def ping(rw, i):
    r, w = rw
    msg = b"ping %d\n" % i
    w.write(msg)
    await w.drain()
    got = await r.readexactly(len(msg))
    return got == msg


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy-pid", type=int, required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--tunnels", type=int, default=20000)
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * a.tunnels + 1000
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    except (ValueError, OSError):
        print("cannot raise the descriptor limit to %d (run as root)" % want, file=sys.stderr)
        return 2
    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=4096)
    echo_port = server.sockets[0].getsockname()[1]
    base = rss_kb(a.proxy_pid)
    sem = asyncio.Semaphore(200)
    t0 = time.time()
    tunnels = await asyncio.wait_for(
        asyncio.gather(*[open_tunnel(a.proxy_port, echo_port, sem) for _ in range(a.tunnels)],
                       return_exceptions=True), a.timeout)
    opened = [t for t in tunnels if not isinstance(t, BaseException)]
    await asyncio.sleep(1)
    rss = rss_kb(a.proxy_pid)
    results = await asyncio.wait_for(
        asyncio.gather(*[ping(t, i) for i, t in enumerate(opened)], return_exceptions=True),
        a.timeout)
    ok = sum(1 for x in results if x is True)
    print("tunnels=%d opened=%d ok=%d rss_base_kb=%d rss_kb=%d per_tunnel_kb=%.2f seconds=%.1f" % (
        a.tunnels, len(opened), ok, base, rss, (rss - base) / max(1, len(opened)), time.time() - t0))
    for r, w in opened:
        w.close()
    server.close()
    return 0 if ok == a.tunnels else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
