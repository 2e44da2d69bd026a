"""Ways around the gateway's controls, each closed (issue 18, item 6).

- A forged usage-log field: the user name of a failed login that spells
  ` user=alice platform=facebook action=allow status=200 ` must stay one
  value that `grep ' user=alice '` does not find.

Real clients (curl, raw sockets) against private daemons on loopback.
"""

import subprocess
import time

from sgtest import CLEAN_ENV, curl, make_htpasswd


# --- 6. a failed login cannot forge usage-log fields -------------------------------------------

FORGED_USER = "x user=alice platform=facebook action=allow status=200 y"


def test_failed_login_name_cannot_forge_fields(make_sg, env):
    d = make_sg({"auth": {"htpasswd": "users"}}, start=False)
    make_htpasswd(d.dir / "users", {"alice": "alice-pw"})
    d.start()
    t0 = time.time()
    url = "http://www.facebook.com:%d/small.txt" % env.nginx_http
    r = curl("-x", d.proxy, "--proxy-user", FORGED_USER + ":pw", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert r.stdout == b"407", r.stderr
    r = curl("-x", d.proxy, "--proxy-user", "alice:alice-pw", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert r.stdout == b"200", r.stderr
    forged = d.wait_log(since=t0, ev="request", status="407")
    d.wait_log(since=t0, ev="request", status="200", user="alice")
    assert forged["user"] == FORGED_USER and forged["auth"] == "fail", forged.raw
    raw = forged.raw
    assert " user=alice " not in raw and " action=allow " not in raw, raw
    assert ' user="x\\x20user=alice\\x20platform=facebook\\x20action=allow\\x20status=200\\x20y" ' in raw, raw

    # the auditor's tools: grep finds Alice's own request only, awk's columns hold
    time.sleep(1.2)  # the log is flushed every second
    g = subprocess.run(["grep", " user=alice ", str(d.log)], capture_output=True, env=CLEAN_ENV, timeout=10)
    hits = [ln for ln in g.stdout.decode("latin-1").splitlines() if " ev=request " in ln]
    assert len(hits) == 1 and " status=200 " in hits[0], hits
    a = subprocess.run(["awk", "/ ev=request / { print NF, $4, $15 }", str(d.log)], capture_output=True,
                       env=CLEAN_ENV, timeout=10)
    rows = a.stdout.decode("latin-1").splitlines()
    assert sorted(rows) == sorted([
        "19 user=\"x\\x20user=alice\\x20platform=facebook\\x20action=allow\\x20status=200\\x20y\" status=407",
        "18 user=alice status=200"]), rows
