# xdpacct %pre: the system user the service runs as.
getent group xdpacct >/dev/null || groupadd --system xdpacct
getent passwd xdpacct >/dev/null || useradd --system --gid xdpacct --no-create-home \
    --home-dir /nonexistent --shell /sbin/nologin --comment "xdpacct traffic accounting" xdpacct
exit 0
