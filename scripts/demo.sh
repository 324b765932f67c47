#!/usr/bin/env bash
# The whole loop on a local stack, in one command:
#   - an AWS emulator (moto) plays SQS, ECR, EventBridge, IAM and CloudFormation;
#   - the AWS side is provisioned from infra/cloudformation/ecr-deployd.yaml into it;
#   - a local registry (Debian's docker-registry) holds the images (the agent's [registry] mirror);
#   - a sample web container opts in with a label and serves "version 1";
#   - the agent runs; v2 is pushed: ECR moves the tag and EventBridge carries the push event
#     through the stack's rule to the host's queue; the agent redeploys the container and the
#     page changes to "version 2";
#   - `status`, `history` and a metrics excerpt are shown.
# Everything it starts is stopped and removed on exit. Non-interactive; exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\nDEMO FAILED: %s\n' "$*" >&2; exit 1; }
py=.venv/bin/python
# A free port below the kernel's ephemeral range: a port picked by binding port 0 comes from
# that range, where any client connection on the machine can take it before the server binds.
free_port() {
  $py - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports = range(max(1024, low - 10000), low)
for port in random.sample(ports, min(200, len(ports))):
    try:
        socket.socket().bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    break
else:
    raise SystemExit(f"no free loopback port below {low}")
PY
}
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

work=$(mktemp -d)
demo_label="ecr-deployd.demo=$$"
container="ecr-deployd-demo-web-$$"
pids=()
cleanup() {
  set +e
  [ -n "${agent_pid:-}" ] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  # Only what this demo created: its label, and its images.
  ids=$(docker ps -aq --filter "label=${demo_label}")
  [ -n "$ids" ] && docker rm -f $ids >/dev/null
  imgs=$(docker images -q --filter "label=${demo_label}" | sort -u)
  [ -n "$imgs" ] && docker rmi -f $imgs >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=eu-west-2 AWS_DEFAULT_REGION=eu-west-2 AWS_EC2_METADATA_DISABLED=true

moto_port=$(free_port)
endpoint="http://127.0.0.1:${moto_port}"
say "AWS emulator on ${endpoint}"
.venv/bin/moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_port "$moto_port" || fail "the AWS emulator did not start"

reg_port=$(free_port)
registry="127.0.0.1:${reg_port}"
say "local registry on ${registry}"
mkdir -p "$work/registry"
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: ${work}/registry
http:
  addr: ${registry}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
wait_port "$reg_port" || fail "the registry did not start"

say "provisioning the AWS side from infra/cloudformation (stack ecr-deployd-demo)"
$py infra/tools/provision.py --endpoint-url "$endpoint" --stack ecr-deployd-demo \
  HostName=demo Repositories=demo/web >"$work/outputs.json" || fail "stack not created"
$py -c 'import json,sys; [print(f"  {k}: {v.splitlines()[0]}") for k,v in json.load(open(sys.argv[1])).items() if k!="ConfigSnippet"]' "$work/outputs.json"
ENDPOINT="$endpoint" $py -c 'import boto3,os; boto3.client("ecr", endpoint_url=os.environ["ENDPOINT"]).create_repository(repositoryName="demo/web")' >/dev/null

# build VERSION → pushes demo/web:VERSION-tagged image to the registry, prints its digest
build() {
  local version=$1 dir="$work/build-$1"
  mkdir -p "$dir/www"
  cp /bin/busybox "$dir/busybox"
  echo "ecr-deployd demo: version ${version}" >"$dir/www/index.html"
  cat >"$dir/Dockerfile" <<DOCKERFILE
FROM scratch
COPY busybox /bin/busybox
COPY www /www
LABEL ${demo_label}
HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
EXPOSE 8080
CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build -q -t "${registry}/demo/web:v${version}" "$dir" >/dev/null 2>"$work/build.log" \
    || { cat "$work/build.log" >&2; return 1; }
  docker push "${registry}/demo/web:v${version}" >/dev/null
  docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "${registry}/demo/web:v${version}" \
    | sed -n "s|^${registry}/demo/web@||p" | head -1
}

# ecr_tag DIGEST → ECR's demo/web:latest points at DIGEST, with the registry's manifest.
ecr_tag() {
  curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://${registry}/v2/demo/web/manifests/$1" >"$work/manifest.json"
  ENDPOINT="$endpoint" DIGEST="$1" MANIFEST="$work/manifest.json" $py -c '
import boto3, os
boto3.client("ecr", endpoint_url=os.environ["ENDPOINT"]).put_image(repositoryName="demo/web", imageTag="latest",
    imageManifest=open(os.environ["MANIFEST"]).read(), imageDigest=os.environ["DIGEST"])'
}

# ecr_push DIGEST → ecr_tag, and the push event ECR emits is put on the default bus, where the
# stack's rule picks it up (the emulator's ECR emits no events itself).
ecr_push() {
  ecr_tag "$1"
  ENDPOINT="$endpoint" DIGEST="$1" $py -c '
import boto3, json, os
out = boto3.client("events", endpoint_url=os.environ["ENDPOINT"]).put_events(Entries=[{"Source": "aws.ecr",
    "DetailType": "ECR Image Action", "Detail": json.dumps({"result": "SUCCESS", "repository-name": "demo/web",
    "image-digest": os.environ["DIGEST"], "action-type": "PUSH", "image-tag": "latest"})}])
assert out["FailedEntryCount"] == 0, out'
}

say "building and pushing version 1"
v1=$(build 1)
[ -n "$v1" ] || fail "no digest for version 1"
ecr_tag "$v1"
echo "  version 1 = ${v1}"

web_port=$(free_port)
say "starting the sample web container (opted in with ecr-deployd.enable=true) on 127.0.0.1:${web_port}"
docker tag "${registry}/demo/web:v1" "${registry}/demo/web:latest"
# Its own scope: the demo's agent manages only this container, never the host's others.
docker run -d --init --name "$container" --label "$demo_label" --label ecr-deployd.enable=true \
  --label "ecr-deployd.scope=demo-$$" -p "127.0.0.1:${web_port}:8080" "${registry}/demo/web:latest" >/dev/null
page() { curl -fsS --max-time 2 "http://127.0.0.1:${web_port}/" 2>/dev/null || true; }
for _ in $(seq 50); do [ -n "$(page)" ] && break; sleep 0.2; done
echo "  page: $(page)"
[ "$(page)" = "ecr-deployd demo: version 1" ] || fail "the container does not serve version 1"

http_port=$(free_port)
say "the agent's config: the stack's ConfigSnippet, plus the local endpoint, registry and state"
$py - "$work/outputs.json" "$endpoint" "$registry" "$work" "$http_port" "demo-$$" >"$work/config.toml" <<'PY'
import json, sys
out, endpoint, registry, work, http_port, scope = sys.argv[1:7]
snippet = json.load(open(out))["ConfigSnippet"]
snippet = snippet.replace("[aws]\n", f'[aws]\nendpoint_url = "{endpoint}"\n')
snippet = snippet.replace("[queue]\n", "[queue]\nwait_time_seconds = 2\n")
print(snippet.rstrip() + f'''

[registry]
mirror = "{registry}"

[deploy]
scope = "{scope}"
min_uptime_seconds = 2
health_timeout_seconds = 30
debounce_millis = 300

[state]
path = "{work}/state.db"

[control]
socket = "{work}/control.sock"

[http]
listen = "127.0.0.1:{http_port}"
''')
PY
sed 's/^/  /' "$work/config.toml"
bin=target/debug/ecr-deployd
say "doctor"
$bin --config "$work/config.toml" doctor | sed 's/^/  /' || fail "doctor failed"

say "starting the agent"
$bin --config "$work/config.toml" run 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 150); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${http_port}/readyz")" = 200 ] && break
  kill -0 "$agent_pid" 2>/dev/null || { cat "$work/agent.log" >&2; fail "the agent exited"; }
  sleep 0.2
done
echo "  /readyz: $(curl -s "http://127.0.0.1:${http_port}/readyz")"

say "pushing version 2: ECR moves demo/web:latest, EventBridge → rule → queue → agent"
v2=$(build 2)
[ -n "$v2" ] || fail "no digest for version 2"
echo "  version 2 = ${v2}"
start=$(date +%s%N)
ecr_push "$v2"
for _ in $(seq 300); do [ "$(page)" = "ecr-deployd demo: version 2" ] && break; sleep 0.1; done
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
echo "  page: $(page)"
[ "$(page)" = "ecr-deployd demo: version 2" ] || { sed 's/^/  agent| /' "$work/agent.log" >&2; fail "the page did not change to version 2"; }
echo "  served version 2 ${elapsed} ms after the push event"

say "ecr-deployd status"
for _ in $(seq 100); do $bin --config "$work/config.toml" history 2>/dev/null | grep -q succeeded && break; sleep 0.2; done
$bin --config "$work/config.toml" status | sed 's/^/  /'
say "ecr-deployd history"
$bin --config "$work/config.toml" history | sed 's/^/  /'
$bin --config "$work/config.toml" history | grep -q succeeded || fail "no succeeded deployment in history"

say "metrics (excerpt)"
curl -s "http://127.0.0.1:${http_port}/metrics" | grep -E '^ecr_deployd_(deployments_total\{[^}]*\}|messages_received_total|containers_managed|containers_behind|event_to_running_seconds_(count|sum)) ' | sed 's/^/  /'

say "stopping the agent (SIGTERM)"
kill -TERM "$agent_pid"
wait "$agent_pid" || fail "the agent did not exit cleanly"
agent_pid=""
echo "  agent log: $(grep -c . "$work/agent.log") lines; last: $(tail -1 "$work/agent.log" | cut -c1-120)"
say "demo OK"
