"""The templates' resources as CloudFormation would deploy them, in every condition variant,
for the tests that read policies from the templates themselves (no moto).

A variant is one assignment of true/false to the Fn::Equals tests that the templates'
Conditions are made of (the "atoms"), so derived conditions (Fn::And, Fn::Not,
{"Condition": ...}) always agree with the atoms they are built from; assignments that no
parameter value can produce (one parameter equal to two different strings) are left out.
Only the atoms that the rendered resources depend on are enumerated. Parameter values
(defaults, overridden by cfntools.FULL_PARAMETERS) only fill in strings: a statement whose
condition is false in a variant is gone whatever its parameters say.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from cfntools import ACCOUNT, FULL_PARAMETERS, MEMBER_ACCOUNT, REGION, load_template

NO_VALUE = object()  # AWS::NoValue: the property or list item disappears
STACK_NAME = "cmkguard-test"
# The account each template is rendered for, as the moto tests deploy them.
TEMPLATE_ACCOUNT = {"key.yaml": ACCOUNT, "guard.yaml": ACCOUNT, "member.yaml": MEMBER_ACCOUNT}


@dataclass(frozen=True)
class Variant:
    template: str
    account: str
    conditions: dict[str, bool]
    resources: dict[str, dict[str, Any]]  # logical id -> rendered resource, those created

    @property
    def label(self) -> str:
        on = ",".join(sorted(k for k, v in self.conditions.items() if v)) or "-"
        return f"{self.template}[{on}]"


def _atom_key(node: Any) -> str:
    return json.dumps(node, sort_keys=True)


def _referenced_conditions(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        if "Fn::If" in node:
            found.add(node["Fn::If"][0])
        for value in node.values():
            _referenced_conditions(value, found)
    elif isinstance(node, list):
        for value in node:
            _referenced_conditions(value, found)


def _atoms(template: dict, node: Any, found: dict[str, Any]) -> None:
    """The Fn::Equals atoms of a condition expression, through {"Condition": name}."""
    if not isinstance(node, dict):
        return
    [(function, argument)] = node.items()
    if function == "Fn::Equals":
        found[_atom_key(node)] = node
    elif function == "Condition":
        _atoms(template, template["Conditions"][argument], found)
    else:
        for item in argument:
            _atoms(template, item, found)


def _possible(atoms: dict[str, Any], assignment: dict[str, bool]) -> bool:
    """False when two true atoms compare the same Ref with different literals (a parameter
    cannot be both "" and "organization")."""
    equal_to: dict[str, str] = {}
    for key, holds in assignment.items():
        if not holds:
            continue
        sides = atoms[key]["Fn::Equals"]
        refs = [s["Ref"] for s in sides if isinstance(s, dict) and set(s) == {"Ref"}]
        literals = [s for s in sides if isinstance(s, str)]
        if len(refs) == 1 and len(literals) == 1:
            if equal_to.setdefault(refs[0], literals[0]) != literals[0]:
                return False
    return True


def _truth(template: dict, node: Any, atoms: dict[str, bool]) -> bool:
    [(function, argument)] = node.items()
    if function == "Fn::Equals":
        return atoms[_atom_key(node)]
    if function == "Fn::Not":
        return not _truth(template, argument[0], atoms)
    if function == "Fn::And":
        return all(_truth(template, x, atoms) for x in argument)
    if function == "Fn::Or":
        return any(_truth(template, x, atoms) for x in argument)
    if function == "Condition":
        return _truth(template, template["Conditions"][argument], atoms)
    raise NotImplementedError(function)


class _Resolver:
    def __init__(self, template: dict, parameters: dict[str, Any], conditions: dict[str, bool], account: str):
        self.template, self.parameters, self.conditions, self.account = template, parameters, conditions, account
        self.pseudo = {
            "AWS::AccountId": account,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::StackName": STACK_NAME,
            "AWS::URLSuffix": "amazonaws.com",
        }

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        resource = self.template["Resources"][name]
        if resource["Type"] == "AWS::IAM::Role" and "RoleName" in resource.get("Properties", {}):
            return self.resolve(resource["Properties"]["RoleName"])
        return f"{name}-physical-id"

    def get_att(self, name: str, attribute: str) -> str:
        if self.template["Resources"][name]["Type"] == "AWS::IAM::Role" and attribute == "Arn":
            return f"arn:aws:iam::{self.account}:role/{self.ref(name)}"
        return f"arn:aws:cloudformation-render:{REGION}:{self.account}:{name}/{attribute}"

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def one(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".")[0] in self.template["Resources"]:
                return self.get_att(*name.split(".", 1))
            value = self.ref(name)
            assert isinstance(value, str), f"Fn::Sub of a list: {name}"
            return value

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            [(key, argument)] = node.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(name, attribute)
            if key == "Fn::If":
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.conditions[condition] else when_false)
            if key == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
            if key == "Fn::Join":
                return argument[0].join(self.resolve(argument[1]))
            if key == "Fn::Split":
                return self.resolve(argument[1]).split(argument[0])
            if key == "Fn::Select":
                return self.resolve(argument[1])[int(self.resolve(argument[0]))]
            if key.startswith("Fn::"):
                raise NotImplementedError(key)
        resolved = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}


def _parameters(name: str, template: dict) -> dict[str, Any]:
    values = {}
    for key, spec in template.get("Parameters", {}).items():
        value = str(FULL_PARAMETERS[name].get(key, spec.get("Default", "")))
        values[key] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
    return values


def variants(name: str, types: Iterable[str] | None = None, extra_conditions: Iterable[str] = ()) -> Iterator[Variant]:
    """Every condition variant of template `name`, with its resources of `types` (all when
    None) rendered. extra_conditions: conditions a test reads in Variant.conditions that
    the rendered resources need not depend on."""
    template = load_template(name)
    account = TEMPLATE_ACCOUNT[name]
    selected = {
        lid: r for lid, r in template["Resources"].items() if types is None or r["Type"] in set(types)
    }
    used: set[str] = set(extra_conditions)
    for resource in selected.values():
        if "Condition" in resource:
            used.add(resource["Condition"])
        _referenced_conditions(resource, used)
    atoms: dict[str, Any] = {}
    for condition in sorted(used):
        _atoms(template, template["Conditions"][condition], atoms)
    parameters = _parameters(name, template)
    seen: set[tuple] = set()
    for values in itertools.product((True, False), repeat=len(atoms)):
        assignment = dict(zip(atoms, values))
        if not _possible(atoms, assignment):
            continue
        conditions = {c: _truth(template, template["Conditions"][c], assignment) for c in sorted(used)}
        if tuple(conditions.items()) in seen:
            continue  # other atoms, same conditions: the same resources
        seen.add(tuple(conditions.items()))
        resolver = _Resolver(template, parameters, conditions, account)
        resources = {
            lid: resolver.resolve({k: v for k, v in r.items() if k != "Condition"})
            for lid, r in selected.items()
            if "Condition" not in r or conditions[r["Condition"]]
        }
        yield Variant(name, account, conditions, resources)


def _holds(template: dict, node: Any, resolver: _Resolver) -> bool:
    """A condition expression for the resolver's actual parameter values."""
    [(function, argument)] = node.items()
    if function == "Fn::Equals":
        a, b = (resolver.resolve(x) for x in argument)
        return str(a) == str(b)
    if function == "Fn::Not":
        return not _holds(template, argument[0], resolver)
    if function == "Fn::And":
        return all(_holds(template, x, resolver) for x in argument)
    if function == "Fn::Or":
        return any(_holds(template, x, resolver) for x in argument)
    if function == "Condition":
        return _holds(template, template["Conditions"][argument], resolver)
    raise NotImplementedError(function)


def render(name: str, given: dict[str, str], types: Iterable[str] | None = None) -> Variant:
    """Template `name` as CloudFormation deploys it with exactly these parameter values
    (the others at their defaults), its resources of `types` (all when None) rendered.
    Unlike variants(), the strings and the conditions both come from `given`."""
    template = load_template(name)
    account = TEMPLATE_ACCOUNT[name]
    parameters = {}
    for key, spec in template.get("Parameters", {}).items():
        if key not in given and "Default" not in spec:
            raise ValueError(f"{name}: parameter {key} has no default, give it a value")
        value = str(given.get(key, spec.get("Default", "")))
        parameters[key] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
    unknown = set(given) - set(parameters)
    if unknown:
        raise ValueError(f"{name} has no parameter {sorted(unknown)}")
    probe = _Resolver(template, parameters, {}, account)
    conditions = {c: _holds(template, expr, probe) for c, expr in template.get("Conditions", {}).items()}
    resolver = _Resolver(template, parameters, conditions, account)
    resources = {
        lid: resolver.resolve({k: v for k, v in r.items() if k != "Condition"})
        for lid, r in template["Resources"].items()
        if (types is None or r["Type"] in set(types)) and ("Condition" not in r or conditions[r["Condition"]])
    }
    return Variant(name, account, conditions, resources)


def rendered_role_documents(resources: dict, role: str) -> list[dict]:
    """The identity policies of a rendered role: inline, and attached by its name."""
    if role not in resources:
        return []
    props = resources[role]["Properties"]
    documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
    documents += [
        r["Properties"]["PolicyDocument"]
        for r in resources.values()
        if props["RoleName"] in r.get("Properties", {}).get("Roles", [])
    ]
    return documents
