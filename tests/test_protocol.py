"""The protocol between the grader and the worker: one typed shape per operation and reply, shared by
both sides; a reply the worker sends is read field by field; no name of the grader's hides a name of
the student's code."""

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from grader.boundary import protocol, wire
from grader.checking import call_keeping, fetch, inspect_call
from grader.sandbox.errors import WorkerCrashed
from grader.sandbox.remote import StudentProxy, WorkerSession
from grader.sandbox.worker_process import Limits

TARGET = protocol.Target(module="layers", path=(protocol.Step("attr", "Linear"), protocol.Step("item", 3)))
OPERATIONS = [
    protocol.Call(TARGET, [1, 2], {"k": 3}, select=(0,), keep=False, keep_items=(1,), return_args=True),
    protocol.Fetch(protocol.Target(handle=7), keep=True),
    protocol.SetAttr(TARGET, "weight", 1.5),
    protocol.SetItem(protocol.Target(handle=2), "W1", [0.0]),
    protocol.Keep({"X": [1, 2]}, device="cpu"),
    protocol.Import("layers"),
    protocol.Pin("solver", "Solver"),
    protocol.IsPinned(protocol.Target(handle=1), "solver", "Solver"),
]


@pytest.mark.parametrize("operation", [*OPERATIONS, protocol.Batch(tuple(OPERATIONS))], ids=lambda o: o.NAME)
def test_every_operation_crosses_as_itself(operation):
    envelope = protocol.Envelope(5, operation, release=(1, 2), refuse=(protocol.RefusedPlace("m.py", "f", 3),),
                                 watch=protocol.StackWatchSettings("/s/.call-stack", 4, 0.5), seed=2**63 + 5)
    crossed = protocol.Envelope.from_json(json.loads(json.dumps(envelope.to_json())))
    assert crossed == envelope


@pytest.mark.parametrize("bad", [
    {"op": "rm -rf"}, {"op": "call"}, {"op": "fetch", "target": {"module": "a", "handle": 1}},
    {"op": "fetch", "target": {"module": "a", "path": [["global", "x"]]}}, ["call"],
])
def test_a_malformed_operation_is_named(bad):
    with pytest.raises(protocol.ProtocolError):
        protocol.operation_from_json(bad)


def test_a_seed_that_is_not_an_integer_is_named():
    envelope = protocol.Envelope(1, protocol.Import("layers"), seed=3).to_json()
    with pytest.raises(protocol.ProtocolError, match="seed"):
        protocol.Envelope.from_json({**envelope, "seed": "3"})


def test_the_seed_travels_with_the_next_request_and_sets_the_generators_before_it_runs(session):
    """A check's seed costs no round trip of its own: it is sent with the check's first request, and
    only with that one (the draws after it go on from where the seeded ones left off)."""
    draws = StudentProxy(session).models.draws
    session.seed_global_generators(11)
    first, later = draws(), draws()
    session.seed_global_generators(11)
    assert draws() == first and draws() == later and first != later
    session.seed_global_generators(12)
    assert draws() != first


def test_the_seed_sets_torchs_generator_where_torch_is_loaded(tmp_path):
    package = tmp_path / "submission"
    package.mkdir()
    (package / "models.py").write_text(SHADOWING_MODEL)
    session = WorkerSession(package, Path(tempfile.mkdtemp(dir=tmp_path)), Limits(sandbox="process"), preload=("torch",))
    try:
        draws = StudentProxy(session).models.torch_draws
        session.seed_global_generators(5)
        first = draws()
        session.seed_global_generators(5)
        assert draws() == first
        session.seed_global_generators(6)
        assert draws() != first
    finally:
        session.close()


def test_a_reply_is_read_field_by_field():
    reply = protocol.Reply.from_json({"ok": False, "id": 3, "error": {
        "type": 7, "message": ["x"], "is_not_implemented": "yes", "location": ["a.py", "3"], "refused": "0",
        "extra": "ignored"}})
    assert reply.id == 3 and not reply.ok
    assert reply.error == protocol.ErrorReport(type="7", message="['x']")
    with pytest.raises(protocol.ProtocolError):
        protocol.Reply.from_json({"ok": True, "value": {"result": 1}}, batch=True)
    with pytest.raises(protocol.ProtocolError):
        protocol.Reply.from_json("ok")


def test_a_pin_check_is_read_field_by_field():
    check = protocol.PinCheck(same_type=True, changed=("Solver.train replaced",))
    assert protocol.PinCheck.from_json(json.loads(json.dumps(check.to_json()))) == check
    assert not check.provided and protocol.PinCheck(True).provided and not protocol.PinCheck(False).provided
    many = protocol.PinCheck.from_json({"same_type": True, "changed": ["x" * 1000] * 100})
    assert len(many.changed) == protocol.PinCheck.MAX_CHANGES
    assert len(many.changed[0]) == protocol.PinCheck.MAX_CHARACTERS
    for bad in [True, {"same_type": 1, "changed": []}, {"same_type": True}, {"same_type": True, "changed": [3]},
                {"same_type": True, "changed": "Solver.train replaced"}]:
        with pytest.raises(protocol.ProtocolError):
            protocol.PinCheck.from_json(bad)


def test_a_batch_reply_holds_one_reply_per_operation():
    sent = protocol.Reply(value=[protocol.Reply(value={"result": 1}),
                                 protocol.Reply(error=protocol.ErrorReport("ValueError", "no"))], id=9)
    assert protocol.Reply.from_json(json.loads(json.dumps(sent.to_json())), batch=True) == sent


SHADOWING_MODEL = '''
class Model:
    def __init__(self):
        self._modules = {"fc": 1}
        self.params = {"W": 2.0}

    def fetch(self):
        return "the model's own fetch"

    def inspect(self, x):
        return x * 2

    def keeping(self):
        return "the model's own keeping"

    def _call(self):
        return "the model's own _call"


def double(x):
    x *= 2
    return x


def draws():
    import random
    import numpy as np
    return [random.random(), float(np.random.rand())]


def torch_draws():
    import torch
    return torch.rand(2).tolist()


def collector():
    import gc
    return [gc.isenabled(), gc.get_freeze_count()]


def hides_its_arguments(x, y):
    """Changes the worker's own answer to this call: the arguments come back as one value, not two."""
    import sys
    protocol = sys.modules["grader.boundary.protocol"]
    original = protocol.Answer

    def answer(result=None, args=None, kwargs=None, returns_args=False):
        if returns_args:
            args = {"$": "tuple", "items": args["items"][:1]}
        return original(result, args, kwargs, returns_args)

    protocol.Answer = answer
    return x
'''


@pytest.fixture
def session(tmp_path):
    package = tmp_path / "submission"
    package.mkdir()
    (package / "models.py").write_text(SHADOWING_MODEL)
    session = WorkerSession(package, Path(tempfile.mkdtemp(dir=tmp_path)), Limits(sandbox="process"))
    yield session
    session.close()


def test_no_name_of_the_grader_hides_a_name_of_the_students(session):
    model = StudentProxy(session).models.Model()
    assert model.fetch() == "the model's own fetch"
    assert model.inspect(3) == 6
    assert model.keeping() == "the model's own keeping"
    assert model._call() == "the model's own _call"
    assert fetch(model._modules) == {"fc": 1}
    assert fetch(model.params) == {"W": 2.0}


def test_the_check_operations_work_on_the_students_objects(session):
    record = inspect_call(StudentProxy(session).models.double, np.ones(2))
    assert np.array_equal(record.result, [2.0, 2.0]) and np.array_equal(record.args[0], [2.0, 2.0])
    kept = call_keeping(StudentProxy(session).models.double, (1, 2), items=[1])  # (1, 2, 1, 2), item 1 kept
    assert kept[0] == 1 and list(kept[2:]) == [1, 2] and fetch(kept[1]) == 2


def test_an_answer_holding_fewer_arguments_than_were_sent_is_refused(session):
    # A check walks the arguments as the call left them beside its own: a worker whose code (the
    # submission's runs there) answers with fewer would leave comparisons undone.
    with pytest.raises(WorkerCrashed, match="does not hold the arguments"):
        inspect_call(StudentProxy(session).models.hides_its_arguments, np.ones(2), [1, 2, 3])


def test_what_the_worker_loads_before_the_submission_is_frozen_for_the_collector(session):
    """The worker's libraries stay out of the cyclic collector's full passes (each would walk them
    all), and the collector still runs for what the submission makes."""
    enabled, frozen = StudentProxy(session).models.collector()
    assert enabled and frozen > 1000


def test_the_worker_answers_a_request_it_cannot_read_and_goes_on(tmp_path, monkeypatch):
    from grader.worker import loop
    monkeypatch.setattr(loop, "install_package", lambda name, directories: None)
    requests = io.BytesIO()
    wire.write_message(requests, {"id": 1, "request": {"op": "no such thing"}}, [])
    wire.write_message(requests, protocol.Envelope(2, protocol.Keep(1), seed=1).to_json(), [])
    requests.seek(0)
    responses = io.BytesIO()
    loop.serve(loop.Worker(tmp_path), requests, responses)
    responses.seek(0)

    def read_exactly(n):
        data = responses.read(n)
        if len(data) != n:
            raise EOFError
        return data

    first = protocol.Reply.from_json(wire.read_message(read_exactly, 1 << 20)[0])
    second = protocol.Reply.from_json(wire.read_message(read_exactly, 1 << 20)[0])
    assert first.id == 1 and first.error is not None and "no such thing" in first.error.message
    assert second.id == 2 and second.ok


FORKS_AT_IMPORT = """
import os
import time

if os.fork() == 0:
    time.sleep(30)
    os._exit(0)


def answer():
    return 42
"""


def test_a_process_left_running_by_a_fresh_workers_first_request_is_charged_to_it(tmp_path):
    """The worker's own process tree is measured on an empty request before the submission's first one,
    so a module that leaves a process running at import is stopped for it, whatever request comes
    first, rather than counted as part of the worker (and every later request charged instead)."""
    package = tmp_path / "submission"
    package.mkdir()
    (package / "forks.py").write_text(FORKS_AT_IMPORT)
    session = WorkerSession(package, Path(tempfile.mkdtemp(dir=tmp_path)), Limits(sandbox="process"))
    try:
        with pytest.raises(WorkerCrashed, match="importing forks.py stopped the worker: the code left 1 process"):
            StudentProxy(session).forks.answer()
    finally:
        session.close()



def test_a_path_into_the_worker_refuses_to_be_iterated_rather_than_indexing_forever():
    # Indexing builds a path without a round trip: iterating by index would never end.
    from grader.sandbox.remote import RemoteObject

    handle = RemoteObject(None, protocol.Target(module="layers"), 0).affine_forward
    with pytest.raises(TypeError, match="cannot be iterated"):
        tuple(handle)
    with pytest.raises(TypeError, match="cannot be iterated"):
        a, b = handle


def test_the_worker_s_generators_are_seeded_from_the_check_s_seed_one_way(tmp_path):
    # The check's seed draws the grader's inputs and probes too: a worker reading its generators' seed
    # (torch.initial_seed(), np.random.get_state()) must not learn it.
    from grader.sandbox.remote import worker_seed

    package = tmp_path / "submission"
    package.mkdir()
    (package / "models.py").write_text("import numpy as np\n\ndef seeded():\n    return int(np.random.get_state()[1][0])\n")
    session = WorkerSession(package, Path(tempfile.mkdtemp(dir=tmp_path)), Limits(sandbox="process"))
    try:
        session.seed_global_generators(123456789)
        seen = StudentProxy(session).models.seeded()
    finally:
        session.close()
    assert seen != 123456789
    assert seen == worker_seed(123456789) % 2**32   # np.random.seed keeps its seed as the state's first word
