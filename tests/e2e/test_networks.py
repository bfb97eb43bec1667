"""Container networking (issue 6) through a real dockyard daemon, driven by the real docker CLI:
user networks with DNS, NAT of the default bridge, published ports, macvlan, connect and
disconnect, modes, bad input, cleanup, live restore. Every peer is a namespace made here
(testing/netns.py); nothing leaves the machine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tarfile
import threading
import time

import pytest

from dockyard.linux.netns import in_netns
from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.netns import TestNetns, free_subnet, tcp_request, udp_request
from dockyard.testing.rootfs import make_busybox_rootfs

pytestmark = pytest.mark.requires("docker_cli", "busybox")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("networks")
    rootfs = make_busybox_rootfs(base / "rootfs")
    (rootfs / "www").mkdir()
    (rootfs / "www" / "index.html").write_text("hello from the container\n")
    tar_path = base / "busybox.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(rootfs, arcname=".")
    with DockyardDaemon() as d:
        d.docker("import", "-c", 'CMD ["sh"]', str(tar_path), "busybox:latest")
        yield d


def dk(d, *args, check=True, **kw):
    return d.docker(*args, check=check, **kw)


def inspect(d, kind, name):
    return json.loads(dk(d, kind, "inspect", name).stdout)[0]


def host_links(d=None) -> set[str]:
    """The host's interfaces; without the veths on ``d``'s default bridge (its warm pool,
    network/pool.py, refills in the background)."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
    if d is not None:
        pool = subprocess.run(["ip", "-o", "link", "show", "master", d.bridge],
                              capture_output=True, text=True).stdout
        names -= {line.split(":")[1].strip().split("@")[0] for line in pool.splitlines()}
    return names


def nft_table(d) -> str:
    return subprocess.run(["nft", "list", "table", "ip", d.nft_table], capture_output=True,
                          text=True).stdout


def _monitors_of(cid: str) -> list[int]:
    """The monitor processes of container ``cid``: named dockyard-mon, in its state dir."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "dockyard-mon":
                    continue
            if cid in os.readlink(f"/proc/{pid}/cwd"):
                found.append(int(pid))
        except OSError:
            continue
    return found


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]


# -- user networks, DNS ----------------------------------------------------------------------

def test_user_network_names_aliases_links_and_forwarding(daemon):
    with TestNetns() as outside, outside.dns_server({"far.example": "192.0.2.77"}):
        dk(daemon, "network", "create", "appnet")
        try:
            dk(daemon, "run", "-d", "--name", "db", "--network", "appnet", "--network-alias",
               "database", "busybox", *HTTPD)
            db_ip = inspect(daemon, "container", "db")["NetworkSettings"]["Networks"]["appnet"]["IPAddress"]
            script = ("cat /etc/resolv.conf; nslookup db; nslookup database; nslookup store; "
                      f"nslookup far.example; wget -qO- http://database/; nslookup {db_ip}")
            res = dk(daemon, "run", "--rm", "--network", "appnet", "--link", "db:store",
                     "--dns", outside.ip, "busybox", "sh", "-c", script)
            assert "nameserver 127.0.0.11" in res.stdout
            assert res.stdout.count(f"Address: {db_ip}") == 3  # by name, alias and link
            assert "Address: 192.0.2.77" in res.stdout  # forwarded to the test namespace
            assert "hello from the container" in res.stdout
            assert "db.appnet" in res.stdout  # the reverse lookup
            # the default bridge has no embedded DNS: names do not resolve there
            res = dk(daemon, "run", "--rm", "busybox", "nslookup", "db", check=False)
            assert db_ip not in res.stdout
        finally:
            dk(daemon, "rm", "-f", "db", check=False)
            dk(daemon, "network", "rm", "appnet", check=False)


def test_default_bridge_reaches_out_through_nat(daemon):
    with TestNetns() as outside, outside.tcp_server(8000, b"outside says hi\n") as peers:
        res = dk(daemon, "run", "--rm", "busybox", "sh", "-c",
                 f"ip -4 addr show eth0; nc {outside.ip} 8000 </dev/null")
        assert "outside says hi" in res.stdout
        bridge = inspect(daemon, "network", "bridge")
        subnet = bridge["IPAM"]["Config"][0]["Subnet"]
        assert subnet.rsplit(".", 1)[0].split("/")[0][:6] in res.stdout  # an address of the bridge
        # masqueraded: the outside saw the host's address on its link, not the container's
        assert peers and peers[0][0] == outside.host_ip
        # an internal network reaches nothing outside itself
        dk(daemon, "network", "create", "--internal", "closed")
        try:
            res = dk(daemon, "run", "--rm", "--network", "closed", "busybox", "nc", "-w", "2",
                     outside.ip, "8000", check=False)
            assert "outside says hi" not in res.stdout
        finally:
            dk(daemon, "network", "rm", "closed")


# -- published ports ---------------------------------------------------------------------------

def _udp_echo_in(netns: str, port: int, stop: threading.Event) -> socket.socket:
    with in_netns(netns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(0.2)

    def loop():
        while not stop.is_set():
            try:
                data, peer = s.recvfrom(2048)
            except (socket.timeout, OSError):
                continue
            s.sendto(b"echo:" + data, peer)

    threading.Thread(target=loop, daemon=True).start()
    return s


def test_userland_proxy_where_the_kernel_cannot(daemon, tmp_path):
    """An IPv6 host address (no NAT46 in netfilter), and a daemon with --iptables=false."""
    dk(daemon, "run", "-d", "--name", "v6", "-p", "[::1]:18491:80", "busybox", *HTTPD)
    try:
        assert dk(daemon, "port", "v6", "80").stdout.strip() == "[::1]:18491"
        assert wait_for(lambda: _get6(18491))
    finally:
        dk(daemon, "rm", "-f", "v6")
    with DockyardDaemon(extra_args=["--iptables=false"]) as plain:
        plain.docker("load", "-i", str(_export(daemon, tmp_path)))
        plain.docker("run", "-d", "--name", "plainweb", "-p", "127.0.0.1:18492:80", "busybox", *HTTPD)
        assert wait_for(lambda: b"hello" in _get4(18492))
        assert subprocess.run(["nft", "list", "table", "ip", plain.nft_table],
                              capture_output=True).returncode != 0  # no table at all
        plain.docker("rm", "-f", "plainweb")


def _export(d, tmp_path):
    path = tmp_path / "busybox.tar"
    dk(d, "save", "-o", str(path), "busybox:latest")
    return path


def _get4(port):
    try:
        return tcp_request("127.0.0.1", port, b"GET / HTTP/1.0\r\n\r\n")
    except OSError:
        return b""


def _get6(port):
    try:
        with socket.create_connection(("::1", port), 5) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return b"hello from the container" in out
    except OSError:
        return False


def test_published_tcp_and_udp_ports(daemon):
    cid = dk(daemon, "run", "-d", "--name", "pub", "-p", "18480:80", "-p", "127.0.0.1:18481:80",
             "-p", "18482:5353/udp", "-p", "18483-18486:8080", "-p", "18487-18488:81-82",
             "--expose", "9000", "-P", "busybox", "sh", "-c",
             "httpd -p 8080 -h /www; httpd -p 81 -h /www; exec " + " ".join(HTTPD)).stdout.strip()
    stop = threading.Event()
    sock = None
    try:
        ports = dk(daemon, "port", "pub").stdout
        assert "80/tcp -> 0.0.0.0:18480" in ports and "80/tcp -> 127.0.0.1:18481" in ports
        assert "5353/udp -> 0.0.0.0:18482" in ports
        ranged = int(dk(daemon, "port", "pub", "8080").stdout.strip().rsplit(":", 1)[1])
        assert 18483 <= ranged <= 18486 and "82/tcp -> 0.0.0.0:18488" in ports
        for port in (ranged, 18487):  # a host range for one port; a range onto a range
            assert b"hello" in tcp_request("127.0.0.1", port, b"GET / HTTP/1.0\r\n\r\n")
        random_port = int(dk(daemon, "port", "pub", "9000").stdout.strip().rsplit(":", 1)[1])
        assert random_port > 1024
        ns = inspect(daemon, "container", "pub")["NetworkSettings"]
        assert ns["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "18480"},
                                        {"HostIp": "127.0.0.1", "HostPort": "18481"}]
        sock = _udp_echo_in(ns["SandboxKey"], 5353, stop)
        # from the host, on loopback
        assert b"hello from the container" in tcp_request("127.0.0.1", 18480, b"GET / HTTP/1.0\r\n\r\n")
        assert b"hello from the container" in tcp_request("127.0.0.1", 18481, b"GET / HTTP/1.0\r\n\r\n")
        assert udp_request("127.0.0.1", 18482, b"ping") == b"echo:ping"
        # from another namespace, through its route to the host
        with TestNetns() as other:
            got = other.tcp_request(other.host_ip, 18480, b"GET / HTTP/1.0\r\n\r\n")
            assert b"hello from the container" in got
            assert other.udp_request(other.host_ip, 18482, b"pong") == b"echo:pong"
            with pytest.raises(OSError):  # bound to 127.0.0.1 only
                other.tcp_request(other.host_ip, 18481, b"x", timeout=1)
        # from the container itself and from a neighbour, through the host's address
        gateway = ns["Gateway"]
        for who in ("pub", None):
            args = ["exec", "pub"] if who else ["run", "--rm", "busybox"]
            res = dk(daemon, *args, "timeout", "5", "wget", "-qO-", f"http://{gateway}:18480/")
            assert "hello from the container" in res.stdout, who
        # a port already taken: a clear error, nothing left behind. The neighbour's veth goes
        # with its namespace just after its --rm answer, so wait for it before counting.
        assert wait_for(lambda: not {n for n in host_links(daemon) if n.startswith("veth")})
        before = host_links(daemon)
        res = dk(daemon, "run", "-d", "--name", "clash", "-p", "18480:80", "busybox", *HTTPD,
                 check=False)
        assert res.returncode != 0 and "port is already allocated" in res.stderr
        assert host_links(daemon) == before
        assert inspect(daemon, "container", "clash")["State"]["Running"] is False
    finally:
        stop.set()
        if sock is not None:
            sock.close()
        dk(daemon, "rm", "-f", "pub", "clash", check=False)
    # the port's map element goes just after the answer (the teardown's reap)
    assert wait_for(lambda: "18480" not in nft_table(daemon))
    assert cid


# -- modes ------------------------------------------------------------------------------------

def test_host_none_and_container_modes(daemon):
    res = dk(daemon, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert "lo" in res.stdout and "eth0" not in res.stdout
    res = dk(daemon, "run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    assert daemon.bridge in res.stdout  # the host's interfaces
    dk(daemon, "run", "-d", "--name", "onhost", "--network", "host", "busybox", "sleep", "60")
    try:
        listed = inspect(daemon, "network", "host")["Containers"]
        assert [c["Name"] for c in listed.values()] == ["onhost"]
    finally:
        dk(daemon, "rm", "-f", "onhost")
    assert inspect(daemon, "network", "host")["Containers"] == {}
    dk(daemon, "run", "-d", "--name", "holder", "--hostname", "holder", "busybox", *HTTPD)
    try:
        ip = inspect(daemon, "container", "holder")["NetworkSettings"]["IPAddress"]
        res = dk(daemon, "run", "--rm", "--network", "container:holder", "--pid", "container:holder",
                 "busybox", "sh", "-c",
                 "ip -4 -o addr show eth0; wget -qO- http://127.0.0.1/; ps; hostname; cat /etc/hosts")
        assert ip in res.stdout and "hello from the container" in res.stdout
        assert "\nholder\n" in res.stdout and f"{ip}\tholder" in res.stdout  # holder's files
        assert "httpd" in res.stdout  # the pid namespace is shared too
        res = dk(daemon, "run", "--rm", "--ipc", "container:holder", "busybox", check=False)
        assert res.returncode == 125 and "non-shareable IPC" in res.stderr  # (test_ipc.py)
        res = dk(daemon, "run", "--rm", "--hostname", "h1", "--dns", "10.9.9.9", "--dns-search",
                 "example.test", "--add-host", "extra:10.1.2.3", "--add-host", "gw:host-gateway",
                 "busybox", "sh", "-c", "hostname; cat /etc/resolv.conf /etc/hosts")
        gateway = inspect(daemon, "network", "bridge")["IPAM"]["Config"][0]["Gateway"]
        assert f"{gateway}\tgw" in res.stdout
        assert res.stdout.startswith("h1\n")
        assert "nameserver 10.9.9.9" in res.stdout and "search example.test" in res.stdout
        assert "10.1.2.3\textra" in res.stdout
        # legacy links on the default bridge: the target's address in /etc/hosts
        res = dk(daemon, "run", "--rm", "--link", "holder:web", "busybox", "sh", "-c",
                 "cat /etc/hosts; wget -qO- http://web/")
        assert f"{ip}\tweb" in res.stdout and "hello from the container" in res.stdout
    finally:
        dk(daemon, "rm", "-f", "holder", check=False)


# -- connect, disconnect ----------------------------------------------------------------------

def test_icc_off_isolates_containers_of_a_network(daemon):
    dk(daemon, "network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "noicc")
    try:
        dk(daemon, "run", "-d", "--name", "lonely", "--network", "noicc", "busybox", *HTTPD)
        res = dk(daemon, "run", "--rm", "--network", "noicc", "busybox", "sh", "-c",
                 "nslookup lonely >/dev/null && echo named; echo 'GET / HTTP/1.0' | "
                 "timeout 3 nc lonely 80", check=False)
        assert "named" in res.stdout and "hello" not in res.stdout
    finally:
        dk(daemon, "rm", "-f", "lonely", check=False)
        dk(daemon, "network", "rm", "noicc", check=False)


def test_connect_and_disconnect_live(daemon):
    dk(daemon, "network", "create", "--subnet", "10.198.0.0/24", "front")
    dk(daemon, "network", "create", "back")
    try:
        dk(daemon, "run", "-d", "--name", "app", "--network", "front", "busybox", *HTTPD)
        dk(daemon, "run", "-d", "--name", "worker", "--network", "back", "busybox", "sleep", "300")
        # (busybox's wget -T crashes: timeout(1) instead)
        res = dk(daemon, "exec", "worker", "timeout", "2", "wget", "-qO-", "http://app/", check=False)
        assert res.returncode != 0 and "hello" not in res.stdout  # not on the same network yet
        dk(daemon, "network", "connect", "--alias", "api", "--ip", "10.198.0.50", "front", "worker")
        dk(daemon, "run", "--rm", "--network", "front", "--mac-address", "02:42:0a:00:00:99",
           "busybox", "sh", "-c", "ip link show eth0 | grep -q 02:42:0a:00:00:99")
        res = dk(daemon, "exec", "worker", "sh", "-c", "ip -4 -o addr; wget -qO- http://app/; nslookup api")
        assert "10.198.0.50" in res.stdout and "hello from the container" in res.stdout
        net = inspect(daemon, "network", "front")
        assert {c["Name"] for c in net["Containers"].values()} == {"app", "worker"}
        dk(daemon, "network", "disconnect", "front", "worker")
        res = dk(daemon, "exec", "worker", "ip", "-4", "-o", "addr")
        assert "10.198.0.50" not in res.stdout
        assert set(inspect(daemon, "container", "worker")["NetworkSettings"]["Networks"]) == {"back"}
        res = dk(daemon, "network", "rm", "front", check=False)
        assert res.returncode != 0 and "active endpoints" in res.stderr
        # the network that carried the app's default route goes: another one carries it
        dk(daemon, "network", "connect", "back", "app")
        dk(daemon, "network", "disconnect", "front", "app")
        assert "default via" in dk(daemon, "exec", "app", "ip", "route").stdout
    finally:
        dk(daemon, "rm", "-f", "app", "worker", check=False)
        dk(daemon, "network", "rm", "front", "back", check=False)


# -- macvlan ----------------------------------------------------------------------------------

def test_macvlan_container_is_a_machine_on_the_segment(daemon):
    subnet = free_subnet("10.197")
    with TestNetns(subnet) as segment, segment.tcp_server(7000, b"segment here\n"):
        # the parent: the host's end of the segment's link
        dk(daemon, "network", "create", "-d", "macvlan", "-o", f"parent={segment.host_if}",
           "--subnet", str(subnet), "--gateway", segment.ip, "--ip-range",
           str(subnet.network_address + 64) + "/26", "mvnet")
        try:
            dk(daemon, "run", "-d", "--name", "mv", "--network", "mvnet", "busybox", *HTTPD)
            ip = inspect(daemon, "container", "mv")["NetworkSettings"]["Networks"]["mvnet"]["IPAddress"]
            assert int(ip.rsplit(".", 1)[1]) >= 64
            got = segment.tcp_request(ip, 80, b"GET / HTTP/1.0\r\n\r\n")
            assert b"hello from the container" in got
            res = dk(daemon, "exec", "mv", "nc", segment.ip, "7000")
            assert "segment here" in res.stdout
            dk(daemon, "rm", "-f", "mv")
            # its exit's teardown left the macvlan child in a worker thread (netlink), not
            # on the daemon's loop, where pyroute2 cannot run
            assert "leaving mvnet failed" not in daemon.log_path.read_text(errors="replace")
        finally:
            dk(daemon, "rm", "-f", "mv", check=False)
            dk(daemon, "network", "rm", "mvnet", check=False)


# -- bad input, cleanup ------------------------------------------------------------------------

def test_bad_input_gets_clear_errors_and_leaves_nothing(daemon):
    before_links, before_nets = host_links(daemon), dk(daemon, "network", "ls", "-q").stdout
    dk(daemon, "network", "create", "--subnet", "10.196.0.0/16", "taken")
    try:
        cases = [
            (["--subnet", "10.196.4.0/24", "over"], "overlaps"),
            (["--subnet", "10.195.0.0/24", "--gateway", "10.194.0.1", "gw"], "subnet"),
            (["-d", "nosuchdriver", "drv"], 'plugin "nosuchdriver" not found'),
            (["-d", "macvlan", "-o", "parent=nosuch0", "--subnet", "10.193.0.0/24", "mv"],
             "parent interface was not found"),
            (["taken"], "already exists"),
            (["bad/name"], "invalid name"),
            (["--subnet", "10.192.0.0/24", "--ip-range", "10.191.0.0/25", "rng"], "subnet"),
        ]
        for args, message in cases:
            res = dk(daemon, "network", "create", *args, check=False)
            assert res.returncode != 0 and message in res.stderr, (args, res.stderr)
        res = dk(daemon, "run", "--rm", "--network", "taken", "--ip", "10.197.0.9", "busybox",
                 "true", check=False)
        assert res.returncode == 125 and "10.197.0.9" in res.stderr
        res = dk(daemon, "network", "rm", "bridge", check=False)
        assert "pre-defined network" in res.stderr
        # a network removed under a stopped container: its start fails clearly
        dk(daemon, "network", "create", "gone")
        dk(daemon, "create", "--name", "orphan", "--network", "gone", "busybox", "true")
        dk(daemon, "network", "rm", "gone")
        res = dk(daemon, "start", "orphan", check=False)
        assert res.returncode != 0 and "not found" in res.stderr
        dk(daemon, "rm", "orphan")
        # the CLI checks a gateway itself; the API refuses it too (400)
        import docker

        client = daemon.client()
        try:
            pool = docker.types.IPAMPool(subnet="10.195.0.0/24", gateway="10.194.0.1")
            with pytest.raises(docker.errors.APIError) as err:
                client.networks.create("gw", ipam=docker.types.IPAMConfig(pool_configs=[pool]))
            assert err.value.status_code == 400 and "not in subnet" in str(err.value)
            # an unknown network: 404, as dockerd (the CLI then tries a pull, as with dockerd)
            with pytest.raises(docker.errors.NotFound, match="network nosuchnet not found"):
                client.containers.create("busybox", ["true"], network="nosuchnet")
        finally:
            client.close()
    finally:
        dk(daemon, "network", "rm", "taken")
    assert host_links(daemon) == before_links
    assert dk(daemon, "network", "ls", "-q").stdout == before_nets


def test_create_remove_cycles_leave_nothing_behind(daemon):
    netns_dir = daemon.exec_root / "netns"
    before = host_links(daemon)
    def cycles(worker: int) -> None:
        client = daemon.client()
        try:
            for i in range(25):
                name = f"cyc{worker}-{i}"
                net = client.networks.create(name)
                c = client.containers.run("busybox", ["true"], network=name,
                                          ports={"80/tcp": None}, detach=True)
                c.wait()
                c.remove()
                net.remove()
        finally:
            client.close()

    # 100 cycles, four at a time: concurrent creates and removes must not trip over each other
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(cycles, range(4)))
    # and a few through the CLI, with published ports on the default bridge
    for i in range(5):
        dk(daemon, "network", "create", f"cli{i}")
        dk(daemon, "run", "--rm", "--network", f"cli{i}", "-p", "80", "busybox", "true")
        dk(daemon, "network", "rm", f"cli{i}")
    assert wait_for(lambda: host_links(daemon) == before), host_links(daemon) ^ before
    # on the default bridge: only the warm pool's veths stay (network/pool.py keeps 2)
    for _ in range(5):
        dk(daemon, "run", "--rm", "busybox", "true")
    on_bridge = lambda: subprocess.run(["ip", "-o", "link", "show", "master", daemon.bridge],  # noqa: E731
                                       capture_output=True, text=True).stdout.count("\n")
    assert wait_for(lambda: on_bridge() == 2), on_bridge()
    assert not [p for p in netns_dir.iterdir() if not p.name.startswith("warm-")]
    table = nft_table(daemon)
    assert "br-" not in table and "elements" not in table


def test_a_start_whose_network_fails_late_leaves_nothing_behind(daemon):
    """The address inside a warm namespace is set while the runtime creates the container
    (engine/containers.py `_spawn_and_start`). If that fails, the created container is
    discarded: no process, no monitor, no sandbox; the next start works."""
    assert wait_for(lambda: _pool_veths(daemon) == 2)
    for veth in _pool_veths(daemon, names=True):  # the warm namespaces lose their interface
        subprocess.run(["ip", "link", "del", veth], check=True)
    for name in ("late2", "late"):  # each takes one of the two broken warm namespaces
        res = dk(daemon, "run", "--name", name, "busybox", "true", check=False)
        assert res.returncode != 0 and "No such device" in res.stderr, res.stderr
    try:
        state = inspect(daemon, "container", "late")["State"]
        assert state["Status"] == "created" and "No such device" in state["Error"]
        cid = inspect(daemon, "container", "late")["Id"]
        assert wait_for(lambda: not _monitors_of(cid))
        assert not (daemon.exec_root / "netns" / cid).exists()
        with open("/proc/self/mountinfo") as f:
            assert cid not in f.read()
    finally:
        dk(daemon, "rm", "-f", "late", "late2")
    assert dk(daemon, "run", "--rm", "busybox", "echo", "ok").stdout == "ok\n"


def _pool_veths(d, names: bool = False):
    out = subprocess.run(["ip", "-o", "link", "show", "master", d.bridge], capture_output=True,
                         text=True).stdout
    found = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return found if names else len(found)


# -- shapes, restore --------------------------------------------------------------------------

def test_inspect_and_list_shapes(daemon):
    since = str(int(time.time()) - 1)
    dk(daemon, "network", "create", "--label", "team=a", "--internal", "--attachable", "shape")
    try:
        net = inspect(daemon, "network", "shape")
        assert net["Internal"] is True and net["Attachable"] is True and net["Labels"] == {"team": "a"}
        assert set(net) >= {"Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM",
                            "Internal", "Attachable", "Ingress", "ConfigFrom", "ConfigOnly",
                            "Containers", "Options", "Labels"}
        assert dk(daemon, "network", "ls", "-q", "--filter", "label=team=a").stdout.strip() == net["Id"][:12]
        names = dk(daemon, "network", "ls", "--format", "{{.Name}}", "--filter", "type=custom").stdout
        assert names.split() == ["shape"]
        assert "shape" in dk(daemon, "network", "prune", "-f").stdout
        time.sleep(1.1)  # --until is in whole seconds
        events = dk(daemon, "events", "--since", since, "--until", "0s", "--filter",
                    "type=network", "--format", "{{.Action}} {{.Actor.Attributes.name}}").stdout
        assert "create shape" in events and "destroy shape" in events
    finally:
        dk(daemon, "network", "rm", "shape", check=False)


def test_running_containers_keep_their_network_across_a_daemon_restart(daemon):
    dk(daemon, "network", "create", "keep")
    try:
        dk(daemon, "run", "-d", "--name", "kept", "--network", "keep", "--network-alias", "k",
           "-p", "18490:80", "busybox", *HTTPD)
        daemon.kill()  # (httpd listens a moment after the run's answer)
        assert wait_for(lambda: b"hello from the container" in _get4(18490))
        daemon.start()
        assert b"hello from the container" in tcp_request("127.0.0.1", 18490, b"GET / HTTP/1.0\r\n\r\n")
        res = dk(daemon, "run", "--rm", "--network", "keep", "busybox", "wget", "-qO-", "http://k/")
        assert "hello from the container" in res.stdout
        ip = inspect(daemon, "container", "kept")["NetworkSettings"]["Networks"]["keep"]["IPAddress"]
        res = dk(daemon, "exec", "kept", "nslookup", "k")  # its own DNS served again
        assert f"Address: {ip}" in res.stdout
        res = dk(daemon, "run", "-d", "-p", "18490:80", "busybox", "true", check=False)
        assert "port is already allocated" in res.stderr  # re-learnt
        dk(daemon, "stop", "-t", "1", "kept")
        assert wait_for(lambda: "18490" not in nft_table(daemon))
        # what the host lost while the daemon was away (a reboot) is made again at start
        bridge = "br-" + inspect(daemon, "network", "keep")["Id"][:12]
        daemon.kill()
        subprocess.run(["ip", "link", "del", bridge], check=True)
        subprocess.run(["nft", "delete", "table", "ip", daemon.nft_table], check=True)
        daemon.start()
        assert bridge in host_links(daemon) and "masquerade" in nft_table(daemon)
    finally:
        dk(daemon, "rm", "-f", "kept", check=False)
        dk(daemon, "container", "prune", "-f", check=False)
        dk(daemon, "network", "rm", "keep", check=False)
