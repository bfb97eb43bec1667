"""Container networking on one host: IPAM, drivers, published ports, embedded DNS.

``ipam`` and ``ports`` and ``firewall.render`` are pure; ``links`` (netlink through pyroute2),
``firewall.apply`` (nftables) and ``dns`` (sockets in container namespaces) touch the host;
``manager.NetworkManager`` ties them to the records in ``store``.
"""
