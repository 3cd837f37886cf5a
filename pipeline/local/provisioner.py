"""Creates template.yaml's resources on the local endpoints, after SAM's offline translation.

Every resource type and property is either honoured, or listed here with the reason it has no
local effect (IAM, encryption, tracing, ...). Anything else stops start-up with its name.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from pipeline.local.cfn import Resolver, TemplateError, creation_order, dependencies
from pipeline.local.event_sources import MappingSpec
from pipeline.local.filters import UnsupportedPattern, compile_pattern
from pipeline.local.lambdas import FunctionSpec

# Properties that change nothing a local run can observe, and why.
NO_LOCAL_EFFECT = {
    "Tags": "tags are metadata",
    "SSESpecification": "encryption at rest is an AWS storage concern",
    "SqsManagedSseEnabled": "encryption at rest is an AWS storage concern",
    "KmsMasterKeyId": "encryption at rest is an AWS storage concern",
    "KmsDataKeyReusePeriodSeconds": "encryption at rest is an AWS storage concern",
    "KmsKeyId": "encryption at rest is an AWS storage concern",
    "PointInTimeRecoverySpecification": "DynamoDB Local has no backups",
    "DeletionProtectionEnabled": "nothing deletes local tables but --fresh",
    "Role": "IAM is not enforced locally",
    "RoleArn": "IAM is not enforced locally",
    "TracingConfig": "X-Ray tracing is off locally (POWERTOOLS_TRACE_DISABLED)",
    "TracingConfiguration": "X-Ray tracing is off locally",
    "LoggingConfiguration": "executions are logged by the local runtime",
    "Architectures": "the local functions run on this machine's Python",
    "Description": "descriptive only",
    "CompatibleRuntimes": "descriptive only",
    "CompatibleArchitectures": "descriptive only",
    "LicenseInfo": "descriptive only",
    "BillingMode": "DynamoDB Local has no capacity",
    "ProvisionedThroughput": "DynamoDB Local has no capacity",
}
# Resource types with no local effect at all.
NO_LOCAL_EFFECT_TYPES = {
    "AWS::IAM::Role": "IAM is not enforced locally",
    "AWS::IAM::Policy": "IAM is not enforced locally",
    "AWS::IAM::ManagedPolicy": "IAM is not enforced locally",
    "AWS::Lambda::Permission": "IAM is not enforced locally",
    "AWS::KMS::Key": "encryption at rest is an AWS storage concern",
}


def _reserved_concurrency(logical_id: str, value: Any) -> int | None:
    """A function's ReservedConcurrentExecutions as a number (None: not set). TemplateError
    for what CloudFormation would refuse (anything but a whole number of 0 or more) and for 0,
    which Lambda allows as a switch that throttles every invocation: the local runtime has no
    throttling to show for it."""
    if value is None:
        return None
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if number < 0:
        raise TemplateError(
            f"{logical_id}: ReservedConcurrentExecutions {value!r} is not a whole number of 0 "
            "or more"
        )
    if number == 0:
        raise TemplateError(
            f"{logical_id}: ReservedConcurrentExecutions 0 (a function that never runs) is "
            "not supported by the local runtime"
        )
    return number


@dataclass
class Physical:
    """What a created resource answers to Ref and Fn::GetAtt."""

    ref: Any
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProvisionResult:
    """Everything the runtime needs from the provisioned template."""

    physical: dict[str, Physical]
    outputs: dict[str, Any]
    functions: list[FunctionSpec]
    mappings: list[MappingSpec]
    state_machines: dict[str, str]  # logical id -> ARN
    queue_visibility: dict[str, int]  # queue ARN -> visibility timeout
    queue_urls: dict[str, str]  # queue ARN -> URL
    notes: list[str]


def _without(
    client: Any,
    table: str,
    dropped: set[str],
    *,
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The table's description once none of the `dropped` indexes is listed: DynamoDB deletes
    an index in the background (DELETING for a while, as DynamoDB Local does too), and the
    table only matches the template once it is gone."""
    deadline = time.monotonic() + timeout
    while True:
        description = client.describe_table(TableName=table)["Table"]
        listed = {i["IndexName"] for i in description.get("GlobalSecondaryIndexes", [])}
        if not listed & dropped or time.monotonic() > deadline:
            return description
        sleep(0.2)


class Provisioner:
    """Walks the CloudFormation resources in dependency order and creates each one locally."""

    def __init__(
        self,
        cfn: Mapping[str, Any],
        code_dirs: Mapping[str, Path],
        *,
        stack_name: str,
        region: str,
        account_id: str,
        parameters: Mapping[str, str],
        clients: Mapping[str, Any],
    ):
        self.cfn = cfn
        self.code_dirs = dict(code_dirs)
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.clients = clients
        self.physical: dict[str, Physical] = {}
        self.notes: list[str] = []
        self.functions: list[FunctionSpec] = []
        self.mappings: list[MappingSpec] = []
        self.state_machines: dict[str, str] = {}
        self.queue_visibility: dict[str, int] = {}
        self.queue_urls: dict[str, str] = {}
        self._layers: dict[str, Path] = {}
        params = self._parameters(parameters)
        self.resolver = Resolver(
            parameters=params,
            conditions=cfn.get("Conditions", {}),
            ref=self._ref,
            get_att=self._get_att,
        )

    # -- parameters and references ------------------------------------------------------------

    def _parameters(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        declared = self.cfn.get("Parameters", {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/"
                f"{self.stack_name}/local"
            ),
        }
        for name, spec in declared.items():
            if name in overrides:
                value: Any = overrides[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no default: pass --parameter {name}=...")
            allowed = spec.get("AllowedValues")
            if allowed and str(value) not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value} is not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            if pattern and not re.fullmatch(pattern, str(value)):
                raise TemplateError(f"parameter {name}={value} does not match {pattern}")
            values[name] = value
        return values

    def _ref(self, logical_id: str) -> Any:
        if logical_id not in self.physical:
            raise TemplateError(f"Ref to {logical_id}, which is not created (yet)")
        return self.physical[logical_id].ref

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        physical = self.physical.get(logical_id)
        if physical is None or attribute not in physical.attributes:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute} is not available locally")
        return physical.attributes[attribute]

    def _name(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}"

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{resource}"

    # -- the walk ----------------------------------------------------------------------------

    def provision(self, only_types: set[str] | None = None) -> ProvisionResult:
        """Create every resource (or only those of `only_types`); return what the runtime needs."""
        resources = self.cfn.get("Resources", {})
        handlers: dict[str, Callable[[str, dict[str, Any]], Physical]] = {
            "AWS::DynamoDB::Table": self._table,
            "AWS::SQS::Queue": self._queue,
            "AWS::Logs::LogGroup": self._log_group,
            "AWS::SNS::Topic": self._topic,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::CloudWatch::Alarm": self._alarm,
            "AWS::CloudWatch::Dashboard": self._dashboard,
            "AWS::Lambda::LayerVersion": self._layer,
            "AWS::Lambda::Function": self._function,
            "AWS::Lambda::EventSourceMapping": self._mapping,
            "AWS::StepFunctions::StateMachine": self._state_machine,
        }
        order = creation_order(resources, set(self.resolver.parameters))
        for logical_id in order:
            resource = resources[logical_id]
            rtype = resource["Type"]
            condition = resource.get("Condition")
            if condition and not self.resolver.condition(condition):
                continue
            if rtype in NO_LOCAL_EFFECT_TYPES:
                # Named even in a partial run: a table refers to its encryption key.
                self.physical[logical_id] = self._stand_in(logical_id, rtype)
                continue
            if only_types is not None and rtype not in only_types:
                continue
            handler = handlers.get(rtype)
            if handler is None:
                raise TemplateError(
                    f"{logical_id}: resource type {rtype} is not supported by the local runtime"
                )
            props = self.resolver.resolve(resource.get("Properties", {}), logical_id)
            self.physical[logical_id] = handler(logical_id, props)
        outputs = {}
        for name, spec in self.cfn.get("Outputs", {}).items():
            if spec.get("Condition") and not self.resolver.condition(spec["Condition"]):
                continue
            if only_types is not None and dependencies(spec["Value"]) - set(self.physical):
                continue  # a partial run skips outputs of resources it did not create
            outputs[name] = self.resolver.resolve(spec["Value"], f"Outputs.{name}")
        ignored = sorted({(t, why) for t, why in NO_LOCAL_EFFECT_TYPES.items()
                          if any(r["Type"] == t for r in resources.values())})  # fmt: skip
        self.notes += [f"{t}: no local effect ({why})" for t, why in ignored]
        return ProvisionResult(
            physical=self.physical,
            outputs=outputs,
            functions=self.functions,
            mappings=self.mappings,
            state_machines=self.state_machines,
            queue_visibility=self.queue_visibility,
            queue_urls=self.queue_urls,
            notes=sorted(set(self.notes)),
        )

    def _stand_in(self, logical_id: str, rtype: str) -> Physical:
        """What Ref and Fn::GetAtt give for a resource that is not created locally."""
        name = self._name(logical_id)
        if rtype == "AWS::KMS::Key":
            if "kms" in self.clients:
                # moto's KMS is the stand-in code encrypts with (webhook secrets): a real key
                # there, in memory, so a restart makes a new one (docs/webhooks.md).
                description = self.clients["kms"].create_key(Description=name)["KeyMetadata"]
                key_id = description["KeyId"]
                return Physical(key_id, {"Arn": description["Arn"], "KeyId": key_id})
            key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.stack_name}/{logical_id}"))
            return Physical(key_id, {"Arn": self._arn("kms", f"key/{key_id}"), "KeyId": key_id})
        return Physical(name, {"Arn": self._arn("iam", f"role/{name}")})

    def _check(self, logical_id: str, props: Mapping[str, Any], honoured: set[str]) -> None:
        for name in props:
            if name in honoured:
                continue
            if name in NO_LOCAL_EFFECT:
                self.notes.append(f"{name}: no local effect ({NO_LOCAL_EFFECT[name]})")
                continue
            raise TemplateError(
                f"{logical_id}: property {name} is not supported by the local runtime"
            )

    # -- DynamoDB ----------------------------------------------------------------------------

    def _table(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self._check(
            logical_id,
            props,
            {"TableName", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes",
             "LocalSecondaryIndexes", "StreamSpecification", "TimeToLiveSpecification"},
        )  # fmt: skip
        client = self.clients["dynamodb"]
        name = props.get("TableName") or self._name(logical_id)
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                request[key] = [
                    {k: v for k, v in index.items() if k != "ProvisionedThroughput"}
                    for index in props[key]
                ]
        stream = props.get("StreamSpecification")
        if stream:
            request["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        try:
            description = client.create_table(**request)["TableDescription"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            description = client.describe_table(TableName=name)["Table"]
            description = self._sync_indexes(client, request, description)
            self._same_table(logical_id, request, description)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            try:
                client.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={
                        "Enabled": True,
                        "AttributeName": ttl["AttributeName"],
                    },
                )
            except ClientError as exc:
                if "already enabled" not in str(exc).lower():
                    raise
        attributes = {"Arn": description["TableArn"]}
        if description.get("LatestStreamArn"):
            attributes["StreamArn"] = description["LatestStreamArn"]
        elif stream:
            raise TemplateError(f"{logical_id}: table {name} exists without a stream; use --fresh")
        return Physical(name, attributes)

    @staticmethod
    def _sync_indexes(
        client: Any, wanted: Mapping[str, Any], found: dict[str, Any]
    ) -> dict[str, Any]:
        """Give a kept table the template's global indexes, as CloudFormation does on an
        update: create those it lacks (a new index in template.yaml), delete those the
        template no longer has. The table as it is now."""
        if found["KeySchema"] != wanted["KeySchema"]:
            return found  # not the same table: _same_table says so
        listed = found.get("GlobalSecondaryIndexes", [])
        have = {i["IndexName"] for i in listed}
        # Deleted already (an earlier start stopped before DynamoDB was done): wait only.
        going = {i["IndexName"] for i in listed if i.get("IndexStatus") == "DELETING"}
        wanted_indexes = wanted.get("GlobalSecondaryIndexes", [])
        names = {i["IndexName"] for i in wanted_indexes}
        dropped = sorted(have - names - going)
        added = [i for i in wanted_indexes if i["IndexName"] not in have]
        # One index per UpdateTable, as DynamoDB requires; the deletes first, so that no
        # attribute definition is still needed by an index on its way out.
        for name in dropped:
            client.update_table(
                TableName=wanted["TableName"],
                GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": name}}],
            )
        for index in added:
            client.update_table(
                TableName=wanted["TableName"],
                AttributeDefinitions=wanted["AttributeDefinitions"],
                GlobalSecondaryIndexUpdates=[{"Create": index}],
            )
        if not dropped and not added and not going:
            return found
        return _without(client, wanted["TableName"], set(dropped) | going)

    @staticmethod
    def _same_table(logical_id: str, wanted: Mapping[str, Any], found: Mapping[str, Any]) -> None:
        def index_names(description: Mapping[str, Any]) -> set[str]:
            return {i["IndexName"] for i in description.get("GlobalSecondaryIndexes", [])}

        if found["KeySchema"] != wanted["KeySchema"] or index_names(found) != index_names(wanted):
            raise TemplateError(
                f"{logical_id}: table {wanted['TableName']} exists with another key schema or "
                "indexes than template.yaml gives; start with --fresh to recreate it"
            )

    # -- SQS ---------------------------------------------------------------------------------

    def _queue(self, logical_id: str, props: dict[str, Any]) -> Physical:
        passed = {
            "VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
            "ReceiveMessageWaitTimeSeconds", "FifoQueue", "ContentBasedDeduplication",
        }  # fmt: skip
        self._check(
            logical_id, props, passed | {"QueueName", "RedrivePolicy", "RedriveAllowPolicy"}
        )
        client = self.clients["sqs"]
        name = props.get("QueueName") or self._name(logical_id)
        if props.get("FifoQueue") and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {k: str(v).lower() if isinstance(v, bool) else str(v)
                      for k, v in props.items() if k in passed}  # fmt: skip
        for key in ("RedrivePolicy", "RedriveAllowPolicy"):
            if key in props:
                value = props[key]
                attributes[key] = value if isinstance(value, str) else json.dumps(value)
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        # create_queue on an existing queue with other attributes fails in AWS; set them anyway
        # so a changed template takes effect on restart.
        client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.queue_visibility[arn] = int(props.get("VisibilityTimeout", 30))
        self.queue_urls[arn] = url
        return Physical(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    # -- Logs, SNS, CloudWatch ---------------------------------------------------------------

    def _log_group(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self._check(logical_id, props, {"LogGroupName", "RetentionInDays"})
        client = self.clients["logs"]
        name = props.get("LogGroupName") or self._name(logical_id)
        try:
            client.create_log_group(logGroupName=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
        if props.get("RetentionInDays"):
            client.put_retention_policy(
                logGroupName=name, retentionInDays=int(props["RetentionInDays"])
            )
        return Physical(name, {"Arn": self._arn("logs", f"log-group:{name}:*")})

    def _topic(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self._check(logical_id, props, {"TopicName", "DisplayName"})
        name = props.get("TopicName") or self._name(logical_id)
        arn = self.clients["sns"].create_topic(Name=name)["TopicArn"]
        return Physical(arn, {"TopicName": name, "TopicArn": arn})

    def _subscription(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self._check(logical_id, props, {"TopicArn", "Protocol", "Endpoint"})
        response = self.clients["sns"].subscribe(
            TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"]
        )
        self.notes.append("AWS::SNS::Subscription: recorded locally; nothing is delivered")
        return Physical(response["SubscriptionArn"])

    def _alarm(self, logical_id: str, props: dict[str, Any]) -> Physical:
        fields = {
            "AlarmName", "AlarmDescription", "ActionsEnabled", "AlarmActions", "OKActions",
            "InsufficientDataActions", "MetricName", "Namespace", "Statistic",
            "ExtendedStatistic", "Dimensions", "Period", "Unit", "EvaluationPeriods",
            "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
            "EvaluateLowSampleCountPercentile", "Metrics", "ThresholdMetricId",
        }  # fmt: skip
        self._check(logical_id, props, fields)
        request = {k: v for k, v in props.items() if k in fields}
        request["AlarmName"] = props.get("AlarmName") or self._name(logical_id)
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in request:
                request[key] = int(request[key])
        if "Threshold" in request:
            request["Threshold"] = float(request["Threshold"])
        for metric in request.get("Metrics", []):
            stat = metric.get("MetricStat")
            if stat:
                stat["Period"] = int(stat["Period"])
        self.clients["cloudwatch"].put_metric_alarm(**request)
        return Physical(
            request["AlarmName"], {"Arn": self._arn("cloudwatch", f"alarm:{request['AlarmName']}")}
        )

    def _dashboard(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self._check(logical_id, props, {"DashboardName", "DashboardBody"})
        name = props.get("DashboardName") or self._name(logical_id)
        self.clients["cloudwatch"].put_dashboard(
            DashboardName=name, DashboardBody=props["DashboardBody"]
        )
        return Physical(name)

    # -- Lambda ------------------------------------------------------------------------------

    def _layer(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self._check(logical_id, props, {"Content", "LayerName"})
        if logical_id not in self.code_dirs:
            raise TemplateError(f"{logical_id}: layer content must be a local directory")
        name = props.get("LayerName") or self._name(logical_id)
        arn = self._arn("lambda", f"layer:{name}:1")
        self._layers[arn] = self.code_dirs[logical_id]
        return Physical(arn, {"LayerVersionArn": arn})

    def _function(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self._check(
            logical_id,
            props,
            {"Code", "Handler", "Runtime", "Timeout", "MemorySize", "Environment", "Layers",
             "LoggingConfig", "FunctionName", "ReservedConcurrentExecutions"},
        )  # fmt: skip
        if logical_id not in self.code_dirs:
            raise TemplateError(f"{logical_id}: function code must be a local directory")
        runtime = props.get("Runtime", "")
        if not runtime.startswith("python3"):
            raise TemplateError(f"{logical_id}: runtime {runtime} cannot run locally (Python only)")
        layers = []
        for arn in props.get("Layers", []):
            if arn not in self._layers:
                raise TemplateError(f"{logical_id}: layer {arn} is not defined in the template")
            layers.append(self._layers[arn])
        logging_config = props.get("LoggingConfig", {})
        unknown_logging = set(logging_config) - {"LogFormat", "LogGroup"}
        if unknown_logging:
            raise TemplateError(
                f"{logical_id}: LoggingConfig.{', '.join(sorted(unknown_logging))} is not "
                "supported by the local runtime"
            )
        name = props.get("FunctionName") or self._name(logical_id)
        arn = self._arn("lambda", f"function:{name}")
        variables = {
            k: str(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()
        }
        reserved = _reserved_concurrency(logical_id, props.get("ReservedConcurrentExecutions"))
        self.functions.append(
            FunctionSpec(
                logical_id=logical_id,
                name=name,
                arn=arn,
                handler=props["Handler"],
                runtime=runtime,
                code_dir=self.code_dirs[logical_id],
                layer_dirs=layers,
                timeout=int(props.get("Timeout", 3)),
                memory=int(props.get("MemorySize", 128)),
                environment=variables,
                log_group=logging_config.get("LogGroup"),
                max_concurrency=min(reserved or 8, 8),
                reserved_concurrency=reserved,
            )
        )
        return Physical(name, {"Arn": arn})

    def _mapping(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self._check(
            logical_id,
            props,
            {"EventSourceArn", "FunctionName", "BatchSize", "MaximumBatchingWindowInSeconds",
             "StartingPosition", "BisectBatchOnFunctionError", "MaximumRetryAttempts",
             "MaximumRecordAgeInSeconds", "FunctionResponseTypes", "DestinationConfig",
             "FilterCriteria", "ScalingConfig", "Enabled", "ParallelizationFactor"},
        )  # fmt: skip
        function = next(
            (f for f in self.functions if props["FunctionName"] in (f.name, f.arn)), None
        )
        if function is None:
            raise TemplateError(f"{logical_id}: function {props['FunctionName']} is not defined")
        filters = []
        for entry in props.get("FilterCriteria", {}).get("Filters", []):
            try:
                filters.append(compile_pattern(entry["Pattern"]))
            except UnsupportedPattern as exc:
                raise TemplateError(f"{logical_id}: {exc}") from exc
        on_failure = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if on_failure and ":sqs:" not in on_failure:
            raise TemplateError(
                f"{logical_id}: on-failure destination {on_failure} is not an SQS queue; only "
                "SQS destinations run locally"
            )
        response_types = set(props.get("FunctionResponseTypes", []))
        if response_types - {"ReportBatchItemFailures"}:
            raise TemplateError(f"{logical_id}: FunctionResponseTypes {response_types}")
        source = props["EventSourceArn"]
        is_queue = ":sqs:" in source
        default_batch = 10 if is_queue else 100
        spec = MappingSpec(
            logical_id=logical_id,
            function_name=function.name,
            function_arn=function.arn,
            source_arn=source,
            batch_size=int(props.get("BatchSize", default_batch)),
            batching_window=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            starting_position=props.get("StartingPosition"),
            bisect=bool(props.get("BisectBatchOnFunctionError", False)),
            max_retries=int(props.get("MaximumRetryAttempts", -1)),
            max_record_age=int(props.get("MaximumRecordAgeInSeconds", -1)),
            report_item_failures="ReportBatchItemFailures" in response_types,
            on_failure_arn=on_failure,
            filters=filters,
            max_concurrency=int(props.get("ScalingConfig", {}).get("MaximumConcurrency", 2)),
            enabled=bool(props.get("Enabled", True)),
            parallelization=int(props.get("ParallelizationFactor", 1)),
        )
        if not 1 <= spec.parallelization <= 10:
            raise TemplateError(
                f"{logical_id}: ParallelizationFactor {spec.parallelization} is outside 1-10"
            )
        if is_queue and (
            spec.bisect
            or spec.max_retries >= 0
            or spec.starting_position
            or spec.parallelization != 1
        ):
            raise TemplateError(
                f"{logical_id}: stream-only settings on an SQS mapping (AWS rejects them too)"
            )
        self.mappings.append(spec)
        return Physical(self._name(logical_id))

    # -- Step Functions ----------------------------------------------------------------------

    def _state_machine(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self._check(
            logical_id,
            props,
            {"DefinitionString", "Definition", "DefinitionSubstitutions", "StateMachineName",
             "StateMachineType"},
        )  # fmt: skip
        if props.get("StateMachineType", "STANDARD") != "STANDARD":
            raise TemplateError(f"{logical_id}: only STANDARD workflows run locally")
        definition = props.get("DefinitionString")
        if definition is None:
            definition = json.dumps(props["Definition"])
        for key, value in props.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        name = props.get("StateMachineName") or self._name(logical_id)
        client = self.clients["stepfunctions"]
        arn = self._arn("states", f"stateMachine:{name}")
        role = self._arn("iam", f"role/{name}-role")
        try:
            client.create_state_machine(name=name, definition=definition, roleArn=role)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "StateMachineAlreadyExists":
                client.update_state_machine(stateMachineArn=arn, definition=definition)
            elif code in ("InvalidDefinition", "UnsupportedFeature"):
                raise TemplateError(f"{logical_id}: {exc.response['Error']['Message']}") from exc
            else:
                raise
        self.state_machines[logical_id] = arn
        return Physical(arn, {"Arn": arn, "Name": name})
