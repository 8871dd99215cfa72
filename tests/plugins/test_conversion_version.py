"""``CONVERSION_VERSION`` is raised whenever the code that writes rows changes.

A live table records the version that wrote it; a run of another version copies
in full, so that rows an incremental run would not touch are written again in
the new form. Nothing forces a person to remember that, so this test pins a
fingerprint of the conversion's code (the syntax of ``contract.py``,
``extended_json.py`` and ``documents.py`` without docstrings: comments and documentation may change
freely). When it fails: if the change writes any value differently, or sets
other documents aside, raise ``CONVERSION_VERSION``; then pin the new pair here.
"""

import ast
import hashlib
from pathlib import Path

from mongo_migration import contract, documents, extended_json
from mongo_migration.documents import CONVERSION_VERSION

PINNED = (2, "e84c4cc02b38e7f6")  # issue 28: a registry of BSON types, Extended JSON apart; rows the same


def code_fingerprint() -> str:
    trees = []
    for module in (contract, extended_json, documents):
        tree = ast.parse(Path(module.__file__).read_text())
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and _is_docstring(body[0]):
                node.body = body[1:] or [ast.Pass()]
        trees.append(ast.dump(tree))
    return hashlib.sha256("\n".join(trees).encode()).hexdigest()[:16]


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and (isinstance(statement.value.value, str))
    )


def test_the_conversion_version_is_raised_with_the_conversions_code():
    assert (CONVERSION_VERSION, code_fingerprint()) == PINNED, (
        "contract.py, extended_json.py or documents.py changed: if rows are written differently now, raise "
        f"CONVERSION_VERSION in documents.py; then pin ({CONVERSION_VERSION}, {code_fingerprint()!r}) here"
    )
