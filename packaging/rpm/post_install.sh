# xdpacct %post: enables and starts nothing (edit /etc/xdpacct/xdpacct.toml,
# then systemctl enable --now xdpacct); restarts a running service on upgrade.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 2 ]; then
        systemctl try-restart xdpacct.service >/dev/null 2>&1 || :
    fi
fi
exit 0
