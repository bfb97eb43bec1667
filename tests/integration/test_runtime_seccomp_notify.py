"""seccomp SCMP_ACT_NOTIFY in a container: the runtime hands the listener to the agent at
linux.seccomp.listenerPath with the container's state, and keeps no copy inside."""

from __future__ import annotations

import json
import os
import socket
import threading

from dockyard.testing.seccomp_agent import answer_one, recv_fds


def test_notify_listener_reaches_the_agent(rt, bundle, tmp_path):
    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(20)
    got: dict = {}

    def agent():
        conn, _ = server.accept()
        with conn:
            msg, fds = recv_fds(conn)
            got["msg"] = json.loads(msg)
            got["call"] = answer_one(fds[0], 0)  # "succeed" without making the directory
            os.close(fds[0])

    def edit(c):
        c["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path, "listenerMetadata": "m1",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
        c["root"]["readonly"] = False

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    script = "mkdir /tmp/x && echo mkdir-said-ok; test -d /tmp/x || echo no-dir; ls /proc/self/fd"
    cid = rt.new_id()
    res = rt.ok("run", "--bundle", str(bundle("sh", "-c", script, edit=edit)), cid)
    thread.join(10)
    server.close()
    assert "mkdir-said-ok" in res.stdout and "no-dir" in res.stdout
    assert got["msg"]["fds"] == ["seccompFd"] and got["msg"]["metadata"] == "m1"
    assert got["msg"]["state"]["id"] == cid and got["msg"]["state"]["status"] == "creating"
    assert got["msg"]["pid"] == got["msg"]["state"]["pid"] > 1
    fds = res.stdout.split("no-dir", 1)[1].split()
    assert sorted(fds) == ["0", "1", "2", "3"]  # 3 is ls's own directory fd; no listener
