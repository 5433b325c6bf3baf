# xdpacct %postun. The system user is kept (remove it with userdel xdpacct).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
