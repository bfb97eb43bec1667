"""What is shown of sandboxes, as a part of `NetworkManager`: NetworkSettings and Ports of
container inspect and list (Docker's shapes), and the names the embedded DNS answers (a
snapshot table, and ``resolve`` over it). Read-only; pure but for the manager's lock.
"""

from __future__ import annotations

from collections.abc import Mapping

from dockyard.network.ports import Published

_HIDDEN = ("ifname", "host_veth", "mac_wanted")   # our own facts, not Docker's fields


class ViewsMixin:
    # -- views -----------------------------------------------------------------------------

    def addresses(self, cid: str) -> list[str]:
        sb = self.sandboxes.get(cid) or {"endpoints": {}}
        return [ep["IPAddress"] for ep in sb["endpoints"].values() if ep.get("IPAddress")]

    def networks_of(self, cid: str) -> list[str]:
        sb = self.sandboxes.get(cid) or {"endpoints": {}}
        return [self.networks[n]["Name"] for n in sb["endpoints"] if n in self.networks]

    def published(self, cid: str) -> list[Published]:
        sb = self.sandboxes.get(cid) or {}
        return [Published.from_json(p) for p in sb.get("ports") or []]

    def settings(self, cid: str, config: Mapping) -> dict:
        """NetworkSettings of container inspect (API 1.51's shape)."""
        with self._lock:
            sb = self.sandboxes.get(cid) or {"endpoints": {}, "netns": ""}
            nets = {}
            for nid, ep in sb["endpoints"].items():
                net = self.networks.get(nid)
                if net is None:
                    continue
                shown = {k: v for k, v in ep.items() if k not in _HIDDEN}
                shown |= {"IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                          "DNSNames": (self._dns_names(cid, sb, net, ep)
                                       if ep.get("EndpointID") else None)}
                nets[net["Name"]] = shown
            bridge = next((e for n, e in sb["endpoints"].items()
                           if self.networks.get(n, {}).get("Name") == "bridge"), {})
            running = bool(sb.get("netns"))
            return {
                "Bridge": "", "SandboxID": (cid if running else ""), "SandboxKey": sb["netns"],
                "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
                "Ports": self._ports_view(sb, config), "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None, "EndpointID": bridge.get("EndpointID", ""),
                "Gateway": bridge.get("Gateway", ""), "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "IPAddress": bridge.get("IPAddress", ""),
                "IPPrefixLen": bridge.get("IPPrefixLen", 0), "IPv6Gateway": "",
                "MacAddress": bridge.get("MacAddress", ""), "Networks": nets}

    def _ports_view(self, sb: dict, config: Mapping) -> dict:
        if not sb.get("netns"):
            return {}
        out: dict[str, list | None] = {k: None for k in config.get("ExposedPorts") or {}}
        for p in sb.get("ports") or []:
            pub = Published.from_json(p)
            out.setdefault(f"{pub.container_port}/{pub.proto}", None)
            entries = out[f"{pub.container_port}/{pub.proto}"] or []
            entries.append({"HostIp": pub.host_ip or "0.0.0.0", "HostPort": str(pub.host_port)})
            out[f"{pub.container_port}/{pub.proto}"] = entries
        return out

    def summary_ports(self, cid: str, config: Mapping) -> list[dict]:
        """Ports of the container list: published ones, and exposed ones without a host port."""
        with self._lock:
            sb = self.sandboxes.get(cid) or {}
            if not sb.get("netns"):
                return []
            out = []
            seen = set()
            for p in self.published(cid):
                seen.add(f"{p.container_port}/{p.proto}")
                out.append({"IP": p.host_ip or "0.0.0.0", "PrivatePort": p.container_port,
                            "PublicPort": p.host_port, "Type": p.proto})
            for key in config.get("ExposedPorts") or {}:
                if key not in seen:
                    port, _, proto = key.partition("/")
                    out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
            return out

    def summary_networks(self, cid: str) -> dict:
        with self._lock:
            sb = self.sandboxes.get(cid) or {"endpoints": {}}
            out = {}
            for nid, ep in sb["endpoints"].items():
                net = self.networks.get(nid)
                if net is not None:
                    out[net["Name"]] = {k: v for k, v in ep.items() if k not in _HIDDEN} | {
                        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                        "DNSNames": None}
            return out

    # -- names for the embedded DNS ------------------------------------------------------------

    def _dns_names(self, cid: str, sb: dict, net: dict, ep: dict) -> list[str] | None:
        if net["Name"] in ("bridge", "host", "none"):
            return None
        return [sb.get("name", ""), cid[:12], *(ep.get("Aliases") or [])]

    def name_table(self) -> dict:
        """What the embedded DNS needs, as one snapshot: per container its user networks and
        link aliases; per network its names -> addresses."""
        with self._lock:
            per_net: dict[str, dict[str, list[str]]] = {}
            views: dict[str, dict] = {}
            for cid, sb in self.sandboxes.items():
                mine = []
                for nid, ep in sb["endpoints"].items():
                    net = self.networks.get(nid)
                    if net is None or not ep.get("IPAddress"):
                        continue
                    names = self._dns_names(cid, sb, net, ep)
                    if names is None:
                        continue
                    mine.append(nid)
                    table = per_net.setdefault(nid, {})
                    for n in names:
                        table.setdefault(n.lower(), []).append(ep["IPAddress"])
                    table.setdefault(f"{sb.get('name', '')}.{net['Name']}".lower(),
                                     []).append(ep["IPAddress"])
                    # reverse: the address -> "name.network" (as dockerd answers PTR)
                    table.setdefault("ptr:" + ep["IPAddress"], []).append(
                        f"{sb.get('name', '')}.{net['Name']}")
                links = dict(sb.get("links") or {})
                for ep in sb["endpoints"].values():
                    for link in ep.get("Links") or []:
                        target, _, alias = link.partition(":")
                        links[alias or target] = target
                views[cid] = {"networks": mine, "links": {k.lower(): v.lower()
                                                          for k, v in links.items()}}
            return {"networks": per_net, "containers": views}


def resolve(table: dict, cid: str, name: str) -> list[str] | None:
    """Addresses of ``name`` as container ``cid`` sees it (None: not ours, forward it)."""
    view = table["containers"].get(cid)
    if view is None:
        return None
    name = name.lower().rstrip(".") if not name.startswith("ptr:") else name
    name = view["links"].get(name, name)
    out: list[str] = []
    for nid in view["networks"]:
        out += table["networks"].get(nid, {}).get(name, [])
    return out or None
