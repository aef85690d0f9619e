"""The envmgr daemon: warm environments leased to test runs, one daemon per user and Docker engine.

It keeps environments that are started, migrated and seeded, per configuration, leases one to a client, resets it
when the lease ends and keeps it for the next client. State lives on the engine (labels, lease volumes), so a daemon
killed with SIGKILL and started again rebuilds it.

    protocol.py   the JSON protocol on the socket, errors included (documented there)
    trust.py      who may be trusted on the socket: folder, socket file and peer process of the same user
    keys.py       what names a daemon (daemon_key) and a pool of its environments (config_key)
    pool.py       environments per configuration: lease, ensure, adopt, release (reset, pool size), recovery
    leases.py     lease volumes on the engine, naming the holder process
    monitor.py    dead holders' leases taken back; idle environments removed after their TTL
    server.py     Daemon (requests -> pool) and the Unix socket server (serve)
    client.py     the client side (the plugin, the CLI): DaemonClient, leases, spawn (starts a daemon)
    __main__.py   `python -m envmgr.daemon [--socket PATH]`, the same as `envmgr daemon run`

This package face imports nothing.
"""
