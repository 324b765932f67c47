# ecr-deployd %pre: the system user and group the unit runs as.
getent group ecr-deployd >/dev/null || groupadd --system ecr-deployd
getent passwd ecr-deployd >/dev/null || useradd --system --gid ecr-deployd \
    --home-dir /var/lib/ecr-deployd --no-create-home --shell /sbin/nologin \
    --comment "ecr-deployd agent" ecr-deployd
# Docker's socket is group docker: the agent needs it.
if getent group docker >/dev/null; then usermod --append --groups docker ecr-deployd; fi
exit 0
