"""The package's layout: the imports flow one way, modules stay small, argparse stays in the CLI.

Read from the source with `ast` (nothing is imported): every import counts, those inside
functions too.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "keras_grown"
MAX_LINES = 700


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name, path):
    """The keras_grown modules `name` imports anywhere in its source (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + [base] * bool(base))
            # `from package import module` imports the module; `from module import name` the module.
            found.update(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            )
    return {module for module in found if module in MODULES and module != name}


def imported_names(path):
    """The top-level packages `path` imports anywhere (`argparse`, `keras`, ...)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def import_cycle():
    """One cycle of the import graph as a list of modules, or None."""
    graph = {name: imported_modules(name, path) for name, path in MODULES.items()}
    state = {}  # name -> "open" while on the path, "done" after

    def visit(name, path):
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name, [name])
            if cycle:
                return cycle
    return None


def test_the_checker_sees_the_imports_of_functions():
    assert "keras_grown.compact" in imported_modules(
        "keras_grown.export", MODULES["keras_grown.export"]
    )
    assert "keras_grown.methods" in imported_modules(
        "keras_grown.learning", MODULES["keras_grown.learning"]
    )


def test_no_import_cycle():
    cycle = import_cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_over_700_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_argparse_only_in_the_cli():
    outside = [
        name for name, path in MODULES.items()
        if not name.startswith("keras_grown.cli")
        and "argparse" in imported_names(path)
    ]
    assert outside == []



def private_attributes():
    """`_framework.PRIVATE_ATTRIBUTES`, read from its source."""
    tree = ast.parse(MODULES["keras_grown._framework"].read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "PRIVATE_ATTRIBUTES":
            return frozenset(ast.literal_eval(node.value.args[0]))
    raise AssertionError("keras_grown/_framework.py has no PRIVATE_ATTRIBUTES")


def private_framework_uses(path, attributes):
    """(line, what) of every private Keras/TensorFlow import or private attribute read in `path`."""
    uses = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module]
        uses += [(node.lineno, module) for module in modules
                 if module.startswith(("keras.src", "tensorflow.python"))]
        if isinstance(node, ast.Attribute) and node.attr in attributes:
            uses.append((node.lineno, node.attr))
    return uses


def test_the_private_api_checker_sees_them():
    attributes = private_attributes()
    assert {"_inbound_nodes", "_compile_loss", "_momentums"} <= attributes
    found = {what for _, what in private_framework_uses(MODULES["keras_grown._framework"],
                                                        attributes)}
    assert {"keras.src.random.seed_generator", "tensorflow.python.ops",
            "_inbound_nodes", "_loss_tracker"} <= found


def test_private_framework_apis_only_in_one_module():
    # A Keras or TensorFlow release may change them: keras_grown/_framework.py is the one
    # place that touches them, so that a new release breaks one module, not twelve.
    attributes = private_attributes()
    outside = {
        name: uses for name, path in MODULES.items()
        if name != "keras_grown._framework"
        for uses in [private_framework_uses(path, attributes)] if uses
    }
    assert outside == {}


def private_model_uses(path):
    """(line, attribute) of every `model._x` / `self.model._x` read or write in `path`."""
    uses = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            continue
        owner = node.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
        if name == "model":
            uses.append((node.lineno, node.attr))
    return sorted(uses)


def test_the_model_checker_sees_private_uses(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("def f(model, self):\n    model._tasks.append(1)\n"
                      "    self.model._plans()\n    model.controller.tasks\n")
    assert private_model_uses(source) == [(2, "_tasks"), (3, "_plans")]


def test_only_model_py_touches_the_models_private_state():
    # The engine's state is the model's controller (keras_grown/controller.py); the
    # other modules read and change it through it, never through `model._...`.
    # keras_grown/_framework.py reads Keras' own private attributes of a model.
    outside = {
        name: uses for name, path in MODULES.items()
        if name not in ("keras_grown.model", "keras_grown._framework")
        for uses in [private_model_uses(path)] if uses
    }
    assert outside == {}


def test_the_mask_equation_is_written_once():
    # GrownLayer.kernel_mask() is the one place that samples and combines the masks;
    # the forward paths and the hard mask finish_task() stores call it, and a
    # finished task's kernel is GrownLayer.finished_kernel() (the compact export too).
    tree = ast.parse(MODULES["keras_grown.layers.grown_base"].read_text())
    functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}

    def calls(function):
        return {node.func.attr for node in ast.walk(functions[function])
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}

    samplers = {"_kernel_sample", "straight_through_gumbel_sigmoid", "top_fraction_mask",
                "straight_through_top_fraction"}
    sampling = sorted(name for name in functions if calls(name) & samplers)
    assert sampling == ["_kernel_sample", "_mask", "kernel_mask"]
    for caller in ("effective_kernel", "planned_kernel", "hard_kernel_mask"):
        assert "kernel_mask" in calls(caller), caller
    assert "finished_kernel" in calls("effective_kernel")
    compact = MODULES["keras_grown.compact"].read_text()
    assert "finished_kernel(" in compact and "np.where(use" not in compact
