"""What a submission's own code does that its assignment rules out and no answer can show: autograd
where the backward passes are written by hand (a backward pass that asks autograd for its gradients
returns the right ones). Said in the result for a person to read, never scored: a name in the code is
a reason to read it, not a proof. A definition the stub provides whole (a2's FastConv asks autograd,
as provided) is not looked at while it is as provided; everything else of a student file is the
student's, inside the fences or not."""

from __future__ import annotations

import ast

from grader.assignment import Assignment

# Names through which code reaches autograd: torch.autograd.grad, x.requires_grad_(),
# torch.enable_grad(), torch.func.vjp, the provided RecordedGraph of the fast layers, ...
_AUTOGRAD_ATTRIBUTES = {"autograd", "requires_grad", "requires_grad_", "enable_grad", "set_grad_enabled",
                        "vjp", "jvp", "jacrev", "jacfwd", "vmap"}
_AUTOGRAD_NAMES = {"autograd", "functorch", "RecordedGraph", "vjp", "jacrev", "jacfwd"}
_SHOWN = 5


def review_notes(assignment: Assignment, files: dict[str, bytes]) -> list[str]:
    """A note for each student file whose own code reaches autograd, where the assignment's backward
    passes are written by hand."""
    if not assignment.spec.hand_written_backward:
        return []
    notes = []
    for name, data in sorted(files.items()):
        stub = assignment.directory / name
        uses = autograd_uses(data.decode("utf-8", "replace"),
                             provided_definitions(stub.read_text(encoding="utf-8")) if stub.is_file() else {})
        if uses:
            shown = "; ".join(uses[:_SHOWN]) + (f"; and {len(uses) - _SHOWN} more" if len(uses) > _SHOWN else "")
            notes.append(f"To read: {name} reaches autograd in code of its own ({shown}). This assignment's "
                         "backward passes are written by hand; the grade compares values only, so an instructor "
                         "may read it.")
    return notes


def provided_definitions(stub: str) -> dict[str, str]:
    """`Class.method` or function name -> its source, for the stub's definitions that hold no fence
    (provided whole)."""
    try:
        tree = ast.parse(stub)
    except SyntaxError:
        return {}
    return {name: source for name, source in _definitions(tree, stub).items() if "# BEGIN YOUR CODE" not in source}


def autograd_uses(text: str, provided: dict[str, str]) -> list[str]:
    """Where a student file's own code reaches autograd (`where (line n): what`), leaving out the
    definitions that are as `provided`."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    definitions = _definitions(tree, text)
    found = []
    for owner, node in _walk_with_owner(tree):
        what = _autograd_use(node)
        if not what or (owner in provided and definitions.get(owner) == provided[owner]):
            continue
        found.append(f"{owner or 'module'} (line {node.lineno}): {what}")
    return list(dict.fromkeys(found))


def _autograd_use(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute) and (node.attr in _AUTOGRAD_ATTRIBUTES or
                                            (node.attr == "func" and isinstance(node.value, ast.Name)
                                             and node.value.id == "torch")):
        return f".{node.attr}"
    if isinstance(node, ast.Name) and node.id in _AUTOGRAD_NAMES:
        return node.id
    if isinstance(node, ast.keyword) and node.arg == "requires_grad":
        return "requires_grad="
    # Not `.backward()` itself: a layer's own (sandwich.backward(dout, cache)) reads alike, and a
    # tensor's needs one of the above first (the grader's inputs never require grad).
    return ""


def _definitions(tree: ast.Module, text: str) -> dict[str, str]:
    """`Class.method` or function name -> source, for every definition at any depth."""
    return {owner: ast.get_source_segment(text, node) or "" for owner, node in _walk_with_owner(tree)
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
