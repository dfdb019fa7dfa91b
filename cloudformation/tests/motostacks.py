"""Creating the templates' stacks in moto's CloudFormation.

moto 5.2.5 creates KMS keys and aliases, SNS topics, SQS queues, IAM roles and policies,
EventBridge rules, log groups, S3 buckets and Lambda functions from a template. It has
no CloudFormation support for the types in MOTO_LACKS and skips them silently (the
stack still says CREATE_COMPLETE). So the tests deploy a variant without them, say so
here, and check those resources from the template instead (test_templates.py).
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from typing import Any

from cfntools import ACCOUNT, REGION, as_list

MOTO_LACKS = {
    "AWS::CloudWatch::Alarm": "no moto CloudFormation model; checked in the template",
    "AWS::SQS::QueuePolicy": "no moto CloudFormation model; checked in the template",
    "AWS::S3::BucketPolicy": "no moto CloudFormation model; checked in the template",
    "AWS::CloudTrail::Trail": "no moto CloudFormation model; checked in the template",
    "AWS::Lambda::EventInvokeConfig": "no moto CloudFormation model; checked in the template",
    "AWS::Events::EventBusPolicy": "no moto CloudFormation model; checked in the template",
    "AWS::SNS::Subscription": "no moto CloudFormation model; checked in the template",
}

PACKAGE_BUCKET = "cmkguard-package"
PACKAGE_KEY = "cmkguard-lambda/bootstrap.zip"


def package(s3) -> dict[str, str]:
    """What `aws cloudformation package` does for Code: a local path: upload the zip and
    point Code at it. The zip here is a stand-in; no test runs the function."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    s3.create_bucket(Bucket=PACKAGE_BUCKET)
    s3.put_object(Bucket=PACKAGE_BUCKET, Key=PACKAGE_KEY, Body=buffer.getvalue())
    return {"S3Bucket": PACKAGE_BUCKET, "S3Key": PACKAGE_KEY}


def moto_variant(template: dict[str, Any], code: dict[str, str] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The template less the resource types moto lacks, with packaged Code.
    Returns (variant, {dropped logical id: type})."""
    variant = copy.deepcopy(template)
    resources = variant["Resources"]
    dropped = {lid: r["Type"] for lid, r in resources.items() if r["Type"] in MOTO_LACKS}
    for lid in dropped:
        del resources[lid]
    for resource in resources.values():
        if "DependsOn" in resource:
            kept = [d for d in as_list(resource["DependsOn"]) if d not in dropped]
            if kept:
                resource["DependsOn"] = kept
            else:
                del resource["DependsOn"]
        if resource["Type"] == "AWS::Lambda::Function" and code is not None:
            resource["Properties"]["Code"] = code
    return variant, dropped


def _value(node: Any, parameters: dict[str, Any], conditions: dict[str, Any], account: str) -> Any:
    """The value of the intrinsic functions used in the templates' Conditions."""
    pseudo = {"AWS::AccountId": account, "AWS::Region": REGION, "AWS::Partition": "aws"}
    if not isinstance(node, dict):
        return node
    [(function, argument)] = node.items()
    if function == "Ref":
        return parameters[argument] if argument in parameters else pseudo[argument]
    if function == "Condition":
        return condition_holds(argument, conditions, parameters, account)
    if function == "Fn::Equals":
        a, b = (_value(x, parameters, conditions, account) for x in argument)
        return str(a) == str(b)
    if function == "Fn::Not":
        return not _value(argument[0], parameters, conditions, account)
    if function == "Fn::And":
        return all(_value(x, parameters, conditions, account) for x in argument)
    if function == "Fn::Or":
        return any(_value(x, parameters, conditions, account) for x in argument)
    if function == "Fn::Join":
        return argument[0].join(_value(argument[1], parameters, conditions, account))
    if function == "Fn::Sub":
        text = argument
        for key, value in {**pseudo, **parameters}.items():
            text = text.replace("${" + key + "}", str(value))
        return text
    raise NotImplementedError(function)


def condition_holds(name: str, conditions: dict[str, Any], parameters: dict[str, Any], account: str) -> bool:
    return bool(_value(conditions[name], parameters, conditions, account))


def expected_resources(template: dict[str, Any], given: dict[str, str], account: str) -> set[str]:
    """The logical ids CloudFormation creates for these parameters: those without a
    Condition or whose Condition holds."""
    parameters = {}
    for key, spec in template.get("Parameters", {}).items():
        value = given.get(key, spec.get("Default"))
        parameters[key] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
    conditions = template.get("Conditions", {})
    return {
        lid
        for lid, r in template["Resources"].items()
        if "Condition" not in r or condition_holds(r["Condition"], conditions, parameters, account)
    }


def create_stack(
    cfn, name: str, template: dict[str, Any], parameters: dict[str, str], account: str = ACCOUNT
) -> dict[str, dict[str, Any]]:
    """Create a stack and return its resources by logical id. Fails unless the stack
    completed with exactly the resources CloudFormation would create for these
    parameters (moto lists a resource it skipped without a logical id)."""
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    listed = [r for r in cfn.describe_stack_resources(StackName=name)["StackResources"] if r.get("LogicalResourceId")]
    created = {r["LogicalResourceId"]: r for r in listed}
    assert set(created) == expected_resources(template, parameters, account), "a type to add to MOTO_LACKS?"
    for r in listed:
        assert r["ResourceStatus"] == "CREATE_COMPLETE", r
    return created


def outputs(cfn, name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
