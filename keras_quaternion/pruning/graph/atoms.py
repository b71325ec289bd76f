"""Union-find over atoms (output filters), with the reasons why some atoms are fixed."""

from __future__ import annotations

import numpy as np


class Atoms:
    def __init__(self):
        self.parent = [0]  # atom 0: "not owned by any producer"; never a pruning unit
        self.owner = [None]  # (producer name, unit index)
        self.fixed = {}  # root -> list of (kind, message)

    def new(self, producer, units):
        start = len(self.parent)
        for u in range(units):
            self.parent.append(start + u)
            self.owner.append((producer, u))
        return np.arange(start, start + units, dtype=np.int64)

    def find(self, a):
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a, b):
        ra, rb = self.find(int(a)), self.find(int(b))
        if ra == rb:
            return
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        if rb in self.fixed:
            self.fixed.setdefault(ra, []).extend(self.fixed.pop(rb))

    def fix(self, atom, kind, message):
        root = self.find(int(atom))
        if root == 0:
            return
        reasons = self.fixed.setdefault(root, [])
        if (kind, message) not in reasons:
            reasons.append((kind, message))

    def fix_all(self, labels, kind, message):
        for a in np.unique(labels):
            if a:
                self.fix(a, kind, message)

    def tie(self, a, b, where):
        """Tie two label arrays position by position (same length)."""
        diff = np.nonzero(a != b)[0]
        for i in diff:
            x, y = int(a[i]), int(b[i])
            if x == 0 or y == 0:
                self.fix(
                    x or y,
                    "unowned",
                    f"combined at '{where}' with channels that no prunable layer produces",
                )
            else:
                self.union(x, y)

    def roots(self):
        return np.array([self.find(a) for a in range(len(self.parent))], dtype=np.int64)
