"""A CloudFormation template resolved for one set of parameter values, as CloudFormation would.

Enough of CloudFormation for the static checks in this folder: parameters with their constraints
(AllowedPattern, AllowedValues, MinLength, MaxLength), Conditions, and the intrinsic functions the
templates use (Ref, Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Fn::Join, Fn::Split,
Fn::Select, Fn::FindInMap, Fn::GetAtt, Fn::Sub); AWS::NoValue drops the key or list item.
Physical names and ARNs are built the way AWS builds them, in the longest partition and region
names AWS has, so that sizes measured here are upper bounds.
"""
import re

PARTITION = "aws-us-gov"  # the longest partition name
REGION = "us-isof-south-1"  # the longest region name
ACCOUNT = "123456789012"
NO_VALUE = object()


def accepts(spec, value):
    """Whether CloudFormation accepts `value` for a parameter declared as `spec`."""
    items = value.split(",") if spec["Type"] == "CommaDelimitedList" else [value]
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        return False
    if len(value) < spec.get("MinLength", 0):
        return False
    if "MaxLength" in spec and len(value) > spec["MaxLength"]:
        return False
    pattern = spec.get("AllowedPattern")
    return pattern is None or all(re.fullmatch(pattern, i) for i in items)


def longest(spec, char, cap):
    """The longest run of `char` (up to `cap`) the parameter accepts."""
    return next((char * n for n in range(cap, -1, -1) if accepts(spec, char * n)), "")


class Render:
    def __init__(self, template, **params):
        self.t = template
        self.params = {}
        unknown = set(params) - set(template["Parameters"])
        assert not unknown, f"no such parameters: {unknown}"
        for name, spec in template["Parameters"].items():
            value = params.get(name, spec.get("Default"))
            assert value is not None, f"{name} is required"
            value = str(value)
            assert accepts(spec, value), f"the template refuses {name}={value!r}"
            self.params[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
        self.pseudo = {
            "AWS::Partition": PARTITION,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "stack",
            "AWS::NoValue": NO_VALUE,
        }
        self.conditions = {}

    # ---------------------------------------------------------------- resources

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.t["Conditions"][name]))
        return self.conditions[name]

    def exists(self, logical):
        c = self.t["Resources"][logical].get("Condition")
        return c is None or self.condition(c)

    def properties(self, logical):
        assert self.exists(logical), f"{logical} is not created with these parameters"
        return self.value(self.t["Resources"][logical].get("Properties", {}))

    def _name(self, logical, prop):
        return self.value(self.t["Resources"][logical]["Properties"][prop])

    def ref(self, name):
        if name in self.params:
            return self.params[name]
        if name in self.pseudo:
            return self.pseudo[name]
        assert self.exists(name), f"Ref to {name}, which is not created"
        kind = self.t["Resources"][name]["Type"]
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self._name(name, 'QueueName')}"
        if kind == "AWS::IAM::ManagedPolicy":
            return f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{self._name(name, 'ManagedPolicyName')}"
        return self._name(name, "Name") if kind == "AWS::Events::EventBus" else name

    def getatt(self, logical, attr):
        assert attr == "Arn", f"{logical}.{attr}"
        assert self.exists(logical), f"GetAtt of {logical}, which is not created"
        props = self.t["Resources"][logical]["Properties"]
        kind = self.t["Resources"][logical]["Type"]
        if kind == "AWS::SQS::Queue":
            return f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{self.value(props['QueueName'])}"
        if kind == "AWS::Events::Rule":
            bus = self.value(props["EventBusName"]) + "/" if "EventBusName" in props else ""
            return f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{bus}{self.value(props['Name'])}"
        if kind == "AWS::Events::EventBus":
            return f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:event-bus/{self.value(props['Name'])}"
        if kind == "AWS::IAM::Role":
            return f"arn:{PARTITION}:iam::{ACCOUNT}:role/{self.value(props['RoleName'])}"
        raise NotImplementedError(f"GetAtt {kind}.Arn")

    # ---------------------------------------------------------------- values

    def sub(self, arg):
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], {k: self.value(v) for k, v in arg[1].items()})

        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in extra:
                return str(extra[name])
            if "." in name and name not in self.pseudo:
                return str(self.getatt(*name.split(".", 1)))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, v):
        if isinstance(v, list):
            return [x for x in (self.value(i) for i in v) if x is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            ((fn, arg),) = v.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::If":
                cond, yes, no = arg
                return self.value(yes if self.condition(cond) else no)
            if fn == "Fn::Equals":
                a, b = (self.value(x) for x in arg)
                return str(a) == str(b) if not isinstance(a, list) else a == b
            if fn == "Fn::Not":
                return not self.value(arg[0])
            if fn == "Fn::And":
                return all(self.value(x) for x in arg)
            if fn == "Fn::Or":
                return any(self.value(x) for x in arg)
            if fn == "Fn::Contains":
                return self.value(arg[1]) in self.value(arg[0])
            if fn == "Fn::EachMemberEquals":
                return all(x == self.value(arg[1]) for x in self.value(arg[0]))
            if fn == "Fn::EachMemberIn":
                return all(x in self.value(arg[1]) for x in self.value(arg[0]))
            if fn == "Fn::Join":
                return arg[0].join(str(x) for x in self.value(arg[1]))
            if fn == "Fn::Split":
                return self.value(arg[1]).split(arg[0])
            if fn == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if fn == "Fn::FindInMap":
                m, a, b = (self.value(x) for x in arg)
                return self.t["Mappings"][m][str(a)][b]
            if fn == "Fn::GetAtt":
                return self.getatt(*(arg if isinstance(arg, list) else arg.split(".", 1)))
            if fn == "Fn::Sub":
                return self.sub(arg)
            if fn.startswith("Fn::"):
                raise NotImplementedError(fn)
        out = {}
        for k, x in v.items():
            r = self.value(x)
            if r is not NO_VALUE:
                out[k] = r
        return out
