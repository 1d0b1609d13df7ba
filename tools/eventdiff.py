"""Which columns of two events tables (CSV, as `fingerprint.py --save` writes) differ, and for
which kinds: the check that a refactoring moved only what it meant to.

    python tools/eventdiff.py before.events.csv after.events.csv
"""
import sys

import pandas as pd

a = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
b = pd.read_csv(sys.argv[2], dtype=str, keep_default_na=False)
print(f"rows {len(a)} vs {len(b)}; columns only in the second: {[c for c in b.columns if c not in a.columns]}")
if len(a) == len(b):
    for c in [c for c in a.columns if c in b.columns]:
        diff = a[c] != b[c]
        if diff.any():
            print(f"  {c}: {int(diff.sum())} rows differ; kinds {sorted(set(a.kind[diff]))}; "
                  f"nodes {sorted(set(a.node[diff]))[:6]}")
else:
    print("  kinds before:", a.kind.value_counts().to_dict())
    print("  kinds after: ", b.kind.value_counts().to_dict())
