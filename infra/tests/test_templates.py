"""Static checks of infra/: linters, the IAM and queue policies, and CloudFormation/Terraform parity.

The stack's behaviour (created on the AWS emulator, events through EventBridge, the agent against
what it created) is tested in tests/infra.rs; this file checks what the emulator cannot: it ignores
AWS::SQS::QueuePolicy and ManagedPolicyArns, and no Terraform binary runs here.
"""
import pathlib
import re
import subprocess
import sys

import hcl2
import pytest
from cfnlint.decode import cfn_yaml

INFRA = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = INFRA / "cloudformation" / "ecr-deployd.yaml"
BUS_TEMPLATE = INFRA / "cloudformation" / "fleet-results-bus.yaml"
ARCHIVE_BUCKET_TEMPLATE = INFRA / "cloudformation" / "archive-bucket.yaml"
LEDGER_TEMPLATE = INFRA / "cloudformation" / "fleet-ledger.yaml"
MODULE = INFRA / "terraform" / "modules" / "ecr-deployd-host"
FLEET_MODULE = INFRA / "terraform" / "modules" / "ecr-deployd-fleet"
BIN = pathlib.Path(sys.executable).parent

# SPEC §9: exactly what the agent may do.
AGENT_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "ecr:GetAuthorizationToken",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:DescribeImages",
    "events:ListRuleNamesByTarget",
    # The signature gate: AWS Signer's revocation status (SPEC §11), on "*".
    "signer:GetRevocationStatus",
}
RESULTS_ACTIONS = {"events:PutEvents"}
# SPEC §9: only with the scan gate (ScanGate / scan_gate), on the followed repositories.
SCAN_ACTIONS = {"ecr:DescribeImageScanFindings", "ecr:BatchGetRepositoryScanningConfiguration"}
# Enhanced scanning (Inspector): only with the scan gate, on "*" (no resource-level permissions).
INSPECTOR_ACTIONS = {"inspector2:ListFindings", "inspector2:ListCoverage"}
# SPEC §9: only with S3 archives, on the archive prefix (and the named KMS key).
ARCHIVE_ACTIONS = {"s3:GetObject"}
ARCHIVE_KEY_ACTIONS = {"kms:Decrypt"}
# The actions without resource-level permissions: ECR's login, AWS Signer's revocation status.
STAR_RESOURCE_ALLOWED = {"ecr:GetAuthorizationToken", "signer:GetRevocationStatus"} | INSPECTOR_ACTIONS

# Resources Terraform needs as separate blocks where CloudFormation has a property:
# the rule's Targets and the role's ManagedPolicyArns.
TERRAFORM_ONLY = {
    "push_rule": "aws_cloudwatch_event_target (CloudFormation: PushRule.Targets)",
    "scan_rule": "aws_cloudwatch_event_target (CloudFormation: ScanRule.Targets)",
    "wave_rule": "aws_cloudwatch_event_target (CloudFormation: WaveRule.Targets)",
    "host_role_agent": "aws_iam_role_policy_attachment (CloudFormation: HostRole.ManagedPolicyArns)",
    "host_role_results": "aws_iam_role_policy_attachment (CloudFormation: HostRole.ManagedPolicyArns)",
    "host_role_inspector": "aws_iam_role_policy_attachment (CloudFormation: HostRole.ManagedPolicyArns)",
    "archive_rule": "aws_cloudwatch_event_target (CloudFormation: ArchiveRule.Targets)",
    "host_role_archives": "aws_iam_role_policy_attachment (CloudFormation: HostRole.ManagedPolicyArns)",
    "host_role_archives_key": "aws_iam_role_policy_attachment (CloudFormation: HostRole.ManagedPolicyArns)",
    "archive_bucket_notification": "aws_s3_bucket_notification: CloudFormation cannot change a bucket it did not create (archive-bucket.yaml)",
    "host_role_ledger": "aws_iam_role_policy_attachment (CloudFormation: HostRole.ManagedPolicyArns)",
}
# Variables of Terraform-only resources.
TERRAFORM_ONLY_VARIABLES = {"archive_bucket_notification"}
# Outputs only CloudFormation has (none since Repositories' pattern refuses an 11th name).
CLOUDFORMATION_ONLY_OUTPUTS = set()
# Lists that CloudFormation takes as one comma-separated String (so that a pattern can bound them).
LISTS_AS_STRINGS = {"Repositories"}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def as_list(v):
    return v if isinstance(v, list) else [v]


def unwrap(v):
    """python-hcl2 wraps attribute values in one-element lists."""
    while isinstance(v, list) and len(v) == 1:
        v = v[0]
    return v


@pytest.fixture(scope="module")
def cfn():
    return cfn_yaml.load(str(TEMPLATE))


@pytest.fixture(scope="module")
def tf():
    merged = {"variable": {}, "output": {}, "resource": {}, "data": {}}
    for f in sorted(MODULE.glob("*.tf")):
        with f.open() as fh:
            doc = hcl2.load(fh)
        for block in doc.get("variable", []):
            merged["variable"].update(block)
        for block in doc.get("output", []):
            merged["output"].update(block)
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        merged[kind][(rtype, name)] = body
    return merged


# ---------------------------------------------------------------- linters


def test_cfn_lint_clean():
    r = subprocess.run(
        [BIN / "cfn-lint", str(TEMPLATE), str(BUS_TEMPLATE), str(ARCHIVE_BUCKET_TEMPLATE), str(LEDGER_TEMPLATE)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    "framework,target",
    [
        (
            "cloudformation",
            ["-f", str(TEMPLATE), "-f", str(BUS_TEMPLATE), "-f", str(ARCHIVE_BUCKET_TEMPLATE), "-f", str(LEDGER_TEMPLATE)],
        ),
        ("terraform", ["-d", str(INFRA / "terraform")]),
    ],
)
def test_checkov_no_failed_checks(framework, target):
    r = subprocess.run(
        [BIN / "checkov", "--quiet", "--compact", "--skip-download", "--framework", framework, *target],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Failed checks: 0" in r.stdout, r.stdout


@pytest.mark.parametrize("template", [TEMPLATE, ARCHIVE_BUCKET_TEMPLATE, LEDGER_TEMPLATE, BUS_TEMPLATE])
def test_checkov_suppressions_are_justified(template):
    text = template.read_text()
    for m in re.finditer(r"- id: (CKV_\w+)\n\s+comment: >-\n((?:\s+.+\n)+)", text):
        assert len(m.group(2).split()) >= 10, f"{m.group(1)} suppressed without a reason"
    assert text.count("id: CKV_") == len(re.findall(r"- id: CKV_\w+\n\s+comment:", text))
    for f in (INFRA / "terraform").rglob("*.tf"):
        for line in f.read_text().splitlines():
            if "checkov:skip=" in line:
                assert re.search(r"checkov:skip=CKV2?_\w+:.{20,}", line), f"{f}: unjustified {line.strip()}"


def test_terraform_parses():
    files = list((INFRA / "terraform").rglob("*.tf"))
    assert len(files) >= 4
    for f in files:
        with f.open() as fh:
            hcl2.load(fh)


# ---------------------------------------------------------------- parity


def test_parameters_match_variables(cfn, tf):
    params = {snake(p) for p in cfn["Parameters"]}
    variables = set(tf["variable"]) - TERRAFORM_ONLY_VARIABLES
    assert params == variables, params ^ variables
    for p, spec in cfn["Parameters"].items():
        var = tf["variable"][snake(p)]
        if "Default" in spec:
            default = unwrap(var.get("default"))
            if spec["Type"] == "CommaDelimitedList" or p in LISTS_AS_STRINGS:
                assert default == [] and spec["Default"] == "", p
            else:
                assert str(default) == str(spec["Default"]), f"{p}: {spec['Default']} vs {default}"
        else:
            assert "default" not in var, f"{p} is required in CloudFormation, optional in Terraform"


def test_resources_match(cfn, tf):
    cfn_names = {snake(r) for r in cfn["Resources"]}
    tf_names = {name for (_, name) in tf["resource"]}
    assert cfn_names <= tf_names, f"missing in Terraform: {cfn_names - tf_names}"
    assert tf_names - cfn_names <= set(TERRAFORM_ONLY), f"unexplained in Terraform: {tf_names - cfn_names - set(TERRAFORM_ONLY)}"


def test_outputs_match(cfn, tf):
    cfn_names = {snake(o) for o in cfn["Outputs"] if o not in CLOUDFORMATION_ONLY_OUTPUTS}
    assert cfn_names == set(tf["output"]), cfn_names ^ set(tf["output"])


def test_resource_names_match(cfn, tf):
    """Physical names are the same, so either tool can adopt what the other created."""
    pairs = [
        ("Queue", "QueueName", ("aws_sqs_queue", "queue"), "name"),
        ("DeadLetterQueue", "QueueName", ("aws_sqs_queue", "dead_letter_queue"), "name"),
        ("PushRule", "Name", ("aws_cloudwatch_event_rule", "push_rule"), "name"),
        ("ScanRule", "Name", ("aws_cloudwatch_event_rule", "scan_rule"), "name"),
        ("AgentPolicy", "ManagedPolicyName", ("aws_iam_policy", "agent_policy"), "name"),
        ("ResultsPolicy", "ManagedPolicyName", ("aws_iam_policy", "results_policy"), "name"),
        ("ArchiveRule", "Name", ("aws_cloudwatch_event_rule", "archive_rule"), "name"),
        ("ArchivesPolicy", "ManagedPolicyName", ("aws_iam_policy", "archives_policy"), "name"),
        ("ArchivesKeyPolicy", "ManagedPolicyName", ("aws_iam_policy", "archives_key_policy"), "name"),
        ("LedgerPolicy", "ManagedPolicyName", ("aws_iam_policy", "ledger_policy"), "name"),
        ("HostRole", "RoleName", ("aws_iam_role", "host_role"), "name"),
    ]
    for logical, prop, key, attr in pairs:
        c = cfn["Resources"][logical]["Properties"][prop]["Fn::Sub"]
        t = unwrap(tf["resource"][key][attr])
        assert c.replace("${HostName}", "${var.host_name}") == t, (logical, c, t)


# ---------------------------------------------------------------- IAM


def cfn_statements(cfn, logical):
    return cfn["Resources"][logical]["Properties"]["PolicyDocument"]["Statement"]


def branches(v):
    """The values of a CloudFormation Fn::If (its two branches), else the value itself."""
    if isinstance(v, dict) and "Fn::If" in v:
        return v["Fn::If"][1:]
    return [v]


def check_least_privilege(statements, allowed):
    granted = set()
    for s in statements:
        assert s["Effect"] == "Allow"
        actions = [a for b in branches(s["Action"]) for a in as_list(b)]
        resources = as_list(s["Resource"])
        for a in actions:
            assert "*" not in a, f"wildcard action {a}"
            assert a in allowed, f"{a} is not in SPEC §9"
        granted |= set(actions)
        if "*" in resources:
            assert resources == ["*"] and set(actions) <= STAR_RESOURCE_ALLOWED, s
        for r in resources:
            if isinstance(r, str) and r != "*":
                assert r.startswith(("arn:", "${")), r
    return granted


def test_agent_policy_is_least_privilege(cfn):
    granted = check_least_privilege(cfn_statements(cfn, "AgentPolicy"), AGENT_ACTIONS | SCAN_ACTIONS)
    assert granted == AGENT_ACTIONS | SCAN_ACTIONS
    # Enhanced scanning's Inspector actions: a policy of their own, only with the scan gate.
    granted = check_least_privilege(cfn_statements(cfn, "InspectorPolicy"), INSPECTOR_ACTIONS)
    assert granted == INSPECTOR_ACTIONS
    assert cfn["Resources"]["InspectorPolicy"]["Condition"] == "HasScanGate"
    arns = cfn["Resources"]["HostRole"]["Properties"]["ManagedPolicyArns"]
    assert {"Fn::If": ["HasScanGate", {"Ref": "InspectorPolicy"}, {"Ref": "AWS::NoValue"}]} in arns
    granted = check_least_privilege(cfn_statements(cfn, "ResultsPolicy"), RESULTS_ACTIONS)
    assert granted == RESULTS_ACTIONS
    assert cfn["Resources"]["ResultsPolicy"]["Condition"] == "PublishesResults"


def test_agent_policy_scopes(cfn):
    by_sid = {s["Sid"]: s for s in cfn_statements(cfn, "AgentPolicy")}
    assert by_sid["ConsumeQueue"]["Resource"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    pull = by_sid["PullFollowedRepositories"]["Action"]["Fn::If"]
    assert pull[0] == "HasScanGate"
    assert set(pull[1]) - set(pull[2]) == SCAN_ACTIONS, "the scan actions only with the gate"
    repos = by_sid["PullFollowedRepositories"]["Resource"]
    assert len(repos) == 11  # 10 name slots + the fallback (prefix or first name)
    text = str(repos)
    assert ":repository/${Name}" in text and ":repository/${RepositoryPrefix}*" in text
    assert "repository/*" not in text
    rule = by_sid["FindRuleForDoctor"]["Resource"]["Fn::Sub"]
    assert rule.endswith(":rule/*") and "${AWS::AccountId}" in rule


def test_terraform_agent_policy_is_least_privilege(tf):
    doc = tf["data"][("aws_iam_policy_document", "agent_policy")]
    # The pull statement's actions are a local: the pull actions, and the scan actions only
    # with the gate. Read them from the module's text, as written.
    text = (MODULE / "main.tf").read_text()
    m = re.search(r"pull_actions = concat\(\n\s+\[(.*)\],\n\s+local.has_scan_gate \? \[(.*)\] : \[\],", text)
    assert m, "pull_actions local not found"
    pull_actions = re.findall(r'"([^"]+)"', m.group(1)) + re.findall(r'"([^"]+)"', m.group(2))
    assert set(re.findall(r'"([^"]+)"', m.group(2))) == SCAN_ACTIONS
    statements = [
        {
            "Sid": unwrap(s["sid"]),
            "Effect": unwrap(s["effect"]),
            "Action": pull_actions if unwrap(s["actions"]) == "${local.pull_actions}" else s["actions"][0],
            "Resource": s["resources"][0] if isinstance(s["resources"][0], list) else [s["resources"][0]],
        }
        for s in doc["statement"]
    ]
    assert check_least_privilege(statements, AGENT_ACTIONS | SCAN_ACTIONS) == AGENT_ACTIONS | SCAN_ACTIONS
    # Inspector's findings: a policy of their own, only with the scan gate.
    text = (MODULE / "main.tf").read_text()
    m = re.search(r'resource "aws_iam_policy" "inspector_policy" \{\n  count\s+= local.has_scan_gate \? 1 : 0\n(.*?)\n\}\n', text, re.S)
    assert m, "inspector_policy with the scan gate's count not found"
    assert set(re.findall(r'"(inspector2:[^"]+)"', m.group(1))) == INSPECTOR_ACTIONS


def test_queue_policies_admit_only_the_rule(cfn):
    for logical, queue in (("QueuePolicy", "Queue"), ("DeadLetterQueuePolicy", "DeadLetterQueue")):
        props = cfn["Resources"][logical]["Properties"]
        assert props["Queues"] == [{"Ref": queue}]
        allows = [s for s in props["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
        assert len(allows) == 1, logical
        s = allows[0]
        assert s["Principal"] == {"Service": "events.amazonaws.com"}
        assert s["Action"] == "sqs:SendMessage"
        assert s["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
        # Exactly the rules the stack creates: a slot per rule, the push rule in the slot of
        # a rule that is not created (the same condition as the rule's).
        push = {"Fn::GetAtt": ["PushRule", "Arn"]}
        slots = s["Condition"]["ArnEquals"]["aws:SourceArn"]
        assert slots[0] == push
        optional = {"ScanRule": "HasScanGate", "WaveRule": "FollowsWave", "ArchiveRule": "HasArchiveBucket"}
        assert len(slots) == 1 + len(optional)
        for slot, (rule, condition) in zip(slots[1:], optional.items()):
            assert slot == {"Fn::If": [condition, {"Fn::GetAtt": [rule, "Arn"]}, push]}, slot
            assert cfn["Resources"][rule]["Condition"] == condition
        denies = [s for s in props["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert denies and all(d["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for d in denies)


def test_terraform_queue_policies_admit_only_the_rule(tf):
    for name, queue in (("queue_policy", "queue"), ("dead_letter_queue_policy", "dead_letter_queue")):
        doc = tf["data"][("aws_iam_policy_document", name)]
        allows = [s for s in doc["statement"] if unwrap(s["effect"]) == "Allow"]
        assert len(allows) == 1
        s = allows[0]
        assert unwrap(s["actions"]) == "sqs:SendMessage"
        assert unwrap(s["resources"]) == f"${{aws_sqs_queue.{queue}.arn}}"
        assert unwrap(s["principals"][0]["identifiers"]) == "events.amazonaws.com"
        cond = s["condition"][0]
        assert (unwrap(cond["test"]), unwrap(cond["variable"]), unwrap(cond["values"])) == (
            "ArnEquals",
            "aws:SourceArn",
            "${local.rule_arns}",
        )
    text = (MODULE / "main.tf").read_text()
    assert (
        "rule_arns = concat([aws_cloudwatch_event_rule.push_rule.arn], aws_cloudwatch_event_rule.scan_rule[*].arn, aws_cloudwatch_event_rule.wave_rule[*].arn, aws_cloudwatch_event_rule.archive_rule[*].arn)"
        in text
    )


def test_wave_rule_takes_only_the_previous_waves_results_from_the_results_bus(cfn):
    rule = cfn["Resources"]["WaveRule"]
    assert rule["Condition"] == "FollowsWave"
    props = rule["Properties"]
    assert props["EventBusName"] == {"Ref": "ResultsBusName"}
    pattern = props["EventPattern"]
    assert pattern["source"] == ["ecr-deployd"] and pattern["detail-type"] == ["ECR Deployment Result"]
    assert pattern["detail"] == {"wave_key": [{"Fn::FindInMap": ["PreviousWave", {"Ref": "Wave"}, "WaveKey"]}]}
    previous = cfn["Mappings"]["PreviousWave"]
    allowed = cfn["Parameters"]["Wave"]["AllowedValues"]
    # Every wave but the first has its predecessor, as the string the results carry in
    # `wave_key` (test_aws_limits.py renders the rule for every wave).
    assert sorted(previous, key=int) == allowed[1:]
    assert all(previous[w]["WaveKey"] == f"wave-{int(w) - 1}" for w in previous)
    target = props["Targets"][0]
    assert target["Arn"] == {"Fn::GetAtt": ["Queue", "Arn"]} and "RoleArn" not in target


def test_queues_encrypted_and_redriven(cfn, tf):
    for logical in ("Queue", "DeadLetterQueue"):
        props = cfn["Resources"][logical]["Properties"]
        assert props["SqsManagedSseEnabled"] is True
        assert "KmsMasterKeyId" not in props  # aws/sqs cannot be used by EventBridge
    q = cfn["Resources"]["Queue"]["Properties"]
    assert q["ReceiveMessageWaitTimeSeconds"] == 20
    assert q["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    for name in ("queue", "dead_letter_queue"):
        assert unwrap(tf["resource"][("aws_sqs_queue", name)]["sqs_managed_sse_enabled"]) is True


def test_rule_target_has_no_role_and_a_dead_letter_queue(cfn):
    for rule in ("PushRule", "ScanRule"):
        (target,) = cfn["Resources"][rule]["Properties"]["Targets"]
        assert "RoleArn" not in target
        assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400
    assert cfn["Resources"]["ScanRule"]["Condition"] == "HasScanGate"


def test_host_role_trusts_only_the_trust_anchor_and_the_host_certificate(cfn):
    role = cfn["Resources"]["HostRole"]
    assert role["Condition"] == "HasTrustAnchor"
    (s,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert s["Principal"] == {"Service": "rolesanywhere.amazonaws.com"}
    assert s["Condition"]["ArnEquals"] == {"aws:SourceArn": {"Ref": "RolesAnywhereTrustAnchorArn"}}
    assert s["Condition"]["StringEquals"] == {"aws:PrincipalTag/x509Subject/CN": {"Ref": "HostName"}}


def test_archives_are_read_under_the_prefix_only(cfn):
    for logical, condition, actions in (
        ("ArchivesPolicy", "HasArchiveBucket", ARCHIVE_ACTIONS),
        ("ArchivesKeyPolicy", "HasArchiveKmsKey", ARCHIVE_KEY_ACTIONS),
    ):
        assert cfn["Resources"][logical]["Condition"] == condition
        assert check_least_privilege(cfn_statements(cfn, logical), actions) == actions
    (read,) = cfn_statements(cfn, "ArchivesPolicy")
    assert read["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ArchiveBucketName}/${ArchivePrefix}*"}
    (decrypt,) = cfn_statements(cfn, "ArchivesKeyPolicy")
    assert decrypt["Resource"] == {"Ref": "ArchiveKmsKeyArn"}
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}}
    # The key policy only with a bucket: a key alone grants nothing.
    assert {"Fn::Not": [{"Fn::Equals": [{"Ref": "ArchiveBucketName"}, ""]}]} in cfn["Conditions"]["HasArchiveKmsKey"]["Fn::And"]


def test_archive_rule_takes_only_new_objects_of_the_bucket_under_the_prefix(cfn, tf):
    rule = cfn["Resources"]["ArchiveRule"]
    assert rule["Condition"] == "HasArchiveBucket"
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"] == {"name": [{"Ref": "ArchiveBucketName"}]}
    assert pattern["detail"]["object"] == {
        "Fn::If": ["HasArchivePrefix", {"key": [{"prefix": {"Ref": "ArchivePrefix"}}]}, {"Ref": "AWS::NoValue"}]
    }
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["Queue", "Arn"]} and "RoleArn" not in target
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    text = (MODULE / "main.tf").read_text()
    assert 'source        = ["aws.s3"]' in text and '"detail-type" = ["Object Created"]' in text
    assert 'Resource = "arn:${local.partition}:s3:::${var.archive_bucket_name}/${var.archive_prefix}*"' in text


def test_archive_bucket_sends_its_events_to_eventbridge_and_is_private():
    bucket = cfn_yaml.load(str(ARCHIVE_BUCKET_TEMPLATE))["Resources"]["ArchiveBucket"]["Properties"]
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())


# ---------------------------------------------------------------- fleet ledger and e-mail (SPEC 17)


def tf_module(path):
    merged = {"variable": {}, "output": {}, "resource": {}}
    for f in sorted(path.glob("*.tf")):
        with f.open() as fh:
            doc = hcl2.load(fh)
        for kind in ("variable", "output"):
            for block in doc.get(kind, []):
                merged[kind].update(block)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    merged["resource"][(rtype, name)] = body
    return merged


def test_each_host_may_write_only_its_own_ledger_object(cfn):
    policy = cfn["Resources"]["LedgerPolicy"]
    assert policy["Condition"] == "HasLedger"
    (put,) = cfn_statements(cfn, "LedgerPolicy")
    assert check_least_privilege([put], {"s3:PutObject"}) == {"s3:PutObject"}
    assert put["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${LedgerBucketName}/${LedgerPrefix}${HostName}.json"}
    arns = cfn["Resources"]["HostRole"]["Properties"]["ManagedPolicyArns"]
    assert {"Fn::If": ["HasLedger", {"Ref": "LedgerPolicy"}, {"Ref": "AWS::NoValue"}]} in arns
    # The snippet names the host as its key does, and the ledger.
    ledger = cfn["Outputs"]["ConfigSnippet"]["Value"]["Fn::Sub"][1]["Ledger"]["Fn::If"]
    assert ledger[0] == "HasLedger" and 'name = \\"${HostName}\\"' in ledger[1]["Fn::Sub"].replace("\"", '\\"')
    assert "s3://${LedgerBucketName}/${LedgerPrefix}" in ledger[1]["Fn::Sub"]
    text = (MODULE / "main.tf").read_text()
    assert 'Action   = "s3:PutObject"' in text
    assert 'Resource = "arn:${local.partition}:s3:::${var.ledger_bucket_name}/${var.ledger_prefix}${var.host_name}.json"' in text
    assert re.search(r'ledger = "s3://\$\{var.ledger_bucket_name\}/\$\{var.ledger_prefix\}"', (MODULE / "outputs.tf").read_text())


def test_ledger_bucket_is_versioned_private_tls_only_and_expires_replaced_versions():
    t = cfn_yaml.load(str(LEDGER_TEMPLATE))
    bucket = t["Resources"]["LedgerBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": {"Ref": "NoncurrentVersionDays"}}
    (deny,) = t["Resources"]["LedgerBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "s3:*")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert len(deny["Resource"]) == 2, "the bucket and its objects"
    # Operators read the prefix and its versions, nothing else, and write nothing.
    read = t["Resources"]["LedgerReadPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    actions = check_least_privilege(read, {"s3:ListBucket", "s3:ListBucketVersions", "s3:GetObject", "s3:GetObjectVersion"})
    assert not any(a.startswith(("s3:Put", "s3:Delete")) for a in actions)
    by_sid = {s["Sid"]: s for s in read}
    assert by_sid["ListLedger"]["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${Prefix}*"}}}
    assert by_sid["ReadLedger"]["Resource"] == {"Fn::Sub": "${LedgerBucket.Arn}/${Prefix}*"}
    assert "ReadPolicyArn" in t["Outputs"] and "LedgerUrl" in t["Outputs"]
    # Terraform: the same bucket settings and policies.
    m = tf_module(FLEET_MODULE)["resource"]
    assert unwrap(unwrap(m[("aws_s3_bucket_versioning", "ledger_bucket")]["versioning_configuration"])["status"]) == "Enabled"
    pab = m[("aws_s3_bucket_public_access_block", "ledger_bucket")]
    assert all(unwrap(pab[k]) is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"))
    text = (FLEET_MODULE / "main.tf").read_text()
    assert '"aws:SecureTransport" = "false"' in text and "noncurrent_days = var.ledger_noncurrent_version_days" in text
    assert '"s3:prefix" = "${var.ledger_prefix}*"' in text


def test_failures_go_to_an_sns_topic_as_one_readable_line_from_the_results_bus_only():
    t = cfn_yaml.load(str(BUS_TEMPLATE))
    rule = t["Resources"]["AlertRule"]
    assert rule["Condition"] == "HasAlerts"
    props = rule["Properties"]
    assert props["EventBusName"] == {"Ref": "BusName"} and rule["DependsOn"] == "ResultsBus"
    assert props["EventPattern"] == {
        "source": ["ecr-deployd"],
        "detail-type": ["ECR Deployment Result"],
        "detail": {"outcome": ["rolled_back", "rejected", "failed"]},
    }
    (target,) = props["Targets"]
    assert target["Arn"] == {"Ref": "AlertTopic"}
    paths = target["InputTransformer"]["InputPathsMap"]
    assert {"host", "container", "from", "to", "reason"} <= set(paths)
    template = target["InputTransformer"]["InputTemplate"]
    assert template.startswith('"') and template.endswith('"'), "a JSON string for SNS"
    for name in ("host", "container", "from", "to", "reason"):
        assert f"<{name}>" in template
    (allow,) = t["Resources"]["AlertTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"} and allow["Action"] == "sns:Publish"
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["AlertRule", "Arn"]}}}
    subs = [r for r in t["Resources"].values() if r["Type"] == "AWS::SNS::Subscription"]
    assert len(subs) == 3 and all(s["Properties"]["Protocol"] == "email" for s in subs)
    text = (FLEET_MODULE / "main.tf").read_text()
    assert 'detail        = { outcome = ["rolled_back", "rejected", "failed"] }' in text
    tf_template = re.search(r'input_template = "(.*)"\n', text).group(1).replace('\\"', '"')
    assert tf_template == template


def test_fleet_module_matches_the_fleet_templates():
    bus = cfn_yaml.load(str(BUS_TEMPLATE))
    ledger = cfn_yaml.load(str(LEDGER_TEMPLATE))
    m = tf_module(FLEET_MODULE)
    params = {snake(p) for p in bus["Parameters"]} | {"ledger_" + snake(p) for p in ledger["Parameters"]}
    assert params == set(m["variable"]), params ^ set(m["variable"])
    outputs = {snake(o) for o in bus["Outputs"]} | {
        {"LedgerUrl": "ledger_url", "BucketName": None, "BucketArn": "ledger_bucket_arn", "ReadPolicyArn": "ledger_read_policy_arn"}[o]
        for o in ledger["Outputs"]
    } - {None}
    assert outputs == set(m["output"]), outputs ^ set(m["output"])
    names = {
        ("AlertTopic", "TopicName"): ("aws_sns_topic", "alert_topic", "name"),
        ("AlertRule", "Name"): ("aws_cloudwatch_event_rule", "alert_rule", "name"),
    }
    for (logical, prop), (rtype, rname, attr) in names.items():
        c = bus["Resources"][logical]["Properties"][prop]["Fn::Sub"]
        assert c.replace("${BusName}", "${var.bus_name}") == unwrap(m["resource"][(rtype, rname)][attr])
    c = ledger["Resources"]["LedgerReadPolicy"]["Properties"]["ManagedPolicyName"]["Fn::Sub"]
    assert c.replace("${BucketName}", "${var.ledger_bucket_name}") == unwrap(m["resource"][("aws_iam_policy", "ledger_read_policy")]["name"])
