"""The fleet-level stacks on the AWS emulator (moto, in-process): fleet-results-bus.yaml with its
e-mail route and fleet-ledger.yaml. moto's EventBridge does not deliver to SNS targets and its
CloudFormation skips SNS subscriptions and topic policies, so the route is checked as far as the
emulator goes: the stack is created, the rule on the results bus matches exactly the outcomes a
person must act on (the emulator's event matcher), and its input transformer, rendered by the emulator's own
template parser, gives the readable line. The static checks are in test_templates.py."""
import json
import pathlib

import boto3
import pytest

moto = pytest.importorskip("moto")
from moto.events.models import EventPattern, EventTemplateParser  # noqa: E402

INFRA = pathlib.Path(__file__).resolve().parent.parent
REGION = "eu-west-2"


def detail(outcome):
    return {
        "host": "web-01", "name": "web-01", "wave": 1, "wave_key": "wave-1", "kind": "container",
        "container": "web", "repository": "shop/web", "tag": "prod",
        "from_digest": "sha256:" + "a" * 64, "to_digest": "sha256:" + "b" * 64,
        "outcome": outcome, "trigger": "event", "error": "health check failed",
    }


def event(outcome):
    return {
        "version": "0", "id": "1", "source": "ecr-deployd", "detail-type": "ECR Deployment Result",
        "account": "123456789012", "time": "2026-12-06T00:00:00Z", "region": REGION,
        "resources": [], "detail": detail(outcome), "ingestion-time": 1796000000.0,
    }


def create(cf, name, template, params):
    cf.create_stack(
        StackName=name,
        TemplateBody=(INFRA / "cloudformation" / template).read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = cf.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@moto.mock_aws
def test_the_alert_rule_takes_only_failures_from_the_results_bus_and_renders_one_line():
    cf = boto3.client("cloudformation", region_name=REGION)
    out = create(cf, "fleet", "fleet-results-bus.yaml", {"BusName": "fleet-results", "AlertEmails": "ops@example.org"})
    topic = out["AlertTopicArn"]
    assert topic.endswith(":fleet-results-alerts")
    assert topic in [t["TopicArn"] for t in boto3.client("sns", region_name=REGION).list_topics()["Topics"]]
    events = boto3.client("events", region_name=REGION)
    (rule,) = events.list_rules(EventBusName="fleet-results")["Rules"]
    assert rule["Name"] == "fleet-results-alerts"
    for outcome, matched in [("rolled_back", True), ("rejected", True), ("failed", True), ("succeeded", False)]:
        # The emulator's own matcher, as it uses it to deliver (its TestEventPattern answers nothing).
        assert EventPattern.load(rule["EventPattern"]).matches_event(event(outcome)) is matched, outcome
    (target,) = events.list_targets_by_rule(Rule=rule["Name"], EventBusName="fleet-results")["Targets"]
    assert target["Arn"] == topic
    t = target["InputTransformer"]
    line = EventTemplateParser.parse(
        input_template=t["InputTemplate"], input_paths_map=t["InputPathsMap"], event=event("rolled_back")
    )
    assert line == (
        f"ecr-deployd on web-01: web rolled_back (shop/web:prod) sha256:{'a' * 64} -> sha256:{'b' * 64}: health check failed"
    )


@moto.mock_aws
def test_without_alert_emails_there_is_no_route():
    cf = boto3.client("cloudformation", region_name=REGION)
    out = create(cf, "fleet", "fleet-results-bus.yaml", {"BusName": "fleet-results"})
    assert "AlertTopicArn" not in out
    assert boto3.client("events", region_name=REGION).list_rules(EventBusName="fleet-results")["Rules"] == []


@moto.mock_aws
def test_the_ledger_stack_makes_the_bucket_and_a_read_policy_for_its_prefix_only():
    cf = boto3.client("cloudformation", region_name=REGION)
    out = create(cf, "ledger", "fleet-ledger.yaml", {"BucketName": "acme-fleet-ledger", "Prefix": "prod/"})
    assert out["LedgerUrl"] == "s3://acme-fleet-ledger/prod/"
    # The emulator's CloudFormation applies neither versioning nor the bucket policy (checked
    # statically in test_templates.py); the bucket itself is made.
    s3 = boto3.client("s3", region_name=REGION)
    assert "acme-fleet-ledger" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    iam = boto3.client("iam", region_name=REGION)
    version = iam.get_policy(PolicyArn=out["ReadPolicyArn"])["Policy"]["DefaultVersionId"]
    doc = iam.get_policy_version(PolicyArn=out["ReadPolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    resources = [s["Resource"] for s in doc["Statement"]]
    assert "arn:aws:s3:::acme-fleet-ledger/prod/*" in resources
    actions = {a for st in doc["Statement"] for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    assert actions == {"s3:ListBucket", "s3:ListBucketVersions", "s3:GetObject", "s3:GetObjectVersion"}
