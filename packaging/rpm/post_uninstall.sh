# xdpacct %postun. The system user is kept (remove it with userdel xdpacct).
# On erase, remove the package's directories when empty (cargo-generate-rpm
# cannot list directories; a modified config stays as xdpacct.toml.rpmsave).
if [ "$1" -eq 0 ]; then
    rmdir /usr/share/xdpacct/grafana /usr/share/xdpacct/prometheus /usr/share/xdpacct \
        /usr/share/doc/xdpacct /etc/xdpacct 2>/dev/null || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
