"""Unit tests of pipeline.local.cfn: template loading, intrinsic functions, SAM translation."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pipeline.local.cfn import (
    LOCAL_BUCKET,
    NO_VALUE,
    Resolver,
    TemplateError,
    creation_order,
    dependencies,
    load_template,
    sam_to_cloudformation,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
ACCOUNT = "123456789012"
STACK = "unit"

PSEUDO = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": STACK,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
PHYSICAL_REFS = {
    "OrdersTable": "unit-OrdersTable",
    "OrdersQueue": "https://sqs.eu-west-1.amazonaws.com/123456789012/unit-OrdersQueue",
}
ATTRIBUTES = {
    ("OrdersQueue", "Arn"): "arn:aws:sqs:eu-west-1:123456789012:unit-OrdersQueue",
    ("OrdersTable", "StreamArn"): "arn:aws:dynamodb:eu-west-1:123456789012:table/unit/stream/1",
}


def _ref(logical_id: str) -> Any:
    if logical_id not in PHYSICAL_REFS:
        raise TemplateError(f"Ref to {logical_id}, which is not created (yet)")
    return PHYSICAL_REFS[logical_id]


def _get_att(logical_id: str, attribute: str) -> Any:
    return ATTRIBUTES[(logical_id, attribute)]


def _resolver(
    parameters: dict[str, Any] | None = None, conditions: dict[str, Any] | None = None
) -> Resolver:
    return Resolver(
        parameters={**PSEUDO, "Stage": "prod", "AlarmEmail": "", **(parameters or {})},
        conditions=conditions or {},
        ref=_ref,
        get_att=_get_att,
    )


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(text))
    return path


# -- load_template ----------------------------------------------------------------------------


def test_load_template_expands_every_short_tag(tmp_path: Path) -> None:
    # Given a template written with CloudFormation's short tags
    path = _write(
        tmp_path,
        """
        Resources:
          R:
            Properties:
              Ref: !Ref OrdersTable
              AttDot: !GetAtt OrdersQueue.Arn
              AttList: !GetAtt [OrdersQueue, Arn]
              AttNested: !GetAtt Stack.Outputs.Url
              Sub: !Sub "${AWS::StackName}-orders"
              SubList: !Sub ["${A}-x", {A: !Ref Stage}]
              Join: !Join ["-", [a, !Ref Stage]]
              Select: !Select [1, !Split [",", "a,b,c"]]
              If: !If [IsProd, 1, !Ref AWS::NoValue]
              Cond: !Not [!Equals [!Ref AlarmEmail, ""]]
              Both: !And [!Equals [a, a], !Or [!Equals [a, b], !Equals [b, b]]]
              B64: !Base64 text
              Map: !FindInMap [M, K, V]
        """,
    )

    # When it is loaded
    props = load_template(path)["Resources"]["R"]["Properties"]

    # Then each tag is its long form, nested ones included
    assert props == {
        "Ref": {"Ref": "OrdersTable"},
        "AttDot": {"Fn::GetAtt": ["OrdersQueue", "Arn"]},
        "AttList": {"Fn::GetAtt": ["OrdersQueue", "Arn"]},
        "AttNested": {"Fn::GetAtt": ["Stack", "Outputs.Url"]},
        "Sub": {"Fn::Sub": "${AWS::StackName}-orders"},
        "SubList": {"Fn::Sub": ["${A}-x", {"A": {"Ref": "Stage"}}]},
        "Join": {"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]},
        "Select": {"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]},
        "If": {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]},
        "Cond": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
        "Both": {
            "Fn::And": [
                {"Fn::Equals": ["a", "a"]},
                {"Fn::Or": [{"Fn::Equals": ["a", "b"]}, {"Fn::Equals": ["b", "b"]}]},
            ]
        },
        "B64": {"Fn::Base64": "text"},
        "Map": {"Fn::FindInMap": ["M", "K", "V"]},
    }


def test_load_template_expands_the_condition_tag_to_its_long_form(tmp_path: Path) -> None:
    # Given conditions that refer to another condition with the !Condition short tag
    path = _write(
        tmp_path,
        """
        Conditions:
          IsProd: !Equals [!Ref Stage, prod]
          ProdWithEmail: !And [!Condition IsProd, !Not [!Equals [!Ref AlarmEmail, ""]]]
        """,
    )

    # When the template is loaded and the condition evaluated
    conditions = load_template(path)["Conditions"]

    # Then the tag is CloudFormation's {"Condition": name} and the resolver can evaluate it
    assert conditions["ProdWithEmail"]["Fn::And"][0] == {"Condition": "IsProd"}
    resolver = _resolver({"Stage": "prod", "AlarmEmail": "ops@example.com"}, conditions)
    assert resolver.condition("ProdWithEmail") is True


def test_load_template_reads_the_real_template() -> None:
    # Given template.yaml
    # When it is loaded
    template = load_template(REPO_ROOT / "template.yaml")

    # Then its short tags are expanded and plain YAML is untouched
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert template["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }
    queue = template["Resources"]["OrdersQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["OrdersDeadLetterQueue", "Arn"]
    }
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 3


def test_load_template_refuses_arbitrary_python_objects(tmp_path: Path) -> None:
    # Given YAML asking for a Python object
    path = _write(tmp_path, "x: !!python/object/apply:os.system ['true']\n")

    # When it is loaded
    # Then the safe loader refuses it
    with pytest.raises(Exception, match="python/object"):
        load_template(path)


# -- Resolver: Ref and GetAtt -----------------------------------------------------------------


def test_ref_to_a_parameter_a_pseudo_parameter_and_a_resource() -> None:
    # Given a resolver knowing parameters, pseudo parameters and created resources
    resolver = _resolver()

    # When Refs are resolved
    # Then parameters come from the parameter values, resources from the ref callback
    assert resolver.resolve({"Ref": "Stage"}) == "prod"
    assert resolver.resolve({"Ref": "AWS::Region"}) == REGION
    assert resolver.resolve({"Ref": "AWS::AccountId"}) == ACCOUNT
    assert resolver.resolve({"Ref": "OrdersTable"}) == "unit-OrdersTable"


def test_ref_to_something_not_created_fails_through_the_callback() -> None:
    # Given a resolver whose ref callback knows no "Missing"
    # When it is referenced
    # Then the callback's error surfaces
    with pytest.raises(TemplateError, match="Missing"):
        _resolver().resolve({"Ref": "Missing"})


def test_get_att_in_both_forms() -> None:
    # Given a resolver with attributes
    resolver = _resolver()

    # When GetAtt is written as a list and as a dotted string
    # Then both reach the same attribute
    assert (
        resolver.resolve({"Fn::GetAtt": ["OrdersQueue", "Arn"]})
        == ATTRIBUTES[("OrdersQueue", "Arn")]
    )
    assert (
        resolver.resolve({"Fn::GetAtt": "OrdersTable.StreamArn"})
        == ATTRIBUTES[("OrdersTable", "StreamArn")]
    )


def test_resolve_walks_nested_structures_and_keeps_plain_values() -> None:
    # Given a property tree mixing plain values and functions
    value = {
        "Name": {"Ref": "OrdersTable"},
        "Count": 3,
        "Flag": True,
        "List": ["a", {"Ref": "Stage"}, {"Nested": {"Ref": "AWS::Partition"}}],
    }

    # When it is resolved
    # Then every function is replaced, everything else kept
    assert _resolver().resolve(value) == {
        "Name": "unit-OrdersTable",
        "Count": 3,
        "Flag": True,
        "List": ["a", "prod", {"Nested": "aws"}],
    }


# -- Resolver: Sub ----------------------------------------------------------------------------


def test_sub_with_parameters_pseudo_parameters_and_resources() -> None:
    # Given a Sub string naming a pseudo parameter, a parameter and a resource
    text = "/aws/lambda/${AWS::StackName}/${Stage}/${OrdersTable}"

    # When it is resolved
    # Then each name is replaced by its value
    assert _resolver().resolve({"Fn::Sub": text}) == "/aws/lambda/unit/prod/unit-OrdersTable"


def test_sub_with_an_attribute() -> None:
    # Given a Sub naming ${Resource.Attribute}
    # When it is resolved
    # Then the attribute is used
    assert (
        _resolver().resolve({"Fn::Sub": "queue=${OrdersQueue.Arn}"})
        == f"queue={ATTRIBUTES[('OrdersQueue', 'Arn')]}"
    )


def test_sub_with_variables_that_are_themselves_functions() -> None:
    # Given the list form with a variable map, one variable shadowing a resource name
    value = {
        "Fn::Sub": [
            "${Name}:${OrdersTable}:${AWS::Region}",
            {"Name": {"Fn::Join": ["-", [{"Ref": "Stage"}, "x"]]}, "OrdersTable": "shadowed"},
        ]
    }

    # When it is resolved
    # Then variables win over resources, and are resolved first
    assert _resolver().resolve(value) == f"prod-x:shadowed:{REGION}"


def test_sub_escape_writes_a_literal_placeholder() -> None:
    # Given ${!Literal}, CloudFormation's escape, next to a real substitution
    value = {"Fn::Sub": "${!Literal} and ${!AWS::Region} but ${AWS::Region}"}

    # When it is resolved
    # Then the escaped ones stay as ${...} text and are not looked up
    assert _resolver().resolve(value) == "${Literal} and ${AWS::Region} but " + REGION


# -- Resolver: Join, Select, Split ------------------------------------------------------------


def test_join_resolves_its_parts() -> None:
    # Given a Join of plain text, a Ref and a GetAtt
    value = {"Fn::Join": [":", ["a", {"Ref": "Stage"}, {"Fn::GetAtt": ["OrdersQueue", "Arn"]}]]}

    # When it is resolved
    # Then the parts are joined with the separator
    assert _resolver().resolve(value) == f"a:prod:{ATTRIBUTES[('OrdersQueue', 'Arn')]}"


def test_join_of_numbers_writes_them_as_text() -> None:
    # Given a Join with numbers
    # When it is resolved
    # Then they are written as text
    assert _resolver().resolve({"Fn::Join": ["", [1, "-", 2]]}) == "1-2"


def test_select_and_split() -> None:
    # Given a Select over a Split of a Sub, and a Select with a string index
    value = {"Fn::Select": [2, {"Fn::Split": [":", {"Fn::Sub": "${AWS::Partition}:sqs:eu"}]}]}
    by_string = {"Fn::Select": ["1", ["a", "b", "c"]]}

    # When they are resolved
    # Then the right element is chosen
    assert _resolver().resolve(value) == "eu"
    assert _resolver().resolve(by_string) == "b"
    assert _resolver().resolve({"Fn::Split": [",", "a,,b"]}) == ["a", "", "b"]


# -- Resolver: conditions ---------------------------------------------------------------------


CONDITIONS = {
    "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
    "HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
    "ProdWithEmail": {"Fn::And": [{"Condition": "IsProd"}, {"Condition": "HasAlarmEmail"}]},
    "ProdOrEmail": {"Fn::Or": [{"Condition": "IsProd"}, {"Condition": "HasAlarmEmail"}]},
}


@pytest.mark.parametrize(
    ("stage", "email", "expected"),
    [
        ("prod", "", {"IsProd": True, "HasAlarmEmail": False, "And": False, "Or": True}),
        ("prod", "a@b.c", {"IsProd": True, "HasAlarmEmail": True, "And": True, "Or": True}),
        ("dev", "", {"IsProd": False, "HasAlarmEmail": False, "And": False, "Or": False}),
        ("dev", "a@b.c", {"IsProd": False, "HasAlarmEmail": True, "And": False, "Or": True}),
    ],
)
def test_conditions_equals_not_and_or(stage: str, email: str, expected: dict[str, bool]) -> None:
    # Given conditions built from Equals, Not, And and Or over parameters
    resolver = _resolver({"Stage": stage, "AlarmEmail": email}, CONDITIONS)

    # When each is evaluated
    got = {
        "IsProd": resolver.condition("IsProd"),
        "HasAlarmEmail": resolver.condition("HasAlarmEmail"),
        "And": resolver.condition("ProdWithEmail"),
        "Or": resolver.condition("ProdOrEmail"),
    }

    # Then they follow boolean logic
    assert got == expected


def test_if_picks_the_branch_of_its_condition() -> None:
    # Given an If in prod and in dev
    value = {"Fn::If": ["IsProd", {"Ref": "OrdersTable"}, "dev-table"]}

    # When it is resolved
    # Then the branch of the condition's value is taken (and only it is resolved)
    assert _resolver({"Stage": "prod"}, CONDITIONS).resolve(value) == "unit-OrdersTable"
    dev = {"Fn::If": ["IsProd", {"Ref": "NotCreatedInDev"}, "dev-table"]}
    assert _resolver({"Stage": "dev"}, CONDITIONS).resolve(dev) == "dev-table"


def test_equals_compares_as_text() -> None:
    # Given Equals of a number parameter and its text (CloudFormation parameters are strings)
    resolver = _resolver({"Retention": 30})

    # When it is resolved
    # Then 30 equals "30"
    assert resolver.resolve({"Fn::Equals": [{"Ref": "Retention"}, "30"]}) is True
    assert resolver.resolve({"Fn::Equals": [{"Ref": "Retention"}, "31"]}) is False


def test_an_unknown_condition_is_a_template_error() -> None:
    # Given an If naming a condition that is not defined
    # When it is resolved
    # Then the error names the condition
    with pytest.raises(TemplateError, match="unknown condition Nope"):
        _resolver().resolve({"Fn::If": ["Nope", 1, 2]})


# -- Resolver: AWS::NoValue and unsupported functions -----------------------------------------


def test_no_value_drops_a_property() -> None:
    # Given a property that is only set in prod
    value = {
        "TableName": "t",
        "DeletionProtectionEnabled": {"Fn::If": ["IsProd", True, {"Ref": "AWS::NoValue"}]},
    }

    # When it is resolved in dev and in prod
    dev = _resolver({"Stage": "dev"}, CONDITIONS).resolve(value)
    prod = _resolver({"Stage": "prod"}, CONDITIONS).resolve(value)

    # Then dev has no such key at all, prod has it
    assert dev == {"TableName": "t"}
    assert prod == {"TableName": "t", "DeletionProtectionEnabled": True}


def test_no_value_drops_a_list_item() -> None:
    # Given a list with a conditional item
    value = {
        "AlarmActions": [
            "arn:topic",
            {"Fn::If": ["HasAlarmEmail", "arn:email", {"Ref": "AWS::NoValue"}]},
            {"Ref": "AWS::NoValue"},
        ]
    }

    # When it is resolved without an alarm email
    # Then only the unconditional item is left
    assert _resolver({}, CONDITIONS).resolve(value) == {"AlarmActions": ["arn:topic"]}


def test_a_bare_no_value_resolves_to_the_marker() -> None:
    # Given Ref AWS::NoValue on its own
    # When it is resolved
    # Then the caller receives the NO_VALUE marker to drop it
    assert _resolver().resolve({"Ref": "AWS::NoValue"}) is NO_VALUE


@pytest.mark.parametrize(
    "function",
    ["Fn::FindInMap", "Fn::Base64", "Fn::GetAZs", "Fn::ImportValue", "Fn::Cidr", "Fn::Length"],
)
def test_an_unsupported_function_is_a_template_error_naming_it(function: str) -> None:
    # Given a property using a function the local runtime does not implement
    value = {"Properties": {"Code": {function: ["a", "b", "c"]}}}

    # When it is resolved
    with pytest.raises(TemplateError) as info:
        _resolver().resolve(value)

    # Then the error names the function and where it is
    assert function in str(info.value)
    assert "Properties.Code" in str(info.value)


def test_a_dict_with_several_keys_is_not_a_function() -> None:
    # Given a mapping that has a Ref key among others (plain data, not an intrinsic)
    value = {"Ref": "literal", "Other": {"Ref": "Stage"}}

    # When it is resolved
    # Then only the values are resolved
    assert _resolver().resolve(value) == {"Ref": "literal", "Other": "prod"}


# -- dependencies and creation_order ----------------------------------------------------------


def test_dependencies_finds_refs_get_atts_and_sub_names() -> None:
    # Given properties referring to resources in every supported way, and to things that are not
    # resources (pseudo parameters, NoValue, escaped text, Sub variables, condition names)
    value = {
        "A": {"Ref": "Table"},
        "B": {"Fn::GetAtt": ["Queue", "Arn"]},
        "C": {"Fn::GetAtt": "Topic.TopicName"},
        "D": {"Fn::Sub": "${Bucket}/${Role.Arn}/${AWS::Region}/${!Escaped}"},
        "E": {"Fn::Sub": ["${Local}-${Function}", {"Local": {"Ref": "Layer"}}]},
        "F": [{"Ref": "AWS::NoValue"}, {"Ref": "AWS::StackName"}],
        "G": {"Fn::If": ["IsProd", {"Ref": "ProdOnly"}, "x"]},
    }

    # When its dependencies are collected
    # Then exactly the logical ids are found
    assert dependencies(value) == {
        "Table",
        "Queue",
        "Topic",
        "Bucket",
        "Role",
        "Function",
        "Layer",
        "ProdOnly",
    }


def test_creation_order_puts_every_resource_after_what_it_refers_to() -> None:
    # Given resources declared before what they refer to
    resources = {
        "Mapping": {
            "Properties": {
                "FunctionName": {"Ref": "Function"},
                "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
            }
        },
        "Function": {"Properties": {"Role": {"Fn::GetAtt": "Role.Arn"}, "Stage": {"Ref": "Stage"}}},
        "Queue": {"Properties": {"RedrivePolicy": {"Fn::Sub": "${DLQ.Arn}"}}},
        "Role": {},
        "DLQ": {"Properties": {}},
    }

    # When the creation order is computed (Stage is a parameter, not a resource)
    order = creation_order(resources, {"Stage"})

    # Then each resource comes after all of its dependencies, and every one appears once
    assert sorted(order) == sorted(resources)
    position = {name: i for i, name in enumerate(order)}
    assert position["Function"] < position["Mapping"]
    assert position["Queue"] < position["Mapping"]
    assert position["Role"] < position["Function"]
    assert position["DLQ"] < position["Queue"]


def test_creation_order_honours_depends_on_as_string_and_list() -> None:
    # Given dependencies stated only by DependsOn
    resources = {
        "C": {"DependsOn": ["A", "B"]},
        "B": {"DependsOn": "A"},
        "A": {},
    }

    # When the order is computed
    # Then it follows DependsOn
    assert creation_order(resources, set()) == ["A", "B", "C"]


def test_creation_order_keeps_declaration_order_for_independent_resources() -> None:
    # Given resources that do not refer to each other
    resources = {"Zeta": {}, "Alpha": {}, "Mid": {}}

    # When the order is computed
    # Then it is the template's order
    assert creation_order(resources, set()) == ["Zeta", "Alpha", "Mid"]


@pytest.mark.parametrize(
    "resources",
    [
        {"A": {"Properties": {"X": {"Ref": "B"}}}, "B": {"Properties": {"X": {"Ref": "A"}}}},
        {"A": {"DependsOn": "C"}, "B": {"DependsOn": "A"}, "C": {"DependsOn": "B"}},
        {"A": {"Properties": {"Self": {"Fn::GetAtt": ["A", "Arn"]}}}},
    ],
    ids=["two", "three", "self"],
)
def test_creation_order_detects_cycles(resources: dict[str, Any]) -> None:
    # Given resources that refer to each other in a circle
    # When the order is computed
    # Then it fails naming the circle
    with pytest.raises(TemplateError, match="circular reference"):
        creation_order(resources, set())


def test_creation_order_rejects_an_unknown_reference() -> None:
    # Given a resource referring to something that is neither a resource nor a parameter
    resources = {"Fn": {"Properties": {"Env": {"Ref": "Typo"}, "Q": {"Ref": "Queue"}}}, "Queue": {}}

    # When the order is computed
    # Then the error names the resource and the unknown id
    with pytest.raises(TemplateError, match="Fn refers to unknown Typo"):
        creation_order(resources, set())


# -- sam_to_cloudformation on the real template -----------------------------------------------


FUNCTIONS = {
    "OrderProcessingFunction": "order_processing",
    "SQSProcessorFunction": "sqs_processor",
    "PaymentFunction": "payment",
    "ShippingFunction": "shipping",
    "ReleaseStockFunction": "release_stock",
    "ManualInterventionFunction": "manual_intervention",
    "OrderEventsFunction": "order_events",
    "WebhookDeliveryFunction": "webhook_delivery",
}


@pytest.fixture(scope="module")
def sam_template() -> dict[str, Any]:
    """template.yaml as loaded."""
    return load_template(REPO_ROOT / "template.yaml")


@pytest.fixture(scope="module")
def translated(sam_template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    """template.yaml translated offline, once for this module."""
    return sam_to_cloudformation(
        sam_template, root=REPO_ROOT, region=REGION, account_id=ACCOUNT, stack_name=STACK
    )


def _of_type(cfn: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == rtype}


def test_translation_leaves_no_serverless_resources(
    translated: tuple[dict[str, Any], dict[str, Path]],
) -> None:
    # Given the translated template
    cfn, _ = translated

    # When its resource types are listed
    types = {r["Type"] for r in cfn["Resources"].values()}

    # Then everything is plain CloudFormation and the SAM transform is gone
    assert not [t for t in types if t.startswith("AWS::Serverless::")]
    assert "Transform" not in cfn


def test_translation_makes_the_lambda_functions(
    translated: tuple[dict[str, Any], dict[str, Path]],
) -> None:
    # Given the translated template
    cfn, _ = translated

    # When its functions are listed
    functions = _of_type(cfn, "AWS::Lambda::Function")

    # Then the six handlers are there, with Globals applied and code in the stand-in bucket
    assert set(functions) == set(FUNCTIONS)
    for logical_id, resource in functions.items():
        props = resource["Properties"]
        assert props["Handler"] == "app.handler"
        assert props["Runtime"] == "python3.12"
        assert props["Code"] == {"S3Bucket": LOCAL_BUCKET, "S3Key": logical_id}
        assert props["Environment"]["Variables"]["ORDERS_TABLE_NAME"] == {"Ref": "OrdersTable"}
        assert len(props["Layers"]) == 1
    payment_env = functions["PaymentFunction"]["Properties"]["Environment"]["Variables"]
    assert payment_env["PAYMENT_SUCCESS_RATE"] == {"Ref": "PaymentSuccessRate"}
    assert payment_env["POWERTOOLS_SERVICE_NAME"] == "payment"


def test_translation_makes_the_event_source_mappings_with_the_filters(
    sam_template: dict[str, Any], translated: tuple[dict[str, Any], dict[str, Path]]
) -> None:
    # Given the template and its translation
    cfn, _ = translated
    events = sam_template["Resources"]["OrderProcessingFunction"]["Properties"]["Events"]

    # When the event source mappings are read
    mappings = _of_type(cfn, "AWS::Lambda::EventSourceMapping")

    # Then the stream mapping carries the template's FilterCriteria and failure handling,
    # and the queue mapping reports item failures
    assert set(mappings) == {
        "OrderProcessingFunctionOrdersStream",
        "SQSProcessorFunctionOrdersQueue",
        "OrderEventsFunctionOrdersStream",
        "WebhookDeliveryFunctionDeliveries",
    }
    stream = mappings["OrderProcessingFunctionOrdersStream"]["Properties"]
    assert stream["FilterCriteria"] == events["OrdersStream"]["Properties"]["FilterCriteria"]
    assert stream["EventSourceArn"] == {"Fn::GetAtt": ["OrdersTable", "StreamArn"]}
    assert stream["FunctionName"] == {"Ref": "OrderProcessingFunction"}
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["BisectBatchOnFunctionError"] is True
    queue = mappings["SQSProcessorFunctionOrdersQueue"]["Properties"]
    assert queue["EventSourceArn"] == {"Fn::GetAtt": ["OrdersQueue", "Arn"]}
    assert queue["FunctionName"] == {"Ref": "SQSProcessorFunction"}
    assert queue["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_translation_inlines_the_state_machine_definition(
    translated: tuple[dict[str, Any], dict[str, Path]],
) -> None:
    # Given the translated state machine
    cfn, _ = translated
    machines = _of_type(cfn, "AWS::StepFunctions::StateMachine")
    assert list(machines) == ["OrderWorkflow"]
    props = machines["OrderWorkflow"]["Properties"]

    # When its DefinitionString is resolved
    definition = json.loads(_resolver().resolve(props["DefinitionString"]))

    # Then it is the ASL file, placeholders intact, with substitutions naming the functions
    asl = json.loads((REPO_ROOT / "statemachine" / "order_fulfilment.asl.json").read_text())
    assert definition == asl
    assert (
        definition["States"]["ProcessPayment"]["Parameters"]["FunctionName"]
        == "${PaymentFunctionArn}"
    )
    assert props["DefinitionSubstitutions"] == {
        "PaymentFunctionArn": {"Fn::GetAtt": ["PaymentFunction", "Arn"]},
        "ShippingFunctionArn": {"Fn::GetAtt": ["ShippingFunction", "Arn"]},
        "ReleaseStockFunctionArn": {"Fn::GetAtt": ["ReleaseStockFunction", "Arn"]},
        "ManualInterventionFunctionArn": {"Fn::GetAtt": ["ManualInterventionFunction", "Arn"]},
    }
    assert props["StateMachineType"] == "STANDARD"


def test_code_dirs_map_functions_and_the_layer_to_local_directories(
    translated: tuple[dict[str, Any], dict[str, Path]],
) -> None:
    # Given the translation's code directories
    cfn, code_dirs = translated
    layers = _of_type(cfn, "AWS::Lambda::LayerVersion")

    # When they are compared with the functions and the (renamed) layer
    # Then each function has its lambdas/<name>/ directory and the layer the repository root
    assert len(layers) == 1
    (layer_id,) = layers
    assert layer_id.startswith("PipelineLayer")
    assert set(code_dirs) == set(FUNCTIONS) | {layer_id}
    for logical_id, name in FUNCTIONS.items():
        assert code_dirs[logical_id] == (REPO_ROOT / "lambdas" / name).resolve()
        assert (code_dirs[logical_id] / "app.py").is_file()
    assert code_dirs[layer_id] == REPO_ROOT.resolve()
    assert layers[layer_id]["Properties"]["Content"] == {
        "S3Bucket": LOCAL_BUCKET,
        "S3Key": "PipelineLayer",
    }


def test_translation_does_not_change_the_loaded_template(sam_template: dict[str, Any]) -> None:
    # Given the loaded template and a copy of it
    before = copy.deepcopy(sam_template)

    # When it is translated
    sam_to_cloudformation(
        sam_template, root=REPO_ROOT, region=REGION, account_id=ACCOUNT, stack_name=STACK
    )

    # Then the caller's template is as it was (CodeUri not rewritten, DefinitionUri kept)
    assert sam_template == before
    props = sam_template["Resources"]["OrderWorkflow"]["Properties"]
    assert props["DefinitionUri"] == "statemachine/order_fulfilment.asl.json"


def test_the_translated_template_has_a_creation_order(
    translated: tuple[dict[str, Any], dict[str, Path]],
) -> None:
    # Given the translated resources and the template's parameters plus pseudo parameters
    cfn, _ = translated
    resources = cfn["Resources"]
    parameters = set(cfn.get("Parameters", {})) | set(PSEUDO)

    # When the creation order is computed
    order = creation_order(resources, parameters)

    # Then every resource comes after each resource it refers to
    position = {name: i for i, name in enumerate(order)}
    assert set(order) == set(resources)
    for name, resource in resources.items():
        for dep in dependencies(resource.get("Properties", {})) - parameters:
            assert position[dep] < position[name], (dep, name)
    assert position["OrdersTable"] < position["OrderProcessingFunctionOrdersStream"]
    assert position["PaymentFunction"] < position["OrderWorkflow"]


# -- sam_to_cloudformation errors -------------------------------------------------------------


def test_a_code_uri_that_is_not_a_directory_is_a_template_error(tmp_path: Path) -> None:
    # Given a function whose CodeUri does not exist
    template = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"CodeUri": "missing/", "Handler": "app.handler", "Runtime": "x"},
            }
        },
    }

    # When it is translated
    # Then the error names the resource and the path
    with pytest.raises(TemplateError, match=r"Fn\.CodeUri: missing/ is not a directory"):
        sam_to_cloudformation(
            template, root=tmp_path, region=REGION, account_id=ACCOUNT, stack_name=STACK
        )


def test_an_invalid_sam_resource_is_a_template_error(tmp_path: Path) -> None:
    # Given an SQS event without its Queue
    (tmp_path / "code").mkdir()
    template = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "code/",
                    "Handler": "app.handler",
                    "Runtime": "python3.12",
                    "Events": {"Bad": {"Type": "SQS", "Properties": {}}},
                },
            }
        },
    }

    # When it is translated
    # Then SAM's complaint is passed on as a TemplateError
    with pytest.raises(TemplateError, match=r"SAM translation failed.*Queue"):
        sam_to_cloudformation(
            template, root=tmp_path, region=REGION, account_id=ACCOUNT, stack_name=STACK
        )
