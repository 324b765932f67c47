"""AWS limits that cfn-lint, checkov and the emulator do not check (issue 31, item 4).

Each test reads the templates as written: CloudFormation resolved for the worst-case parameter
values it accepts (cfn_render.py), Terraform through python-hcl2 (no provider can be installed
here, so its size checks are the module's own preconditions, and this file checks they exist).

Sources of the numbers (FIELD-NOTES, "Real AWS where moto is lenient"; botocore's models in the
venv; the AWS quota pages):
- EventBridge: rule names, target ids and event bus policy statement ids 1-64 characters
  (botocore `RuleName`, `TargetId`, `StatementId`); an event pattern 2,048 characters by
  default (the "Event pattern size" quota, adjustable up to the API's 4,096): a template meant for
  any account stays within 2,048.
- IAM: a managed policy 6,144 characters, whitespace not counted; role names 64, policy names
  128; a `Sid` in an identity policy letters and digits only.
- SQS: queue names 1-80 letters, digits, hyphens and underscores.
- CloudFormation: `Rules` take rule functions only (no `Fn::Join`, `Fn::Split`, `Fn::Sub` ...).
"""
import json
import pathlib
import re

import hcl2
import pytest
from cfnlint.decode import cfn_yaml

from cfn_render import Render, accepts, longest

INFRA = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = INFRA / "cloudformation" / "ecr-deployd.yaml"
MODULE = INFRA / "terraform" / "modules" / "ecr-deployd-host"

EVENT_PATTERN_MAX = 2048
MANAGED_POLICY_MAX = 6144
# The functions CloudFormation accepts in Rules ("Rule functions" in its template reference).
RULE_FUNCTIONS = {
    "Fn::And",
    "Fn::Contains",
    "Fn::EachMemberEquals",
    "Fn::EachMemberIn",
    "Fn::Equals",
    "Fn::Not",
    "Fn::Or",
    "Fn::RefAll",
    "Fn::ValueOf",
    "Fn::ValueOfAll",
    "Ref",
}
# (max length, allowed characters) of the names the templates build.
RULE_NAME = (64, r"[.\-_A-Za-z0-9]+")
TARGET_ID = (64, r"[.\-_A-Za-z0-9]+")
BUS_STATEMENT_ID = (64, r"[a-zA-Z0-9\-_]+")
QUEUE_NAME = (80, r"[A-Za-z0-9\-_]+")
ROLE_NAME = (64, r"[\w+=,.@-]+")
POLICY_NAME = (128, r"[\w+=,.@-]+")
IAM_SID = (128, r"[A-Za-z0-9]*")
RULE_DESCRIPTION = (512, r".*")
IAM_DESCRIPTION = (1000, r".*")
ECR_NAME_MAX = 256  # an ECR repository name


def fits(what, value, limit):
    most, allowed = limit
    assert isinstance(value, str) and 0 < len(value) <= most, f"{what}: {len(value)} characters > {most}: {value}"
    assert re.fullmatch(allowed, value), f"{what}: {value!r} has characters outside {allowed}"


def pattern_size(pattern):
    # As sent, with the separators' spaces counted: no serialisation is larger.
    return len(json.dumps(pattern))


def policy_size(document):
    return len(re.sub(r"\s", "", json.dumps(document)))


@pytest.fixture(scope="module")
def cfn():
    return cfn_yaml.load(str(TEMPLATE))


@pytest.fixture(scope="module")
def tf():
    out = {"variable": {}, "resource": {}, "data": {}, "locals": {}}
    for f in sorted(MODULE.glob("*.tf")):
        with f.open() as fh:
            doc = hcl2.load(fh)
        for block in doc.get("variable", []):
            out["variable"].update(block)
        for block in doc.get("locals", []):
            out["locals"].update(block)
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        out[kind][(rtype, name)] = body
    return out


def one(v):
    while isinstance(v, list) and len(v) == 1:
        v = v[0]
    return v


# ------------------------------------------------------------ CloudFormation: the worst case


def worst_case(cfn, repositories=True, prefix=True):
    """Every option on, every name as long as the template lets it be."""
    p = cfn["Parameters"]
    per_name = next(n for n in range(ECR_NAME_MAX, 0, -1) if accepts(p["Repositories"], ",".join(["r" * n] * 10)))
    return Render(
        cfn,
        HostName=longest(p["HostName"], "h", 128),
        Repositories=",".join([f"{i}" + "r" * (per_name - 1) for i in range(10)]) if repositories else "",
        RepositoryPrefix=longest(p["RepositoryPrefix"], "p", ECR_NAME_MAX) if prefix else "",
        RegistryAccountId="123456789012",
        ResultEventBusName=longest(p["ResultEventBusName"], "b", 256),
        Wave="20",
        ResultsBusName=longest(p["ResultsBusName"], "b", 256),
        ScanGate="true",
        ArchiveBucketName="a" * 63,
        ArchivePrefix=longest(p["ArchivePrefix"], "k", 1024),
        ArchiveKmsKeyArn="arn:aws-us-gov:kms:us-isof-south-1:123456789012:key/" + "0" * 36,
        RolesAnywhereTrustAnchorArn="arn:aws-us-gov:rolesanywhere:us-isof-south-1:123456789012:trust-anchor/" + "0" * 36,
    )


def test_cloudformation_rules_use_rule_functions_only(cfn):
    found = set()

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k == "Ref" or k.startswith("Fn::") or k == "Condition":
                    found.add(k)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for name, rule in cfn.get("Rules", {}).items():
        walk(rule)
    assert found, "the Rules section asserts nothing"
    assert found <= RULE_FUNCTIONS, f"not rule functions: {sorted(found - RULE_FUNCTIONS)}"


def test_cloudformation_rule_refuses_a_stack_with_nothing_to_follow(cfn):
    """The rule, evaluated as CloudFormation would, for the three ways to follow and the none."""
    for repositories, prefix, ok in (("shop/web", "", True), ("", "team-a/", True), ("a,b", "c/", True), ("", "", False)):
        r = Render(cfn, HostName="h", Repositories=repositories, RepositoryPrefix=prefix)
        verdicts = [r.value(a["Assert"]) for rule in cfn["Rules"].values() for a in rule["Assertions"]]
        assert all(verdicts) == ok, (repositories, prefix, verdicts)


def test_cloudformation_wave_rule_matches_the_string_wave_key(cfn):
    for wave in cfn["Parameters"]["Wave"]["AllowedValues"][1:]:
        r = Render(cfn, HostName="h", Repositories="shop/web", Wave=wave, ResultsBusName="results")
        pattern = r.properties("WaveRule")["EventPattern"]
        # SPEC §14: the agent emits `wave_key`, the string "wave-N"; matching is type-sensitive,
        # so the rule matches that string and nothing that may arrive as a number or a numeral.
        assert pattern["detail"] == {"wave_key": [f"wave-{int(wave) - 1}"]}, pattern
        assert all(isinstance(v, str) for v in pattern["detail"]["wave_key"])


@pytest.mark.parametrize("shape", ["names and prefix", "names", "prefix"])
def test_cloudformation_longest_names_fit(cfn, shape):
    r = worst_case(cfn, repositories=shape != "prefix", prefix=shape != "names")
    checked = 0
    for logical, res in cfn["Resources"].items():
        if not r.exists(logical):
            continue
        props, kind = r.properties(logical), res["Type"]
        if kind == "AWS::Events::Rule":
            fits(f"{logical}.Name", props["Name"], RULE_NAME)
            fits(f"{logical}.Description", props["Description"], RULE_DESCRIPTION)
            for t in props["Targets"]:
                fits(f"{logical}.Targets.Id", t["Id"], TARGET_ID)
        elif kind == "AWS::SQS::Queue":
            fits(f"{logical}.QueueName", props["QueueName"], QUEUE_NAME)
        elif kind == "AWS::IAM::ManagedPolicy":
            fits(f"{logical}.ManagedPolicyName", props["ManagedPolicyName"], POLICY_NAME)
            fits(f"{logical}.Description", props["Description"], IAM_DESCRIPTION)
            for s in props["PolicyDocument"]["Statement"]:
                fits(f"{logical} Sid", s["Sid"], IAM_SID)
        elif kind == "AWS::IAM::Role":
            fits(f"{logical}.RoleName", props["RoleName"], ROLE_NAME)
            fits(f"{logical}.Description", props["Description"], IAM_DESCRIPTION)
        elif kind == "AWS::Events::EventBusPolicy":
            fits(f"{logical}.StatementId", props["StatementId"], BUS_STATEMENT_ID)
            assert props["Statement"]["Sid"] == props["StatementId"]
        else:
            continue
        checked += 1
    assert checked >= 10


def test_cloudformation_host_name_is_bounded_by_its_own_constraint(cfn):
    spec = cfn["Parameters"]["HostName"]
    assert "MaxLength" in spec, "HostName needs a MaxLength"
    most = spec["MaxLength"]
    assert accepts(spec, "h" * most) and not accepts(spec, "h" * (most + 1))
    assert len(longest(spec, "h", 128)) == most


@pytest.mark.parametrize("shape", ["names and prefix", "names", "prefix"])
def test_cloudformation_event_patterns_and_policies_fit_at_the_most_repositories(cfn, shape):
    r = worst_case(cfn, repositories=shape != "prefix", prefix=shape != "names")
    rules = policies = 0
    for logical, res in cfn["Resources"].items():
        if not r.exists(logical):
            continue
        if res["Type"] == "AWS::Events::Rule":
            size = pattern_size(r.properties(logical)["EventPattern"])
            assert size <= EVENT_PATTERN_MAX, f"{logical}: event pattern of {size} characters > {EVENT_PATTERN_MAX}"
            rules += 1
        elif res["Type"] == "AWS::IAM::ManagedPolicy":
            size = policy_size(r.properties(logical)["PolicyDocument"])
            assert size <= MANAGED_POLICY_MAX, f"{logical}: policy of {size} characters > {MANAGED_POLICY_MAX}"
            policies += 1
    assert rules == 4 and policies >= 3


def test_cloudformation_refuses_more_repositories_than_its_rules_and_policy_cover(cfn):
    """The sizes above hold only if the template refuses an 11th name and longer names."""
    spec = cfn["Parameters"]["Repositories"]
    assert accepts(spec, ",".join(f"team-{i}/service" for i in range(10)))
    assert not accepts(spec, ",".join(f"team-{i}/service" for i in range(11)))
    assert not accepts(spec, "r" * ECR_NAME_MAX)
    assert accepts(spec, "") and accepts(spec, "shop/web,shop/api")


# ------------------------------------------------------------ Terraform


def tf_host_name(tf):
    cond = one(one(tf["variable"]["host_name"]["validation"])["condition"])
    m = re.search(r'regex\("(.*)",\s*var\.host_name\)', cond)
    assert m, cond
    spec = {"Type": "String", "AllowedPattern": m.group(1).replace("\\\\", "\\")}
    return longest(spec, "h", 128)


def tf_text(v, host):
    return one(v).replace("${var.host_name}", host).replace("${var.wave}", "20")


def test_terraform_longest_names_fit(tf):
    host = tf_host_name(tf)
    checked = 0
    for (rtype, name), body in tf["resource"].items():
        if rtype == "aws_cloudwatch_event_rule":
            fits(f"{name}.name", tf_text(body["name"], host), RULE_NAME)
            fits(f"{name}.description", tf_text(body["description"], host), RULE_DESCRIPTION)
        elif rtype == "aws_cloudwatch_event_target":
            fits(f"{name}.target_id", tf_text(body["target_id"], host), TARGET_ID)
        elif rtype == "aws_sqs_queue":
            fits(f"{name}.name", tf_text(body["name"], host), QUEUE_NAME)
        elif rtype == "aws_iam_policy":
            fits(f"{name}.name", tf_text(body["name"], host), POLICY_NAME)
            fits(f"{name}.description", tf_text(body["description"], host), IAM_DESCRIPTION)
        elif rtype == "aws_iam_role":
            fits(f"{name}.name", tf_text(body["name"], host), ROLE_NAME)
        elif rtype == "aws_cloudwatch_event_bus_policy":
            (sid,) = re.findall(r"'Sid': '([^']*)'", one(body["policy"]))
            fits(f"{name} Sid", sid.replace("${var.host_name}", host), BUS_STATEMENT_ID)
        else:
            continue
        checked += 1
    assert checked >= 14
    # Policy statement ids: letters and digits (IAM's rule; the queue policies keep to it too).
    sids = [one(st["sid"]) for (t, _), d in tf["data"].items() if t == "aws_iam_policy_document" for st in d["statement"]]
    for (rtype, name), body in tf["resource"].items():
        if rtype == "aws_iam_policy":
            sids += re.findall(r"'Sid': '([^']*)'", one(body["policy"]))
    assert len(sids) >= 10
    for sid in sids:
        fits("sid", sid, IAM_SID)


def test_terraform_wave_rule_matches_the_string_wave_key(tf):
    pattern = one(tf["resource"][("aws_cloudwatch_event_rule", "wave_rule")]["event_pattern"])
    assert "'detail': {'wave_key': ['wave-${var.wave - 1}']}" in pattern, pattern
    assert "'wave':" not in pattern
    text = (MODULE / "main.tf").read_text()
    assert re.search(r'detail\s*=\s*\{ wave_key = \["wave-\$\{var\.wave - 1\}"\] \}', text)  # a string template


@pytest.mark.parametrize("rule,local", [("push_rule", "push_pattern"), ("scan_rule", "scan_pattern")])
def test_terraform_refuses_event_patterns_over_the_limit(tf, rule, local):
    """Any number of repositories may be listed: the rule's own pattern is measured at plan."""
    body = tf["resource"][("aws_cloudwatch_event_rule", rule)]
    assert one(body["event_pattern"]) == f"${{local.{local}}}"
    assert local in tf["locals"], f"no local {local}"
    checks = [c for lc in body.get("lifecycle", []) for c in lc.get("precondition", [])]
    sized = [c for c in checks if one(c["condition"]) == f"${{length(local.{local}) <= {EVENT_PATTERN_MAX}}}"]
    assert sized, f"{rule}: no precondition on the size of its event pattern"
    message = one(sized[0]["error_message"])
    assert "2,048" in message and "repository_prefix" in message, message


def test_terraform_refuses_an_agent_policy_over_the_limit(tf):
    body = tf["resource"][("aws_iam_policy", "agent_policy")]
    checks = [c for lc in body.get("lifecycle", []) for c in lc.get("precondition", [])]
    want = '${length(replace(data.aws_iam_policy_document.agent_policy.json,"/\\\\s/",""))<=6144}'
    # python-hcl2 keeps the HCL escape as written: "/\\s/" is the regular expression \s.
    sized = [c for c in checks if re.sub(r"\s", "", one(c["condition"])) == want]
    assert sized, f"agent_policy: no precondition on its size ({[one(c['condition']) for c in checks]})"
    message = one(sized[0]["error_message"])
    assert "6,144" in message and "repository_prefix" in message, message


def test_terraform_host_name_is_as_bounded_as_cloudformation(cfn, tf):
    assert len(tf_host_name(tf)) == cfn["Parameters"]["HostName"].get("MaxLength")
