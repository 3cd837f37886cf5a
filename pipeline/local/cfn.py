"""Reads template.yaml, turns SAM into CloudFormation offline, and resolves intrinsic functions."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.parser.parser import Parser
from samtranslator.public.exceptions import InvalidDocumentException
from samtranslator.translator.translator import Translator

LOCAL_BUCKET = "local-code"  # stands in for the S3 bucket `sam package` would upload to


class TemplateError(RuntimeError):
    """The template cannot be run locally as written; the message names what and where."""


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short tags (!Ref, !GetAtt, !Sub, ...)."""


def _construct_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    """The template as a plain dict, short tags expanded to their long forms."""
    with path.open() as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # a SafeLoader subclass: no arbitrary objects


def _localise_artifacts(template: dict[str, Any], root: Path) -> dict[str, Path]:
    """Point code URIs at a stand-in bucket (as `sam package` would) and inline definitions;
    return logical id -> local code directory."""
    code_dirs: dict[str, Path] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            uri = props.get(key)
            if isinstance(uri, str) and not uri.startswith("s3://"):
                local = (root / uri).resolve()
                if not local.is_dir():
                    raise TemplateError(f"{logical_id}.{key}: {uri} is not a directory")
                code_dirs[logical_id] = local
                props[key] = f"s3://{LOCAL_BUCKET}/{logical_id}"
        uri = props.get("DefinitionUri")
        if isinstance(uri, str) and not uri.startswith("s3://"):
            props["Definition"] = json.loads((root / uri).read_text())
            del props["DefinitionUri"]
    return code_dirs


def sam_to_cloudformation(
    template: dict[str, Any], *, root: Path, region: str, account_id: str, stack_name: str
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Translate a SAM template offline; return the CloudFormation template and, per function
    or layer logical id (as CloudFormation names it), its local code directory."""
    sam = copy.deepcopy(template)
    sam_code_dirs = _localise_artifacts(sam, root)
    translator = Translator({}, Parser(), boto_session=boto3.session.Session(region_name=region))
    try:
        cfn = translator.translate(
            sam,
            parameter_values={
                "AWS::Region": region,
                "AWS::AccountId": account_id,
                "AWS::Partition": "aws",
                "AWS::StackName": stack_name,
            },
            # Managed policies only name IAM policies, which nothing enforces locally.
            get_managed_policy_map=lambda: {},
        )
    except InvalidDocumentException as exc:
        causes = "; ".join(str(c) for c in exc.causes)
        raise TemplateError(f"SAM translation failed: {causes}") from exc
    # SAM renames layers (PipelineLayer -> PipelineLayer<hash>); map code dirs to the new names.
    code_dirs: dict[str, Path] = {}
    for logical_id, resource in cfn["Resources"].items():
        code = resource.get("Properties", {}).get("Code") or resource.get("Properties", {}).get(
            "Content"
        )
        if isinstance(code, dict) and code.get("S3Bucket") == LOCAL_BUCKET:
            code_dirs[logical_id] = sam_code_dirs[code["S3Key"]]
    return cfn, code_dirs


# -- Intrinsic functions ----------------------------------------------------------------------

NO_VALUE = object()  # AWS::NoValue: the property is dropped
_SUB_RE = re.compile(r"\$\{([^}!][^}]*)\}")


class Resolver:
    """Evaluates Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If and friends against what the
    provisioner knows so far. An unsupported function stops start-up, naming it."""

    def __init__(
        self,
        *,
        parameters: Mapping[str, Any],
        conditions: Mapping[str, Any],
        ref: Callable[[str], Any],
        get_att: Callable[[str, str], Any],
    ):
        self.parameters = dict(parameters)
        self._condition_defs = dict(conditions)
        self._conditions: dict[str, bool] = {}
        self._ref = ref
        self._get_att = get_att

    def condition(self, name: str) -> bool:
        """The value of a named condition."""
        if name not in self._conditions:
            if name not in self._condition_defs:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(self._condition_defs[name]))
        return self._conditions[name]

    def resolve(self, value: Any, where: str = "") -> Any:
        """`value` with every intrinsic function evaluated."""
        if isinstance(value, list):
            items = [self.resolve(v, where) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._function(key, arg, where)
        result = {}
        for k, v in value.items():
            resolved = self.resolve(v, f"{where}.{k}" if where else k)
            if resolved is not NO_VALUE:
                result[k] = resolved
        return result

    def _function(self, key: str, arg: Any, where: str) -> Any:
        if key == "Ref":
            if arg == "AWS::NoValue":
                return NO_VALUE
            if arg in self.parameters:
                return self.parameters[arg]
            return self._ref(arg)
        if key == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self._get_att(logical_id, attribute)
        if key == "Fn::Sub":
            return self._sub(arg, where)
        if key == "Fn::Join":
            sep, parts = arg
            return sep.join(str(p) for p in self.resolve(parts, where))
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items, where)[int(self.resolve(index, where))]
        if key == "Fn::Split":
            sep, text = arg
            return str(self.resolve(text, where)).split(sep)
        if key == "Fn::If":
            name, yes, no = arg
            return self.resolve(yes if self.condition(name) else no, where)
        if key == "Fn::Equals":
            a, b = (self.resolve(v, where) for v in arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not self.resolve(arg[0], where)
        if key == "Fn::And":
            return all(self.resolve(v, where) for v in arg)
        if key == "Fn::Or":
            return any(self.resolve(v, where) for v in arg)
        if key == "Condition":
            return self.condition(arg)
        raise TemplateError(f"{where}: {key} is not supported by the local runtime")

    def _sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v, where) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return str(self._get_att(logical_id, attribute))
            if name in self.parameters:
                return str(self.parameters[name])
            return str(self._ref(name))

        # ${!Literal} is CloudFormation's escape for a literal ${Literal}.
        return _SUB_RE.sub(replace, text).replace("${!", "${")


def dependencies(value: Any) -> set[str]:
    """Logical ids a property value refers to (Ref, GetAtt, Sub)."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= dependencies(v)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str) and not arg.startswith("AWS::"):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else arg.split(".", 1)[0])
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                local_vars = set(arg[1]) if isinstance(arg, list) else set()
                for name in _SUB_RE.findall(text):
                    head = name.split(".", 1)[0]
                    if head not in local_vars and not head.startswith("AWS::"):
                        found.add(head)
                if isinstance(arg, list):
                    found |= dependencies(arg[1])
            else:
                found |= dependencies(arg)
    return found


def creation_order(resources: Mapping[str, Any], parameters: set[str]) -> list[str]:
    """Logical ids in an order where every resource comes after what it refers to."""
    graph = {}
    for logical_id, resource in resources.items():
        deps = dependencies(resource.get("Properties", {})) - parameters
        depends_on = resource.get("DependsOn", [])
        deps |= {depends_on} if isinstance(depends_on, str) else set(depends_on)
        unknown = deps - set(resources)
        if unknown:
            raise TemplateError(f"{logical_id} refers to unknown {', '.join(sorted(unknown))}")
        graph[logical_id] = deps
    order: list[str] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        if node in visiting:
            raise TemplateError(f"circular reference through {node}")
        visiting.add(node)
        for dep in sorted(graph[node]):
            visit(dep)
        visiting.discard(node)
        done.add(node)
        order.append(node)

    for node in resources:
        visit(node)
    return order
