# ecr-deployd %post: state directory, unit enabled; started only once the config names a queue.
install -d -o ecr-deployd -g ecr-deployd -m 0750 /var/lib/ecr-deployd
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" -eq 1 ]; then
    systemctl enable ecr-deployd.service >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
    if /usr/bin/ecr-deployd --config /etc/ecr-deployd/config.toml check-config 2>/dev/null | grep -q '^url = "[^"]'; then
        systemctl try-restart ecr-deployd.service >/dev/null 2>&1 || true
        [ "$1" -eq 1 ] && systemctl start ecr-deployd.service >/dev/null 2>&1 || true
    else
        echo "ecr-deployd: enabled, not started: set [queue] url in /etc/ecr-deployd/config.toml, then: systemctl start ecr-deployd" >&2
    fi
fi
exit 0
