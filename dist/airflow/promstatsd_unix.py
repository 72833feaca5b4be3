"""StatsD from Airflow to promstatsd over a unix datagram socket.

Airflow 3.3.2 has no setting for a unix socket (it sends UDP to statsd_host and
statsd_port), but it takes a StatsD client class of your own. Put this file on
Airflow's PYTHONPATH and set, in airflow.cfg:

    [metrics]
    statsd_on = True
    statsd_custom_client_path = promstatsd_unix.UnixStatsClient
    statsd_host = /run/promstatsd/statsd.sock
    statsd_prefix = airflow

with promstatsd started with --statsd.listen-unixgram=/run/promstatsd/statsd.sock
(and --statsd.unixsocket-mode so Airflow's user may write to it). A statsd_host
that is not a path is sent UDP, as usual. Each metric is one datagram, as
Airflow's default client sends them.
"""

import socket

from statsd import StatsClient


class UnixStatsClient(StatsClient):
    """A `statsd.StatsClient` (Airflow requires a subclass) that sends its
    datagrams to the unix socket named by `host` when it is a path."""

    def __init__(self, host="localhost", port=8125, prefix=None, ipv6=False, maxudpsize=512):
        if not str(host).startswith("/"):
            super().__init__(host, port, prefix, maxudpsize, bool(ipv6))
            return
        self._addr = str(host)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._prefix = prefix
        self._maxudpsize = maxudpsize
