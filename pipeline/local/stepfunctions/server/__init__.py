"""A local AWS Step Functions endpoint: the JSON 1.0 API on 127.0.0.1, kept in SQLite.

boto3's ``stepfunctions`` client works against it with ``endpoint_url``. It answers
CreateStateMachine, DescribeStateMachine, ListStateMachines, UpdateStateMachine,
DeleteStateMachine, StartExecution, DescribeExecution, ListExecutions, GetExecutionHistory and
StopExecution; any other operation gets ``UnknownOperationException``. Only STANDARD workflows
exist here. Definitions are checked by ``asl.validate_definition``: what the interpreter cannot
run faithfully is refused at CreateStateMachine with ``InvalidDefinition``.

Executions run in a bounded pool of background threads (16 at once by default); more wait
their turn as RUNNING, as AWS would keep them. Execution names are unique per state machine for
the life of the database: the same name with the same input while that execution is RUNNING
returns it again (AWS's idempotent start); any other reuse is ``ExecutionAlreadyExists``. One
lock around every database access makes that check-and-insert atomic across request threads.

State machines, executions and their event histories live in the SQLite file given to the
constructor (``None`` keeps them in memory for the life of one start/stop cycle).

Restart semantics: ``stop()`` does not abort anything. Executions still running are left
RUNNING in the database; whatever they do after the stop is not recorded. The next ``start()``
on the same file runs every execution it finds RUNNING again *from its first state*, with its
original input and the definition it started with, after discarding its partial history. This
is at-least-once execution of tasks: safe because the project's task handlers are idempotent
(each is guarded by the order's status), and it is how a process that died mid-way catches up.

The modules: ``transport`` (the JSON 1.0 protocol over HTTP), ``store`` (the SQLite schema and
the registry of live executions), ``api`` (the operations), ``workers`` (the pool that runs
executions) and ``endpoint`` (``StepFunctionsServer``, which wires them and owns the lifecycle).
"""

from pipeline.local.stepfunctions.server.api import DEFAULT_ACCOUNT_ID, DEFAULT_REGION
from pipeline.local.stepfunctions.server.endpoint import StepFunctionsServer
from pipeline.local.stepfunctions.server.transport import ApiError

__all__ = ["DEFAULT_ACCOUNT_ID", "DEFAULT_REGION", "ApiError", "StepFunctionsServer"]
