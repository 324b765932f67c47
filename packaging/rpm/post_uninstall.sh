# ecr-deployd %postun: reload units. RPM has no purge: on erase the state in
# /var/lib/ecr-deployd (history, blocked digests) and an edited config (.rpmsave) are kept.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
