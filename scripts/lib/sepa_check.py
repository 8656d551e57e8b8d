"""Validates the SEPA credit transfer files the cashless tests exported against the
official ISO 20022 pain.001.001.09 schema, as shipped with the PyPI package `sepaxml`.

Usage: sepa_check.py DIR  (fails when DIR holds no file: a check over nothing proves
nothing)."""

import pathlib
import sys

import sepaxml
import xmlschema

SCHEMA = pathlib.Path(sepaxml.__file__).parent / "schemas" / "pain.001.001.09.xsd"


def main() -> int:
    files = sorted(pathlib.Path(sys.argv[1]).glob("*.xml"))
    if not files:
        print(f"no SEPA file in {sys.argv[1]}: the cashless tests wrote none", file=sys.stderr)
        return 1
    schema = xmlschema.XMLSchema(str(SCHEMA))
    bad = 0
    for path in files:
        try:
            errors = [f"{e.reason} at {e.path}" for e in schema.iter_errors(str(path))]
        except xmlschema.XMLResourceError as e:
            errors = [f"not XML: {e}"]
        for error in errors[:5]:
            print(f"{path.name}: {error}", file=sys.stderr)
        bad += bool(errors)
    print(f"SEPA files: {len(files) - bad} of {len(files)} valid against {SCHEMA.name}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
