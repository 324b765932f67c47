# ecr-deployd %preun: on erase (not upgrade), stop and disable the agent.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now ecr-deployd.service >/dev/null 2>&1 || true
fi
exit 0
