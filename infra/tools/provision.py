#!/usr/bin/env python3
"""Creates (or deletes) a stack of infra/cloudformation/ecr-deployd.yaml and prints its outputs.

Used by the demo and the tests against the local AWS emulator; it works the same against AWS
(leave out --endpoint-url), though there `aws cloudformation deploy` is the usual tool.

    provision.py --stack ecr-deployd-web-01 HostName=web-01 Repositories=shop/web,shop/api
    provision.py --stack ecr-deployd-web-01 --delete

Prints a JSON object {OutputKey: OutputValue} on stdout; exits 1 with the stack's failure
reason when the stack does not reach CREATE_COMPLETE.
"""
import argparse
import json
import pathlib
import sys
import time

import boto3

TEMPLATE = pathlib.Path(__file__).resolve().parent.parent / "cloudformation" / "ecr-deployd.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stack", required=True, help="stack name")
    ap.add_argument("--endpoint-url", help="AWS endpoint (the local emulator)")
    ap.add_argument("--template", default=str(TEMPLATE))
    ap.add_argument("--delete", action="store_true", help="delete the stack instead")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the stack")
    ap.add_argument("params", nargs="*", metavar="Key=Value", help="stack parameters")
    args = ap.parse_args()

    cfn = boto3.client("cloudformation", endpoint_url=args.endpoint_url)
    if args.delete:
        cfn.delete_stack(StackName=args.stack)
        return 0

    params = []
    for p in args.params:
        key, sep, value = p.partition("=")
        if not sep or not key:
            print(f"provision.py: parameter {p!r} is not Key=Value", file=sys.stderr)
            return 2
        params.append({"ParameterKey": key, "ParameterValue": value})

    cfn.create_stack(
        StackName=args.stack,
        TemplateBody=pathlib.Path(args.template).read_text(),
        Parameters=params,
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    deadline = time.monotonic() + args.timeout
    while True:
        stack = cfn.describe_stacks(StackName=args.stack)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            break
        if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
            reason = stack.get("StackStatusReason", "")
            print(f"provision.py: stack {args.stack} is {status}: {reason}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    json.dump(outputs, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
