"""Assert tests split into what the program computes and what the grader checks.

The code grader never lets the program decide a test's outcome. Test source is
trusted reference data; it is parsed here (statically, at loading time) and
rewritten so that it runs on the *trusted* side of the sandbox (the judge,
``_sandbox_child.py``), while only the parts that need the program are sent to
the program's process:

* A name is the program's when the tests use it without defining it and it is
  not a Python builtin (``solve``, ``Solution``). Names the tests define
  (imports, helpers, constants: "setup") and builtins are the tests' own: the
  program cannot shadow them.
* A *program call* is the largest expression rooted at a program name through
  calls, attributes and subscripts: ``solve(1)``, ``Solution().run(2)[0]``,
  ``N``. One of ``list tuple set frozenset sorted dict len int float`` wrapped
  directly around one (``sorted(f(x))``) is part of it, so that a generator or a
  numpy value can be converted where it lives.
* Each program call is replaced by ``__graft_program__(k, *holes)``. Its
  *holes* are the sub-expressions the program's process cannot evaluate itself
  (they use the tests' own names or local variables: ``solve(data)``,
  ``solve(i)`` inside a comprehension); the judge evaluates them and sends their
  values. Everything else of the call (literals, builtins, nested program
  calls) travels as source. What the test compares the result with never does.

``split_tests(source)`` returns ``{"items": [...], "leaves": [...], "shown":
[...]}``: one item per top-level statement (``kind`` "setup" or "test",
``code`` the rewritten statement, or for a test the rewritten condition of its
``assert``, ``line``), the source of every program call with ``_graft_<j>`` for
its holes (what the program's process receives), and each call as written (for
the judge's error messages only).
ValueError, naming the line, for tests that cannot be graded this way.
"""

from __future__ import annotations

import ast
import builtins

PROGRAM_CALL = "__graft_program__"
HOLE = "_graft_"
LIFTED = frozenset({"list", "tuple", "set", "frozenset", "sorted", "dict", "len", "int", "float"})
_BUILTINS = frozenset(dir(builtins))
_FUNCTION = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSION = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


class _Scope:
    def __init__(self, kind: str, parent: _Scope | None, node: ast.AST | None):
        self.kind, self.parent, self.node = kind, parent, node
        self.bound: set[str] = set()
        self.declared_global: set[str] = set()
        self.declared_nonlocal: set[str] = set()

    def module(self) -> _Scope:
        return self if self.parent is None else self.parent.module()

    def bind(self, name: str) -> None:
        if name in self.declared_global:
            self.module().bound.add(name)
        elif name not in self.declared_nonlocal:
            self.bound.add(name)


class _Resolver:
    """Which scope every name of the tests resolves to: the tests' own, a builtin, or the program."""

    def __init__(self, tree: ast.Module):
        self.module = _Scope("module", None, None)
        self.loads: list[tuple[ast.Name, _Scope]] = []
        for stmt in tree.body:
            self.walk(stmt, self.module)
        self.kind: dict[int, tuple[str, _Scope | None]] = {}
        for name, scope in self.loads:
            self.kind[id(name)] = self.resolve(name.id, scope)

    def resolve(self, name: str, scope: _Scope) -> tuple[str, _Scope | None]:
        current, first = scope, True
        while current.parent is not None:
            if name in current.declared_global:
                break
            if name in current.bound and (current.kind != "class" or first):
                return "local", current
            current, first = current.parent, False
        if name in self.module.bound:
            return "setup", None
        return ("builtin", None) if name in _BUILTINS else ("program", None)

    def walk(self, node: ast.AST, scope: _Scope) -> None:  # one case per binding form
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope.bind(node.name)
            for child in node.decorator_list:
                self.walk(child, scope)
        if isinstance(node, _FUNCTION):
            args = node.args
            for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
                self.walk(default, scope)
            inner = _Scope("function", scope, node)
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None:
                    inner.bound.add(arg.arg)
                    if arg.annotation is not None:
                        self.walk(arg.annotation, scope)
            if not isinstance(node, ast.Lambda) and node.returns is not None:
                self.walk(node.returns, scope)
            for stmt in (node.body if isinstance(node.body, list) else [node.body]):
                self.walk(stmt, inner)
        elif isinstance(node, ast.ClassDef):
            for child in [*node.bases, *node.keywords]:
                self.walk(child, scope)
            inner = _Scope("class", scope, node)
            for stmt in node.body:
                self.walk(stmt, inner)
        elif isinstance(node, _COMPREHENSION):
            inner = _Scope("comprehension", scope, node)
            for i, gen in enumerate(node.generators):
                self.walk(gen.iter, scope if i == 0 else inner)  # the first iterable: the enclosing scope
                self.walk(gen.target, inner)
                for cond in gen.ifs:
                    self.walk(cond, inner)
            for part in ([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]):
                self.walk(part, inner)
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.loads.append((node, scope))
            else:
                scope.bind(node.id)
        elif isinstance(node, ast.NamedExpr):  # binds in the nearest scope that is not a comprehension
            target = scope
            while target.kind == "comprehension":
                target = target.parent
            target.bind(node.target.id)
            self.walk(node.value, scope)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            if isinstance(node, ast.Global):
                scope.declared_global.update(node.names)
                self.module.bound.update(node.names)
            else:
                scope.declared_nonlocal.update(node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    raise ValueError(f"line {node.lineno}: `from ... import *` is not supported in tests "
                                     "(name what you import)")
                scope.bind(alias.asname or alias.name.split(".")[0])
        else:
            if isinstance(node, ast.ExceptHandler) and node.name:
                scope.bind(node.name)
            if isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                scope.bind(node.name)
            if isinstance(node, ast.MatchMapping) and node.rest:
                scope.bind(node.rest)
            for child in ast.iter_child_nodes(node):
                self.walk(child, scope)


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


class _Splitter(ast.NodeTransformer):
    """Replaces every program call with ``__graft_program__(k, *holes)``, collecting the calls' sources."""

    def __init__(self, resolver: _Resolver):
        self.resolver = resolver
        self.leaves: list[str] = []
        self.shown: list[str] = []  # each call as the tests wrote it, for error messages

    def kind(self, node: ast.AST) -> str | None:
        return self.resolver.kind.get(id(node), (None, None))[0] if isinstance(node, ast.Name) else None

    def is_program_call(self, node: ast.AST) -> bool:
        return isinstance(node, ast.expr) and self.kind(_root(node)) == "program"

    def visit(self, node):
        if self.is_program_call(node):
            if not isinstance(getattr(node, "ctx", ast.Load()), ast.Load):
                raise ValueError(f"line {node.lineno}: the tests assign to or delete the program's "
                                 f"`{ast.unparse(node)}`: only plain values cross to the program")
            return self.leaf(node)
        if (isinstance(node, ast.Call) and self.kind(node.func) == "builtin" and node.func.id in LIFTED
                and len(node.args) == 1 and not node.keywords and self.is_program_call(node.args[0])):
            return self.leaf(node)
        return super().visit(node)

    def leaf(self, node: ast.expr) -> ast.expr:
        if any(isinstance(n, ast.NamedExpr) for n in ast.walk(node)):
            raise ValueError(f"line {node.lineno}: an assignment expression inside a call to the program "
                             "(it would bind the name in the program's process, not the tests')")
        inside = {id(n) for n in ast.walk(node)}
        holes: list[ast.expr] = []

        def names(sub: ast.AST) -> list[tuple[str, _Scope | None]]:
            return [self.resolver.kind[id(n)] for n in ast.walk(sub) if id(n) in self.resolver.kind]

        def trusted_only(entry) -> bool:  # a name only the judge can evaluate
            kind, scope = entry
            return kind == "setup" or (kind == "local" and id(scope.node) not in inside)

        def fill(sub: ast.AST) -> ast.AST:
            found = names(sub)
            if not any(trusted_only(e) for e in found):
                return sub
            if (isinstance(sub, ast.expr) and not isinstance(sub, (ast.Starred, ast.Slice))
                    and isinstance(getattr(sub, "ctx", ast.Load()), ast.Load)
                    and all(trusted_only(e) or e[0] == "builtin" for e in found)):
                holes.append(sub)
                return ast.copy_location(ast.Name(f"{HOLE}{len(holes) - 1}", ast.Load()), sub)
            for field, value in ast.iter_fields(sub):
                if isinstance(value, list):
                    setattr(sub, field, [fill(v) if isinstance(v, ast.AST) else v for v in value])
                elif isinstance(value, ast.AST):
                    setattr(sub, field, fill(value))
            return sub

        self.shown.append(ast.unparse(node))
        source_node = fill(_copy(node))
        index = len(self.leaves)
        self.leaves.append(ast.unparse(source_node))
        hole_args = [_copy(h) for h in holes]
        call = ast.Call(ast.Name(PROGRAM_CALL, ast.Load()), [ast.Constant(index), *hole_args], [])
        return ast.copy_location(call, node)


def _copy(node: ast.AST) -> ast.AST:
    """A deep copy that keeps the identities the resolver recorded (ids of Name nodes)."""
    if isinstance(node, ast.Name):
        return node
    new = type(node)()
    for field, value in ast.iter_fields(node):
        if isinstance(value, list):
            value = [_copy(v) if isinstance(v, ast.AST) else v for v in value]
        elif isinstance(value, ast.AST):
            value = _copy(value)
        setattr(new, field, value)
    for attr in node._attributes:
        if hasattr(node, attr):
            setattr(new, attr, getattr(node, attr))
    return new


def _binds(stmt: ast.stmt) -> set[str]:
    """Names a top-level statement binds at module level (outside any function or class body)."""
    found: set[str] = set()
    todo: list[ast.AST] = [stmt]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
            continue
        if isinstance(node, (ast.Lambda, *_COMPREHENSION)):
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            found.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.NamedExpr):
            found.add(node.target.id)
        todo.extend(ast.iter_child_nodes(node))
    return found


def split_tests(source: str) -> dict:
    """Trusted test source -> the judge's plan (see the module docstring). ValueError if it cannot be split."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"not valid Python ({exc.msg}, line {exc.lineno})") from None
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else getattr(node, "name", None)
        if isinstance(name, str) and (name == PROGRAM_CALL or name.startswith(HOLE)):
            raise ValueError(f"line {node.lineno}: the name {name!r} is reserved by the grader")
    resolver = _Resolver(tree)
    splitter = _Splitter(resolver)
    items = []
    uses_program: set[str] = set()  # setup names whose definition calls the program
    for stmt in tree.body:
        before = len(splitter.leaves)
        loads = {n.id for n in ast.walk(stmt)
                 if isinstance(n, ast.Name) and resolver.kind.get(id(n), ("",))[0] == "setup"}
        if isinstance(stmt, ast.Assert):
            condition = splitter.visit(stmt.test)
            if len(splitter.leaves) == before and not loads & uses_program:
                used = sorted({n.id for n in ast.walk(stmt.test) if isinstance(n, ast.Name)})
                raise ValueError(
                    f"line {stmt.lineno}: this assert uses nothing the program defines (names: "
                    f"{', '.join(used) or 'none'}; builtins and names the tests define are the tests' own), "
                    "so it would pass or fail whatever the program does")
            items.append({"kind": "test", "code": ast.unparse(condition), "line": stmt.lineno})
        else:
            items.append({"kind": "setup", "code": ast.unparse(splitter.visit(stmt)), "line": stmt.lineno})
            if len(splitter.leaves) > before or loads & uses_program:
                uses_program |= _binds(stmt)
    if not any(item["kind"] == "test" for item in items):
        raise ValueError("no assert statement")
    return {"items": items, "leaves": splitter.leaves, "shown": splitter.shown}
