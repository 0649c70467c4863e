#!/usr/bin/env python3
"""The seed's method, as the hand-written upload scripts do it (the baseline for
`synup plan`): pathlib walk, extension → spec map, grouping, openpyxl for the
metadata sheet, required-spec checks. Prints counts so the work is not skipped.

usage: seed_baseline.py ROOT PATTERN META.xlsx [--md5]
  PATTERN 1: group by first folder; 3: group by file stem.
"""
import hashlib
import sys
from collections import defaultdict
from pathlib import Path

import openpyxl

SPECS = {
    "image_1": {"extensions": [".png", ".jpg"], "is_required": True},
    "label_1": {"extensions": [".json"], "is_required": True},
    "dicom_1": {"extensions": [".dcm"], "is_required": False},
}


def main():
    root, pattern, meta = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    md5 = "--md5" in sys.argv
    ext_map = {e: name for name, s in SPECS.items() for e in s["extensions"]}
    units = defaultdict(dict)
    unmatched = 0
    for p in root.rglob("*"):
        if not p.is_file():
            continue
        spec = ext_map.get(p.suffix.lower())
        if spec is None:
            unmatched += 1
            continue
        rel = p.relative_to(root)
        key = rel.parts[0] if pattern == "1" else p.stem
        entry = {"path": str(p), "size": p.stat().st_size}
        if md5:
            entry["md5"] = hashlib.md5(p.read_bytes()).hexdigest()
        units[key][spec] = entry
    wb = openpyxl.load_workbook(meta, read_only=True)
    ws = wb.active
    rows = ws.iter_rows(values_only=True)
    headers = [str(h) for h in next(rows)]
    meta_by_key = {}
    for row in rows:
        if row[0] is None:
            continue
        meta_by_key[str(row[0])] = dict(zip(headers, row))
    wb.close()
    invalid = 0
    for key, files in units.items():
        missing = [s for s, d in SPECS.items() if d["is_required"] and s not in files]
        if missing:
            invalid += 1
        files["meta"] = meta_by_key.get(key, {})
    print(f"units={len(units)} invalid={invalid} unmatched={unmatched} meta_rows={len(meta_by_key)}")


if __name__ == "__main__":
    main()
