#!/usr/bin/env bash
# The main job on a local stack: an AWS emulator (moto) plays SQS, ECR and EventBridge;
# the agent runs against it, an ECR push event travels rule → queue → agent, and the agent
# resolves the tag in ECR and hands the desired digest to its deploy stage.
# Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
py=.venv/bin/python
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:${port}"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=eu-west-2 AWS_DEFAULT_REGION=eu-west-2 AWS_EC2_METADATA_DISABLED=true

say "starting the AWS emulator on ${endpoint}"
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null && break; sleep 0.1; done

aws() { ENDPOINT="$endpoint" $py - "$@"; }

say "provisioning: ECR repository, queue + DLQ, EventBridge rule → queue"
queue_url=$(aws <<'PY'
import boto3, json, os
kw = dict(endpoint_url=os.environ["ENDPOINT"])
sqs, events = boto3.client("sqs", **kw), boto3.client("events", **kw)
boto3.client("ecr", **kw).create_repository(repositoryName="demo/web")
dlq = sqs.create_queue(QueueName="ecr-deployd-demo-dlq")["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
q = sqs.create_queue(QueueName="ecr-deployd-demo", Attributes={
    "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
events.put_rule(Name="ecr-deployd-demo", EventPattern=json.dumps({
    "source": ["aws.ecr"], "detail-type": ["ECR Image Action"],
    "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"], "repository-name": [{"prefix": "demo/"}]}}))
events.put_targets(Rule="ecr-deployd-demo", Targets=[{"Id": "queue", "Arn": arn}])
print(q)
PY
)
echo "queue: ${queue_url}"

cat >"$work/config.toml" <<TOML
[aws]
endpoint_url = "${endpoint}"
[queue]
url = "${queue_url}"
wait_time_seconds = 5
[deploy]
debounce_millis = 500
[state]
path = "${work}/state.db"
[http]
listen = ""
TOML

say "check-config"
target/debug/ecr-deployd --config "$work/config.toml" check-config | sed 's/^/  /'

say "starting the agent"
target/debug/ecr-deployd --config "$work/config.toml" run 2>&1 | tee "$work/agent.log" | sed -u 's/^/  agent| /' &
pids+=($!)
sleep 1

push() { # repository tag content → prints the digest; ECR push + the event EventBridge emits
  aws "$@" <<'PY'
import boto3, hashlib, json, os, sys
repo, tag, content = sys.argv[1:4]
kw = dict(endpoint_url=os.environ["ENDPOINT"])
cfg = "sha256:" + hashlib.sha256(content.encode()).hexdigest()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(content), "digest": cfg}, "layers": []})
digest = "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
ecr = boto3.client("ecr", **kw)
try:
    ecr.put_image(repositoryName=repo, imageTag=tag, imageManifest=manifest, imageDigest=digest)
except ecr.exceptions.ImageAlreadyExistsException:
    pass  # same content pushed again: only the (duplicate) event matters here
boto3.client("events", **kw).put_events(Entries=[{"Source": "aws.ecr", "DetailType": "ECR Image Action",
    "Detail": json.dumps({"result": "SUCCESS", "repository-name": repo, "image-digest": digest,
                          "action-type": "PUSH", "image-tag": tag})}])
print(digest)
PY
}

say "pushing demo/web:prod (v1), then v2 twice in a burst"
v1=$(push demo/web prod "web v1")
v2=$(push demo/web prod "web v2")
push demo/web prod "web v2" >/dev/null
echo "v1 = ${v1}"
echo "v2 = ${v2}"

say "waiting for the agent to resolve demo/web:prod to v2"
for _ in $(seq 150); do grep -q "desired=${v2}" "$work/agent.log" && break; sleep 0.2; done
if ! grep -q "desired=${v2}" "$work/agent.log"; then
  echo "FAILED: the agent did not resolve the pushed digest" >&2
  exit 1
fi
count=$(grep -c "desired digest resolved" "$work/agent.log" || true)
echo "resolved to v2; hand-offs to the deploy stage: ${count} (three events, coalesced)"

say "stopping the agent (SIGTERM)"
agent_pid=$(pgrep -f "ecr-deployd --config ${work}/config.toml run" | head -1)
kill -TERM "$agent_pid"
for _ in $(seq 100); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
remaining=$(aws <<PY
import boto3, os
a = boto3.client("sqs", endpoint_url=os.environ["ENDPOINT"]).get_queue_attributes(
    QueueUrl="${queue_url}", AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
print(int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]))
PY
)
echo "messages left on the queue: ${remaining}"
[ "$remaining" = "0" ] || { echo "FAILED: messages left on the queue" >&2; exit 1; }
say "demo OK"
