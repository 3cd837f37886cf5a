"""An Amazon States Language interpreter (JSONPath mode) that runs state machines in-process.

What it honours, exactly as AWS documents it: Pass, Task, Choice, Wait, Succeed, Fail and
Parallel states; InputPath, Parameters, ResultSelector, ResultPath and OutputPath; the context
object; the intrinsic functions listed in ``intrinsics.INTRINSICS``; Retry (ErrorEquals,
IntervalSeconds, MaxAttempts, BackoffRate, MaxDelaySeconds, JitterStrategy) and Catch; Task and
execution timeouts. Tasks are AWS Lambda calls, either ``arn:aws:states:::lambda:invoke`` (the
optimised integration, whose result wraps the function's in ``Payload``) or a function ARN as
Resource.

What it cannot honour is refused by ``validate_definition`` with ``UnsupportedFeature`` naming
the state and the feature (Map, JSONata, variables, other service integrations, callbacks,
heartbeats, JSONPath beyond ``$.a.b`` / ``$.a[0]`` / ``$['a']``, ...), so a definition that
validates runs here as it would on AWS. Structural mistakes raise ``InvalidDefinition``.

Choices made where AWS leaves room, so that they are visible rather than accidental:

- A path that selects nothing (InputPath, a ``.$`` field, ResultSelector, ResultPath, OutputPath,
  a Choice Variable, SecondsPath, ...) fails the execution with ``States.Runtime``, which no
  Retry or Catch handles, as on AWS. A failing intrinsic function raises
  ``States.IntrinsicFailure``, which the state's Retry and Catch do see.
- ``time_scale`` compresses the workflow's clock as a whole: retry intervals, Wait states, and
  the Task and execution ``TimeoutSeconds`` are all multiplied by it, so that their order stays
  what the definition says.
- A timed-out task's function is not interrupted (AWS does not interrupt it either); its late
  result is discarded.

The modules, in the order a definition meets them: ``types`` (the public vocabulary),
``paths`` (JSONPath), ``intrinsics`` and ``templates`` (payload templates), ``choice`` (Choice
rules), ``model`` and ``compile`` (validation into a compiled machine), then ``run`` (the
interpreter) with ``execution`` (one execution's event log), ``tasks`` (Lambda calls) and
``control`` (the exceptions that carry control while running). Checked against an independent
implementation by ``tests/integration/test_asl_differential.py`` (see docs/stepfunctions.md).
"""

from pipeline.local.stepfunctions.asl.choice import parse_timestamp
from pipeline.local.stepfunctions.asl.compile import validate_definition
from pipeline.local.stepfunctions.asl.run import StateMachineInterpreter
from pipeline.local.stepfunctions.asl.types import (
    ABORTED,
    FAILED,
    LAMBDA_INVOKE,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    ExecutionResult,
    InvalidDefinition,
    Invoke,
    StopSignal,
    TaskFailure,
    UnsupportedFeature,
)

__all__ = [
    "ABORTED",
    "FAILED",
    "LAMBDA_INVOKE",
    "RUNNING",
    "SUCCEEDED",
    "TIMED_OUT",
    "ExecutionResult",
    "InvalidDefinition",
    "Invoke",
    "StateMachineInterpreter",
    "StopSignal",
    "TaskFailure",
    "UnsupportedFeature",
    "parse_timestamp",
    "validate_definition",
]
