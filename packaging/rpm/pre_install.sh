# ecr-deployd %pre: the system user and group the unit runs as.
getent group ecr-deployd >/dev/null || groupadd --system ecr-deployd
getent passwd ecr-deployd >/dev/null || useradd --system --gid ecr-deployd \
    --home-dir /var/lib/ecr-deployd --no-create-home --shell /sbin/nologin \
    --comment "ecr-deployd agent" ecr-deployd
# Docker's socket is group docker: the agent needs it (the unit names it in
# SupplementaryGroups=). On a host without Docker (Podman, or Docker installed later) the group
# is made here: systemd refuses to start a unit naming a group that does not exist, and
# Docker's own package adopts an existing docker group.
getent group docker >/dev/null || groupadd --system docker
usermod --append --groups docker ecr-deployd
exit 0
