"""What a submission's own code does that no answer can show: data carried in its source (trained
weights, a table of answers), autograd where the backward passes are written by hand (a backward pass that asks autograd for its gradients
returns the right ones), and backward passes that run their forward pass again (finite differences). Said in the result for a person to read, never scored: a name in the code is
a reason to read it, not a proof. A definition the stub provides whole (a2's FastConv asks autograd,
as provided) is not looked at while it is as provided; everything else of a student file is the
student's, inside the fences or not."""

from __future__ import annotations

import ast
import functools

from grader.assignment import Assignment

TO_READ = "To read:"   # how each note begins: the batch's summary lists them

# Names through which code reaches autograd: torch.autograd.grad, x.requires_grad_(),
# torch.enable_grad(), torch.func.vjp, the provided RecordedGraph of the fast layers, ...
_AUTOGRAD_ATTRIBUTES = {"autograd", "requires_grad", "requires_grad_", "enable_grad", "set_grad_enabled",
                        "vjp", "jvp", "jacrev", "jacfwd", "vmap"}
_AUTOGRAD_NAMES = {"autograd", "functorch", "RecordedGraph", "vjp", "jacrev", "jacfwd"}
_SHOWN = 5


# A literal this large in a student file is data, not code (the largest literal of the references is
# a few hundred bytes).
DATA_LITERAL_BYTES = 64 * 1024
DATA_LITERAL_ELEMENTS = 4096


def review_notes(assignment: Assignment, files: dict[str, bytes]) -> list[str]:
    """A note for each student file that carries data in its source, for each whose backward passes
    read as measured by finite differences, and for each whose own code reaches autograd where the
    assignment's backward passes are written by hand."""
    notes = [note for name, data in sorted(files.items()) if (note := _data_note(name, data))]
    for name, data in sorted(files.items()):
        stub = assignment.directory / name
        stub_text = stub.read_text(encoding="utf-8") if stub.is_file() else ""
        text, provided = data.decode("utf-8", "replace"), provided_definitions(stub_text)
        if measured := measured_gradient_uses(text, provided, stub_definitions(stub_text)):
            notes.append(f"{TO_READ} {name}'s backward passes run a forward pass again ({_listed(measured)}), as a "
                         "gradient measured by finite differences does. Its values are right, and where a layer's "
                         "elements can be measured together (ReLU's all at once, max pooling's four by four) its "
                         "time does not show it either; an instructor may read it.")
        if assignment.spec.hand_written_backward and (uses := autograd_uses(text, provided)):
            notes.append(f"{TO_READ} {name} reaches autograd in code of its own ({_listed(uses)}). This assignment's "
                         "backward passes are written by hand; the grade compares values only, so an instructor "
                         "may read it.")
    return notes


def _listed(places: list[str]) -> str:
    return "; ".join(places[:_SHOWN]) + (f"; and {len(places) - _SHOWN} more" if len(places) > _SHOWN else "")


def measured_gradient_uses(text: str, provided: dict[str, str], stub_names: frozenset[str] = frozenset()) -> list[str]:
    """Where the student's own code reads as a gradient measured by finite differences (`where (line n):
    what`): a backward pass (a function or method named *backward*) that runs a forward pass at inputs it
    moves (`relu_forward(x + h)`), in a loop, in a function it defines, or hands a forward pass on; a
    model's `loss` that runs a loss in a function it defines or hands itself on; either calling the
    course's numeric gradient helpers; and a file that binds a name of the stub's anew after defining
    it (`affine_backward = measured(affine_forward)`, `TwoLayerNet.loss = measured(TwoLayerNet.loss)`).
    A backward pass that calls its forward pass once on its own input (sigmoid's, for its output) is
    not named."""
    tree = _parsed(text)
    if tree is None:
        return []
    definitions = _definitions(tree, text)
    functions = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found = []
    for owner, node in _walk_with_owner(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        backward, loss = "backward" in node.name, node.name == "loss"
        if not (backward or loss) or (owner in provided and definitions.get(owner) == provided[owner]):
            continue
        for call, context in _calls(node):
            called = _called_name(call.func)
            if _numeric_helper(called):
                found.append(f"{owner} (line {call.lineno}): calls {called}")
            elif backward and _forward(called) and (context or any(_moved(a) for a in call.args)):
                found.append(f"{owner} (line {call.lineno}): {called} {context or 'at inputs it changes'}")
            elif loss and "loss" in called.lower() and context == _IN_FUNCTION:
                found.append(f"{owner} (line {call.lineno}): {called} {context}")
            for argument in call.args:
                handed = _called_name(argument)
                function = isinstance(argument, ast.Attribute) or handed in functions  # a function, not a value
                if function and ((backward and _forward(handed)) or (loss and handed == "loss")):
                    found.append(f"{owner} (line {call.lineno}): {handed} handed to {called or 'a call'}")
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            if isinstance(target, ast.Name) and target.id in stub_names and target.id in definitions:
                found.append(f"module (line {node.lineno}): {target.id} bound anew after its definition")
            elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id in stub_names:
                found.append(f"module (line {node.lineno}): {target.value.id}.{target.attr} bound anew after "
                             "its class's definition")
    return list(dict.fromkeys(found))


def _forward(called: str) -> bool:
    return "forward" in called.lower()


def _numeric_helper(called: str) -> bool:
    """The course's numeric gradient helpers (eval_numerical_gradient_array, compute_numeric_gradient)."""
    lowered = called.lower()
    return "numeric" in lowered and "grad" in lowered


def _moved(argument: ast.AST) -> bool:
    """An argument computed by adding to or subtracting from something (x + h, x - eps * e): an input
    moved, not the one cached (-x, for a stable sigmoid, is no move)."""
    return any(isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)) for node in ast.walk(argument))


def _called_name(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


_REPEATING = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_NESTED = (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef)
_IN_LOOP, _IN_FUNCTION = "in a loop", "in a function it defines"


def _calls(function: ast.AST):
    """(call, "in a loop" / "in a function it defines" / "") for every call in `function`'s body."""
    def visit(node: ast.AST, context: str):
        for child in ast.iter_child_nodes(node):
            inner = context
            if isinstance(child, _REPEATING):
                inner = context or _IN_LOOP
            elif isinstance(child, _NESTED):
                inner = context or _IN_FUNCTION
            if isinstance(child, ast.Call):
                yield child, context
            yield from visit(child, inner)
    yield from visit(function, "")


def _data_note(name: str, data: bytes) -> str:
    found = data_literals(data.decode("utf-8", "replace"))
    if not found:
        return ""
    total = sum(size for _, size, _ in found)
    where = "; ".join(f"line {line}: {what}" for line, _, what in found[:3])
    return (f"{TO_READ} {name} carries {total / 1024:,.0f} KiB of data in its source ({where}): trained weights or a "
            "table of answers brought in from outside are not what the tasks grade, so an instructor may read it.")


@functools.lru_cache(maxsize=8)
def _parsed(text: str) -> ast.Module | None:
    """A file's syntax tree, read once for both kinds of note (and a stub's once per process); None
    where it is not valid Python (its own task says so)."""
    try:
        return ast.parse(text)
    except SyntaxError:
        return None


def data_literals(text: str) -> list[tuple[int, int, str]]:
    """(line, bytes, what) of each literal in `text` large enough to be data: a string or bytes of
    DATA_LITERAL_BYTES or more, a list, tuple or set of DATA_LITERAL_ELEMENTS numbers or more."""
    tree = _parsed(text)
    if tree is None:
        return []
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            if len(node.value) >= DATA_LITERAL_BYTES:
                found.append((node.lineno, len(node.value),
                              f"a {type(node.value).__name__} of {len(node.value):,} characters"))
            return
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            numbers = sum(isinstance(n, ast.Constant) for n in ast.walk(node))   # nested lists too
            if numbers >= DATA_LITERAL_ELEMENTS:
                size = len(ast.get_source_segment(text, node) or "")
                found.append((node.lineno, size, f"a {type(node).__name__.lower()} of {numbers:,} numbers"))
                return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return sorted(found)


def stub_definitions(stub: str) -> frozenset[str]:
    """The names the stub defines at its top level: functions and classes."""
    tree = _parsed(stub)
    if tree is None:
        return frozenset()
    return frozenset(node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef)))


def provided_definitions(stub: str) -> dict[str, str]:
    """`Class.method` or function name -> its source, for the stub's definitions that hold no fence
    (provided whole)."""
    tree = _parsed(stub)
    if tree is None:
        return {}
    return {name: source for name, source in _definitions(tree, stub).items() if "# BEGIN YOUR CODE" not in source}


def autograd_uses(text: str, provided: dict[str, str]) -> list[str]:
    """Where a student file's own code reaches autograd (`where (line n): what`), leaving out the
    definitions that are as `provided`."""
    tree = _parsed(text)
    if tree is None:
        return []
    definitions = _definitions(tree, text)
    found = []
    for owner, node in _walk_with_owner(tree):
        what = _autograd_use(node)
        if not what or (owner in provided and definitions.get(owner) == provided[owner]):
            continue
        found.append(f"{owner or 'module'} (line {node.lineno}): {what}")
    return list(dict.fromkeys(found))


_DYNAMIC = {"getattr", "setattr", "__import__", "eval", "exec", "import_module"}
_AUTOGRAD_MODULES = ("torch.autograd", "torch.func", "functorch")


def _autograd_use(node: ast.AST) -> str:
    """What `node` does to reach autograd; "" for nothing (or for what only turns it off:
    requires_grad=False, set_grad_enabled(False), reading x.requires_grad)."""
    if isinstance(node, ast.Call):
        function = node.func
        called = function.id if isinstance(function, ast.Name) else function.attr if isinstance(function, ast.Attribute) else ""
        if called in ("requires_grad_", "set_grad_enabled"):
            return "" if node.args and _is_false(node.args[0]) else f".{called}()"
        if called in _DYNAMIC:
            names = node.args[1:2] if called in ("getattr", "setattr") else node.args[:1]
            for name in names:
                if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                    return f"{called} of a name computed as it runs"
                if any(word in name.value for word in (*_AUTOGRAD_ATTRIBUTES, *_AUTOGRAD_NAMES, "grad")):
                    return f"{called}({name.value!r})"
        return ""
    if isinstance(node, ast.Attribute):
        if node.attr in ("requires_grad_", "set_grad_enabled"):
            return ""   # judged at the call
        if node.attr == "requires_grad":
            return ""   # read, or set: judged at the assignment
        if node.attr in _AUTOGRAD_ATTRIBUTES or node.attr == "Parameter" or (
                node.attr == "func" and isinstance(node.value, ast.Name) and node.value.id == "torch"):
            return f".{node.attr}"
        return ""
    if isinstance(node, ast.Name) and (node.id in _AUTOGRAD_NAMES or node.id == "Parameter"):
        return node.id
    if isinstance(node, ast.keyword) and node.arg == "requires_grad":
        return "" if _is_false(node.value) else "requires_grad="
    if isinstance(node, ast.Dict):  # **{"requires_grad": True}: the keyword spelt as a string
        for key, value in zip(node.keys, node.values):
            if isinstance(key, ast.Constant) and key.value == "requires_grad" and not _is_false(value):
                return "'requires_grad' as a key"
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(_AUTOGRAD_MODULES):
        return f"from {node.module} import"
    if isinstance(node, ast.Import) and any(alias.name.startswith(_AUTOGRAD_MODULES) for alias in node.names):
        return "import " + ", ".join(alias.name for alias in node.names)
    if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "requires_grad"
                                            for t in node.targets):
        return "" if _is_false(node.value) else ".requires_grad ="
    # Not `.backward()` itself: a layer's own (sandwich.backward(dout, cache)) reads alike, and a
    # tensor's needs one of the above first (the grader's inputs never require grad).
    return ""


def _is_false(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _definitions(tree: ast.Module, text: str) -> dict[str, str]:
    """`Class.method` or function name -> source (its lines), for every definition at any depth."""
    lines = text.splitlines(keepends=True)   # once: ast.get_source_segment splits the text at each call
    return {owner: "".join(lines[node.lineno - 1:node.end_lineno]) for owner, node in _walk_with_owner(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _walk_with_owner(tree: ast.Module):
    """(the enclosing `Class.function` or function name, node) for every node."""
    def visit(node: ast.AST, owner: str):
        for child in ast.iter_child_nodes(node):
            name = owner
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{owner}.{child.name}" if owner else child.name
            yield name, child
            yield from visit(child, name)
    yield from visit(tree, "")
